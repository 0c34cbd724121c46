"""``mammohybrid serve``: a local web page over a trained run's :class:`Predictor`.

Drop crops on the page and see, for each, the probability and label ``mammohybrid predict``
gives, the image after every pre-processing step and Grad-CAM per backbone branch; the batch
as a sortable table and ``predict``'s CSV; the run's configuration, threshold and evaluations.

- ``analysis.py``: uploads -> results (the Predictor's rows, the chain's steps, Grad-CAM);
  no web library.
- ``run_panel.py``: the run panel.
- ``app.py``: the FastAPI application (needs the optional extra ``mammohybrid[web]``).
- ``static/index.html``: the page, CSS and JavaScript inline, no external asset.
"""

from typing import TYPE_CHECKING, Any

from mammohybrid.serve.analysis import UploadLimits
from mammohybrid.serve.security import AccessPolicy, new_token

__all__ = ["AccessPolicy", "UploadLimits", "app_for_run", "new_token"]

if TYPE_CHECKING:
    from mammohybrid.serve.app import app_for_run


def __getattr__(attribute: str) -> Any:
    if attribute == "app_for_run":  # imported on first use: needs FastAPI
        from mammohybrid.serve.app import app_for_run

        return app_for_run
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
