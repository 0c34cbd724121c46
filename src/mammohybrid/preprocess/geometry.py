"""Sizes and channels: the working resolution before denoising, the final resize to the model
input (step 5 of the paper's chain) and the grey -> 3-channel replication."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.base import Record, check_image

_RESIZE_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    # Area averaging when shrinking (no aliasing); bicubic when enlarging small crops.
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


class LimitSize:
    """Shrink an image whose longer side exceeds ``max_side`` to that side (aspect kept, area
    averaging); smaller images pass unchanged. Put before NLM it bounds the cost of large crops,
    whose detail the final 229-px resize discards anyway."""

    name = "working size"

    def __init__(self, max_side: int) -> None:
        if max_side < 1:
            raise ValueError(f"LimitSize: max_side must be >= 1, got {max_side}")
        self.max_side = max_side

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _RESIZE_DTYPES)
        height, width = image.shape
        longest = max(height, width)
        if longest <= self.max_side:
            return image
        scale = self.max_side / longest
        return _resize(image, max(1, round(width * scale)), max(1, round(height * scale)))


class Resize:
    """Resize to ``size`` x ``size`` (the model input; 229 in the paper). Like the paper, the
    crop is stretched to a square, not padded."""

    name = "resize"

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"Resize: size must be >= 1, got {size}")
        self.size = size

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _RESIZE_DTYPES)
        if image.shape == (self.size, self.size):
            return image
        return _resize(image, self.size, self.size)


class ToRGB:
    """Replicate a greyscale image to 3 identical channels: (H, W) -> (H, W, 3)."""

    name = "rgb"

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name)
        return np.repeat(image[:, :, None], 3, axis=2)


def to_model_input(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """The model-input contract: float32 with values in [0, 255], grey replicated to 3 channels.

    Accepts one image, (H, W) or (H, W, 1) -> (H, W, 3), or a batch, (N, H, W), (N, H, W, 1)
    or a sequence of (H, W) images -> (N, H, W, 3). Arrays whose last axis has size 3 are
    taken as already replicated and only converted to float32 (so a batch of grey images
    must not be 3 pixels wide).
    """
    array = np.stack(images) if isinstance(images, (list, tuple)) else np.asarray(images)
    if array.ndim >= 3 and array.shape[-1] == 3:
        return array.astype(np.float32, copy=False)
    if array.ndim >= 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or array.size == 0:
        raise InvalidImageError(f"to_model_input: expected (H, W), (H, W, 1), (N, H, W) or "
                                f"(N, H, W, 1), got shape {array.shape}")
    return np.repeat(array.astype(np.float32)[..., None], 3, axis=-1)
