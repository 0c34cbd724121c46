"""Bring any input image to the 8-bit scale on which the paper's ROI threshold (193) is defined."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mammohybrid.config import IntensityConfig
from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.base import Record, check_image, section

# MATLAB im2uint8 for uint16: round(x / 257), so 65535 -> 255 and 257 * k -> k. 257 is odd, so
# x / 257 never ends in .5 and (x + 128) // 257 is the exact rounding. A lookup table is the
# fastest way to apply it to a large crop.
_UINT16_TO_UINT8 = ((np.arange(65536, dtype=np.uint32) + 128) // 257).astype(np.uint8)


def _stretch(image: np.ndarray, low: float, high: float, record: Record | None) -> np.ndarray:
    """Map [low, high] linearly onto [0, 255], clipping outside; a constant image becomes 0."""
    if high <= low:
        if record is not None:
            record.warnings.append("constant image: intensity stretch gives an all-zero image")
        return np.zeros(image.shape, np.uint8)
    scaled = (image.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def _full_range(image: np.ndarray, config: IntensityConfig, record: Record | None) -> np.ndarray:
    if image.dtype == np.uint16:
        return _UINT16_TO_UINT8[image]
    # Float images are taken to lie in [0, 1] (MATLAB's convention): anything else has no
    # defined 8-bit meaning, and silently clipping would move the 193 threshold.
    low, high = float(image.min()), float(image.max())
    if low < 0.0 or high > 1.0:
        raise InvalidImageError(
            f"to_uint8: float image with values in [{low:g}, {high:g}], outside [0, 1]; "
            "set preprocess.intensity.mode=minmax or percentile to stretch it")
    return np.rint(image.astype(np.float32) * np.float32(255.0)).astype(np.uint8)


def _minmax(image: np.ndarray, config: IntensityConfig, record: Record | None) -> np.ndarray:
    return _stretch(image, float(image.min()), float(image.max()), record)


def _percentile(image: np.ndarray, config: IntensityConfig, record: Record | None) -> np.ndarray:
    low, high = np.percentile(image, [config.low_percentile, config.high_percentile])
    return _stretch(image, float(low), float(high), record)


_MODES: dict[str, Callable[[np.ndarray, IntensityConfig, Record | None], np.ndarray]] = {
    "full_range": _full_range,
    "minmax": _minmax,
    "percentile": _percentile,
}


class ToUint8:
    """8-bit, 16-bit or float greyscale -> uint8, as :class:`~mammohybrid.config.IntensityConfig`
    describes (default ``full_range``: 16-bit x 255/65535 rounded, float x 255). 8-bit input is
    returned unchanged."""

    name = "8-bit"

    def __init__(self, config: IntensityConfig | None = None, **overrides: Any) -> None:
        self.config = section(IntensityConfig, config, overrides)

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, "to_uint8",
                            (np.uint8, np.uint16, np.float16, np.float32, np.float64))
        if image.dtype == np.uint8:
            return image
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise InvalidImageError("to_uint8: float image contains NaN or infinity")
        return _MODES[self.config.mode](image, self.config, record)
