"""The paper's data augmentation (Table 2) as a block of Keras preprocessing layers.

The block sits inside the model right after the input, so it runs on the accelerator and is
active only in training (Keras' random layers are identity at inference). It has no
parameters: Fig. 9's totals are unchanged by it.

Table 2 gives ranges (rotation factor 0.125-0.150, width and height 0.1-0.15, zoom -0.1 to
0.01, translation 0.01-0.1, horizontal flip); ``docs/model.md`` explains how each maps onto a
Keras argument and why the ``paper`` policy takes the values below.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from mammohybrid.errors import ConfigError


@dataclass(frozen=True)
class AugmentationPolicy:
    """Ranges of one augmentation policy, in Keras' argument conventions."""

    rotation: float  # RandomRotation factor: fraction of a full turn, drawn in [-f, f]
    width: float  # horizontal stretch: RandomZoom(height 0, width [-f, f])
    height: float  # vertical stretch: RandomZoom(height [-f, f], width 0)
    zoom: tuple[float, float]  # RandomZoom (lower, upper); negative zooms in
    translation: float  # RandomTranslation fraction of height and width, [-f, f]
    flip: str = "horizontal"

    def layers(self, seed: int | None) -> list[layers.Layer]:
        """The Keras layers in Table 2's order; each gets its own seed derived from ``seed``."""

        def seed_of(index: int) -> int | None:
            return None if seed is None else seed + index

        return [
            layers.RandomRotation(self.rotation, seed=seed_of(0), name="rotation"),
            layers.RandomZoom(height_factor=0.0, width_factor=self.width, seed=seed_of(1),
                              name="width"),
            layers.RandomZoom(height_factor=self.height, width_factor=0.0, seed=seed_of(2),
                              name="height"),
            layers.RandomZoom(height_factor=self.zoom, seed=seed_of(3), name="zoom"),
            layers.RandomTranslation(self.translation, self.translation, seed=seed_of(4),
                                     name="translation"),
            layers.RandomFlip(self.flip, seed=seed_of(5), name="flip"),
        ]


JIT_SAFE_BACKENDS = {"jax"}

POLICIES: dict[str, AugmentationPolicy | None] = {
    # The upper end of each of Table 2's ranges (the zoom range is already a (lower, upper)
    # pair).
    "paper": AugmentationPolicy(rotation=0.15, width=0.15, height=0.15, zoom=(-0.1, 0.01),
                                translation=0.1),
    # For fine-tuning on a few dozen real crops: a lesion has no orientation (any rotation,
    # both flips), and its crop's framing and scale vary from reader to reader.
    "strong": AugmentationPolicy(rotation=0.5, width=0.2, height=0.2, zoom=(-0.2, 0.2),
                                 translation=0.15, flip="horizontal_and_vertical"),
    "none": None,
}


def build_augmentation(policy: str = "paper", seed: int | None = None) -> keras.Sequential | None:
    """The augmentation block named ``augment``, or None for the ``none`` policy."""
    if policy not in POLICIES:
        raise ConfigError(f"model.augment: unknown policy '{policy}' "
                          f"(known: {', '.join(POLICIES)})")
    spec = POLICIES[policy]
    if spec is None:
        return None
    block = keras.Sequential(spec.layers(seed), name="augment")
    if keras.backend.backend() in JIT_SAFE_BACKENDS:
        # Keras marks its rotation/zoom/translation layers as not XLA-compilable (true of
        # TensorFlow's image-transform op), which makes Keras run the *whole* model's train
        # step un-jitted. On JAX they compile fine, and the jitted step is many times faster
        # (benchmarks/gpu_paper_model.py; figures in docs/model.md).
        for layer in block.layers:
            layer.supports_jit = True
    return block
