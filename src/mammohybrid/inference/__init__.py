"""Inference: a finished run directory -> probabilities for new images, Grad-CAM heat-maps,
and the test-time filter ensemble.

- :class:`Predictor` (``predictor.py``): ``Predictor.from_run(run_dir)``, then
  ``predict_paths`` (files and folders; decoding and pre-processing in worker processes of
  :class:`~mammohybrid.preprocess.PreprocessPool`, overlapped with the model),
  ``predict_arrays`` or ``predict_batch`` (model inputs).
- :class:`~mammohybrid.inference.gradcam.GradCAM` (``gradcam.py``): one heat-map per backbone
  branch and one combined; overlays on the input ROI.
- :class:`StrategyEnsemble` (``ensemble.py``): several pre-processing strategies, shared steps
  computed once; probabilities averaged.

This package is imported by the pre-processing worker processes (they unpickle the ensemble),
so importing it must not import TensorFlow: ``gradcam`` (which does) is imported on first use
of its name here (``overlay``).
"""

from typing import TYPE_CHECKING, Any

from mammohybrid.inference.backends import GRADCAM_NEEDS_KERAS, GradCamUnavailableError
from mammohybrid.inference.ensemble import (
    StrategyEnsemble,
    average_probabilities,
    parse_strategies,
    strategy_config,
)
from mammohybrid.inference.export import export_run
from mammohybrid.inference.predictor import (
    CLASS_NAMES,
    COLUMNS,
    Predictor,
    expand_inputs,
    inputs_read,
    predictions_csv,
)

__all__ = [
    "CLASS_NAMES", "COLUMNS", "GRADCAM_NEEDS_KERAS", "GradCamUnavailableError", "Predictor",
    "StrategyEnsemble", "average_probabilities", "expand_inputs", "export_run", "inputs_read",
    "overlay", "parse_strategies", "predictions_csv", "strategy_config",
]

if TYPE_CHECKING:
    from mammohybrid.inference.gradcam import overlay


def __getattr__(attribute: str) -> Any:
    if attribute == "overlay":  # imported on first use: gradcam imports Keras
        from mammohybrid.inference.gradcam import overlay

        return overlay
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
