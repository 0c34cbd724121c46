"""Inference: a finished run directory -> probabilities for new images, Grad-CAM heat-maps,
and the test-time filter ensemble.

- :class:`Predictor` (``predictor.py``): ``Predictor.from_run(run_dir)``, then
  ``predict_paths`` (files and folders; decoding and pre-processing in worker processes,
  overlapped with the model), ``predict_arrays`` or ``predict_batch`` (model inputs).
- :class:`~mammohybrid.inference.gradcam.GradCAM` (``gradcam.py``): one heat-map per backbone
  branch and one combined; overlays on the input ROI.
- :class:`StrategyEnsemble` (``ensemble.py``): several pre-processing strategies, shared steps
  computed once; probabilities averaged.

This package is imported by the pre-processing worker processes, so importing it must not
import TensorFlow: ``gradcam`` (which does) is imported from its module.
"""

from mammohybrid.inference.ensemble import (
    StrategyEnsemble,
    average_probabilities,
    parse_strategies,
    strategy_config,
)
from mammohybrid.inference.pipeline import PreparedImage, Preparer
from mammohybrid.inference.predictor import (
    CLASS_NAMES,
    COLUMNS,
    Predictor,
    expand_inputs,
    inputs_read,
    predictions_csv,
)

__all__ = [
    "CLASS_NAMES",
    "COLUMNS",
    "Predictor",
    "PreparedImage",
    "Preparer",
    "StrategyEnsemble",
    "average_probabilities",
    "expand_inputs",
    "inputs_read",
    "parse_strategies",
    "predictions_csv",
    "strategy_config",
]
