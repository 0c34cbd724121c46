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

import importlib
from typing import TYPE_CHECKING, Any

from mammohybrid.serve.analysis import UploadLimits
from mammohybrid.serve.security import AccessPolicy, new_token

__all__ = ["AccessPolicy", "UploadLimits", "app_for_run", "new_token"]

# Imported on first use: the application needs the web extra (FastAPI), which the other names
# of this package never need.
if TYPE_CHECKING:
    from mammohybrid.serve.app import app_for_run

_LAZY = {
    "app_for_run": "mammohybrid.serve.app",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
