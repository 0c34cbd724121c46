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
