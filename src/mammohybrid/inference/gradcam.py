"""Grad-CAM (Selvaraju et al., ICCV 2017) for the hybrid: one heat-map per backbone branch and
one for the whole model, and overlays of them on the input ROI.

Why the usual recipe fails here. The recipe builds ``Model(model.inputs, [conv_layer.output,
model.output])``. In the hybrid every backbone is a *nested* Keras model: its inner
convolution layers live in the backbone's own graph, and even ``hybrid.get_layer("resnet50v2")
.output`` is the tensor of that inner graph, not connected to the hybrid's input ("Output ... is
not connected to inputs"). What is needed, though, is available: a backbone built with
``include_top=False`` *outputs* its last feature map, so the gradient of the prediction with
respect to each branch's output is exactly Grad-CAM on that branch's last convolutional block.

So :class:`GradCAM` reuses the trained layers (shared weights, nothing copied) in two new
functional graphs:

- ``features``: image -> per branch: its input scaling -> backbone -> feature map ``A_b``.
  The augmentation block is left out: it is identity at inference anyway, and leaving it out
  makes that certain.
- ``head``: the feature maps -> branch dropout -> concat -> global pooling -> dropout -> pooled
  vector ``p``; the logit is ``z = p . w + b`` with the ``prediction`` layer's weights, and the
  probability ``sigmoid(z)`` equals the model's output (tested).

Per branch, ``alpha_c = mean_ij dz/dA_ij^c`` and the map is ``ReLU(sum_c alpha_c A^c)``; the
combined map is Grad-CAM on the concatenated feature map, ``ReLU(sum_b sum_c alpha_c A_b^c)``
(all branches share one grid). The logit is differentiated, not the probability, so a
confident prediction (sigmoid saturated at 1.0 in float32) still gets a map. For a benign
prediction the map explains the benign class (score ``-z``), so a map always shows the evidence
for the decision taken. For this head (Dense on global average or max pooling) Grad-CAM equals
CAM (Zhou et al. 2016): ``alpha_c = w_c / (H W)``, which the tests use as the reference.

Building the graphs is plain Keras (any backend); the gradient itself uses TensorFlow's
``GradientTape`` on the small head only (the backbones run outside the tape, so Grad-CAM costs
one forward pass).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from mammohybrid.imaging import write_png
from mammohybrid.models import (
    AUGMENT_NAME,
    CONCAT_NAME,
    HEAD_DROPOUT_NAME,
    OUTPUT_NAME,
    POOL_NAME,
    branches,
    dropout_name,
)

COMBINED = "combined"


@dataclass(frozen=True)
class Explanation:
    """Grad-CAM of a batch: the model's probabilities and, per branch and ``combined``, the
    signed class-activation maps ``sum_c alpha_c A^c`` (N, h, w) on the feature grid, positive
    where the evidence is for malignant. :meth:`heatmaps` turns them into Grad-CAM heat-maps
    for the class to explain."""

    probabilities: np.ndarray
    evidence: dict[str, np.ndarray]  # branch name or "combined" -> (N, h, w)

    def heatmaps(self, classes: np.ndarray | int | None = None,
                 threshold: float = 0.5) -> dict[str, np.ndarray]:
        """Heat-maps explaining ``classes`` (1 malignant, 0 benign; one per image or one for
        all; None: the class predicted at ``threshold``): ``ReLU`` of the evidence for that
        class, divided by each map's maximum, so values lie in [0, 1] (all zero where nothing
        supports the class)."""
        if classes is None:
            classes = (self.probabilities >= threshold).astype(int)
        sign = np.where(np.broadcast_to(classes, self.probabilities.shape) == 1, 1.0, -1.0)
        return {name: _normalise(np.maximum(sign[:, None, None] * maps, 0.0))
                for name, maps in self.evidence.items()}


def hybrid_backbones(model: keras.Model) -> list[str]:
    """The backbone names of a hybrid, in branch order: the nested models that have a branch
    dropout layer after them (the augmentation block is nested too, but is no branch)."""
    names = {layer.name for layer in model.layers}
    return [layer.name for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name != AUGMENT_NAME
            and dropout_name(layer.name) in names]


class GradCAM:
    """Grad-CAM for a hybrid built by :func:`mammohybrid.models.build_hybrid` (or loaded from a
    run). ``backbones`` defaults to the nested backbones found in ``model``."""

    def __init__(self, model: keras.Model, backbones: Sequence[str] | None = None) -> None:
        self.backbones = list(backbones) if backbones else hybrid_backbones(model)
        if not self.backbones:
            raise ValueError(f"model '{model.name}' has no nested backbone with a branch "
                             "dropout: not a hybrid built by mammohybrid.models")
        parts = branches(model, self.backbones)
        self.prediction = model.get_layer(OUTPUT_NAME)
        if getattr(self.prediction.activation, "__name__", "") != "sigmoid":
            raise ValueError(f"layer '{OUTPUT_NAME}' must be Dense(1, sigmoid) for Grad-CAM")

        image = keras.Input(tuple(model.input_shape[1:]), name="image")
        maps = []
        for part in parts:
            scaled = part.scaling(image) if part.scaling is not None else image
            maps.append(part.backbone(scaled))
        self.features = keras.Model(image, maps, name="gradcam_features")

        map_inputs = [keras.Input(tuple(m.shape[1:]), name=f"{n}_map")
                      for n, m in zip(self.backbones, maps, strict=True)]
        dropped = [part.dropout(x) for part, x in zip(parts, map_inputs, strict=True)]
        merged = model.get_layer(CONCAT_NAME)(dropped)  # a Concatenate, even of one branch
        pooled = model.get_layer(HEAD_DROPOUT_NAME)(model.get_layer(POOL_NAME)(merged))
        self.head = keras.Model(map_inputs, pooled, name="gradcam_head")

    @property
    def names(self) -> list[str]:
        """The heat-map names: one per branch, then ``combined``."""
        return [*self.backbones, COMBINED]

    def feature_maps(self, inputs: np.ndarray) -> list[np.ndarray]:
        """Each branch's last feature map for a batch of model inputs, as float32 arrays."""
        maps = self.features.predict_on_batch(np.asarray(inputs, dtype=np.float32))
        maps = maps if isinstance(maps, (list, tuple)) else [maps]
        return [np.asarray(m, dtype=np.float32) for m in maps]

    def __call__(self, inputs: np.ndarray) -> Explanation:
        """Grad-CAM for a batch of model inputs ((N, S, S, 3) float32 in [0, 255])."""
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError("Grad-CAM needs the TensorFlow backend of Keras "
                               f"(KERAS_BACKEND is '{keras.backend.backend()}')")
        import tensorflow as tf

        maps = [tf.convert_to_tensor(m) for m in self.feature_maps(inputs)]
        kernel = tf.cast(self.prediction.kernel, tf.float32)
        bias = tf.cast(self.prediction.bias, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(maps)
            pooled = self.head(maps if len(maps) > 1 else maps[0], training=False)
            logits = tf.matmul(tf.cast(pooled, tf.float32), kernel) + bias  # (N, 1)
        # Images do not interact at inference, so the gradient of the sum is per image.
        gradients = tape.gradient(logits, maps)

        evidence = {}
        for name, grad, fmap in zip(self.backbones, gradients, maps, strict=True):
            alpha = grad.numpy().astype(np.float64).mean(axis=(1, 2))  # (N, C)
            evidence[name] = np.einsum("nc,nhwc->nhw", alpha, fmap.numpy().astype(np.float64))
        evidence[COMBINED] = sum(evidence[name] for name in self.backbones)
        logits = logits.numpy()[:, 0].astype(np.float64)
        return Explanation(1.0 / (1.0 + np.exp(-logits)), evidence)


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Divide each (h, w) map by its maximum; maps with no positive value stay zero."""
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0).astype(np.float32)


# --------------------------------------------------------------------------- overlays
def upsample(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A feature-grid heat-map stretched (bilinear) onto an image of ``shape`` (H, W).

    The pre-processing stretches every crop to the square model input, so stretching the map
    back to the crop's own shape puts each cell over the part of the crop it saw."""
    height, width = shape
    return np.clip(cv2.resize(np.asarray(heatmap, np.float32), (width, height),
                              interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, strength: float = 0.6) -> np.ndarray:
    """An 8-bit greyscale image with a heat-map (any grid, values in [0, 1]) over it: jet
    colours blended in proportion to the heat, so cold regions show the image unchanged.
    Returns a BGR uint8 image of the image's size."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"overlay expects a 2-D uint8 image, got {image.dtype} {image.shape}")
    heat = upsample(heatmap, image.shape)
    colours = cv2.applyColorMap(np.rint(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    grey = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR).astype(np.float32)
    weight = (strength * heat)[:, :, None]
    return np.rint(grey * (1.0 - weight) + colours.astype(np.float32) * weight).astype(np.uint8)


def write_overlays(folder: str | os.PathLike[str], stem: str, image: np.ndarray,
                   heatmaps: Mapping[str, np.ndarray]) -> dict[str, Path]:
    """Write ``folder/<stem>_<name>.png`` for every heat-map of one image (atomically)."""
    folder = Path(folder)
    return {name: write_png(folder / f"{stem}_{name}.png", overlay(image, heatmap))
            for name, heatmap in heatmaps.items()}
