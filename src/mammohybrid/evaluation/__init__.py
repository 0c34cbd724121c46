"""Evaluation, honest by construction: metrics, patient-bootstrap intervals, thresholds chosen
on validation only, reports and feature export (grids and cross-validation, which also train,
are in :mod:`mammohybrid.workflows`).

Other layers import from this package (its names below); nothing here imports TensorFlow.
The modules:

- :mod:`~mammohybrid.evaluation.metrics` -- confusion counts, accuracy, sensitivity, specificity,
  precision, F1, AUC, and the paper's Eq. 6 under its own name (``paper_eq6_score``)
- :mod:`~mammohybrid.evaluation.bootstrap` -- 95 % intervals by resampling patients
- :mod:`~mammohybrid.evaluation.evaluate` -- a run directory -> predictions, metrics, report
- :mod:`~mammohybrid.evaluation.plots`, :mod:`~mammohybrid.evaluation.report` -- figures, HTML/MD
- :mod:`~mammohybrid.evaluation.feature_export` -- pooled feature vectors to ``.npz``
"""

from mammohybrid.evaluation.bootstrap import bootstrap_intervals, interval_key
from mammohybrid.evaluation.evaluate import (
    CachedFeaturePredictor,
    RunPredictor,
    choose_threshold,
    evaluate_run,
    metrics_report,
    predictions_frame,
    release_models,
    run_manifest,
)
from mammohybrid.evaluation.feature_export import extract_features
from mammohybrid.evaluation.metrics import METRIC_LABELS, METRIC_NAMES, mean_and_std, weighted_auc
from mammohybrid.evaluation.paired import (
    paired_auc_difference,
    pooled_auc,
    pooled_auc_with_interval,
)
from mammohybrid.evaluation.plots import RocInput, plot_roc
from mammohybrid.evaluation.report import (
    ReportSection,
    format_interval,
    format_metric,
    metric_interval,
)
from mammohybrid.evaluation.run_evaluations import (
    evaluation_files,
    evaluation_table,
    evaluations_markdown,
)

__all__ = [
    "METRIC_LABELS",
    "METRIC_NAMES",
    "CachedFeaturePredictor",
    "ReportSection",
    "RocInput",
    "RunPredictor",
    "bootstrap_intervals",
    "choose_threshold",
    "evaluate_run",
    "evaluation_files",
    "evaluation_table",
    "evaluations_markdown",
    "extract_features",
    "format_interval",
    "format_metric",
    "interval_key",
    "mean_and_std",
    "metric_interval",
    "metrics_report",
    "paired_auc_difference",
    "plot_roc",
    "pooled_auc",
    "pooled_auc_with_interval",
    "predictions_frame",
    "release_models",
    "run_manifest",
    "weighted_auc",
]
