"""Evaluation, honest by construction: metrics, patient-bootstrap intervals, thresholds chosen
on validation only, reports and feature export (grids and cross-validation, which also train,
are in :mod:`mammohybrid.workflows`).

Modules (import what you need; nothing heavy is imported here):

- :mod:`~mammohybrid.evaluation.metrics` -- confusion counts, accuracy, sensitivity, specificity,
  precision, F1, AUC, and the paper's Eq. 6 under its own name (``paper_eq6_score``)
- :mod:`~mammohybrid.evaluation.bootstrap` -- 95 % intervals by resampling patients
- :mod:`~mammohybrid.evaluation.evaluate` -- a run directory -> predictions, metrics, report
- :mod:`~mammohybrid.evaluation.plots`, :mod:`~mammohybrid.evaluation.report` -- figures, HTML/MD
- :mod:`~mammohybrid.evaluation.feature_export` -- pooled feature vectors to ``.npz``
"""
