"""What turns a batch of model inputs into probabilities for a :class:`Predictor`: the run's
Keras model (``keras``), or its ONNX export on ONNX Runtime (``onnxruntime``).

Both take the same input, (N, S, S, 3) float32 in [0, 255] (the input scaling of every backbone
is inside the model), and return one probability of malignancy per image. Everything around
them - decoding, pre-processing, batching, the threshold, the CSV - is the Predictor's and the
same for both. Grad-CAM needs the Keras layers and gradients, so only the Keras scorer explains.

The ONNX scorer imports ``onnxruntime`` and NumPy only: a machine without TensorFlow predicts
with it (tested in a process where importing TensorFlow or Keras fails). The Keras scorer
imports Keras when it is made, never at module import (worker processes import this package).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from mammohybrid.errors import ConfigError, MammohybridError

if TYPE_CHECKING:
    import keras

Backend = Literal["keras", "onnxruntime"]
BACKENDS: tuple[Backend, ...] = ("keras", "onnxruntime")
# What `pip install` needs for the onnxruntime backend (the `onnx` extra brings it too).
ONNXRUNTIME_ADVICE = "pip install onnxruntime (or 'mammohybrid[onnx]')"
GRADCAM_NEEDS_KERAS = ("Grad-CAM is a Keras feature: it needs the model's layers and gradients, "
                       "and the ONNX export holds the probability graph only; use --backend "
                       "keras (the run directory's model.keras) for Grad-CAM")


class GradCamUnavailableError(MammohybridError):
    """Grad-CAM was asked of a backend that cannot compute it."""


class Scorer(Protocol):
    """Model inputs -> probabilities, for one loaded model."""

    backend: Backend
    input_size: int  # side of the square model input

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        """(N,) float64 probabilities for (N, S, S, 3) float32 inputs in [0, 255]."""
        ...

    def gradcam(self, backbones: Sequence[str]) -> Any:
        """A :class:`~mammohybrid.inference.gradcam.GradCAM` of the model, or
        :class:`GradCamUnavailableError`."""
        ...


def square_side(height: Any, width: Any) -> int:
    """The side of a square model input; a one-line error for any other shape."""
    if not isinstance(height, int) or height != width:
        raise ConfigError(f"the model takes {height}x{width} images; expected a square input")
    return height


class KerasScorer:
    """A Keras hybrid; with ``tta`` (``model.tta``) its pooled features are averaged over the
    dihedral views (:func:`mammohybrid.models.tta.with_test_time_augmentation`)."""

    backend: Backend = "keras"

    def __init__(self, model: keras.Model, tta: str = "none") -> None:
        from mammohybrid.models import with_test_time_augmentation

        height, width = model.input_shape[1:3]
        self.input_size = square_side(height, width)
        self.model = model  # Grad-CAM explains the plain model (the un-rotated view)
        self.scored = with_test_time_augmentation(model, tta)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        output = self.scored.predict_on_batch(np.asarray(inputs, dtype=np.float32))
        return np.asarray(output, dtype=float).reshape(-1)

    def gradcam(self, backbones: Sequence[str]) -> Any:
        from mammohybrid.inference.gradcam import GradCAM

        return GradCAM(self.model, backbones)


class OnnxScorer:
    """An ONNX model on ONNX Runtime's CPU provider; ``metadata`` is the model's
    ``metadata_props`` (what :mod:`mammohybrid.inference.export` stored there)."""

    backend: Backend = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if importlib.util.find_spec("onnxruntime") is None:
            raise MammohybridError(f"--backend onnxruntime needs onnxruntime: "
                                   f"{ONNXRUNTIME_ADVICE}")
        if not self.path.is_file():
            raise MammohybridError(f"{self.path}: ONNX model not found")
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises its own kinds
            message = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise MammohybridError(f"{self.path}: ONNX Runtime cannot load it "
                                   f"({type(error).__name__}: {message:.300})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1 or len(inputs[0].shape) != 4 \
                or inputs[0].shape[3] != 3:
            raise MammohybridError(f"{self.path}: not an image -> probability model (expected "
                                   "one (N, S, S, 3) input and one output)")
        self.input_name = inputs[0].name
        self.input_size = square_side(*inputs[0].shape[1:3])
        self.metadata: Mapping[str, str] = dict(
            self.session.get_modelmeta().custom_metadata_map)

    def probabilities(self, inputs: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.asarray(inputs, dtype=np.float32)}
        return np.asarray(self.session.run(None, feed)[0], dtype=float).reshape(-1)

    def gradcam(self, backbones: Sequence[str]) -> Any:
        raise GradCamUnavailableError(GRADCAM_NEEDS_KERAS)
