"""Raster images (PNG, JPEG, PNM, TIFF, BMP) decoded by OpenCV to one grey channel, a PGM/PPM
below its depth's full scale rescaled to it."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging.header import (
    PNG_SIGNATURE,
    check_declared_pixels,
    check_png_chunks,
    declared_raster_size,
)


def read_raster(path: Path, limits: LimitsConfig) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    width, height = declared_raster_size(data.data, path)
    if data[:8].tobytes() == PNG_SIGNATURE:
        check_png_chunks(data, path)
    check_declared_pixels(path, width * height, f"{width} x {height}", limits)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.ndim == 3:
        # BGRA2GRAY weighs B, G, R as BGR2GRAY does, without first copying out the alpha.
        if image.shape[2] in (3, 4):
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3
                                 else cv2.COLOR_BGRA2GRAY)
        else:
            image = image[:, :, 0]
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        maxval = _pnm_maxval(data)
        full_scale = 255 if image.dtype == np.uint8 else 65535
        if maxval is not None and maxval < full_scale:
            image = to_full_scale(np.minimum(image, maxval), maxval, image.dtype)
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    if image.dtype == np.int16:
        return (image.astype(np.int32) + 32768).astype(np.uint16)
    raise ImageReadError(f"{path}: unsupported pixel type {image.dtype}")


def to_full_scale(values: np.ndarray, max_value: int, dtype: np.dtype) -> np.ndarray:
    """Values in [0, max_value] -> [0, full scale of ``dtype``], rounded. Computed in place in
    uint32 (65535 * 65535 + 32767 still fits): 4 bytes a pixel, not int64's 8."""
    full_scale = int(np.iinfo(dtype).max)
    work = values.astype(np.uint32)
    work *= full_scale
    work += max_value // 2
    work //= max_value
    return work.astype(dtype)


def _pnm_maxval(data: np.ndarray) -> int | None:
    """The ``maxval`` of a PGM/PPM header (P2, P3, P5, P6), None for any other file."""
    head = data[:1024].tobytes()
    if head[:2] not in (b"P2", b"P3", b"P5", b"P6"):
        return None
    # Header: magic, width, height, maxval, separated by whitespace; '#' comments run to the
    # end of their line.
    fields = re.sub(rb"#[^\r\n]*", b" ", head[2:]).split(maxsplit=3)
    try:
        maxval = int(fields[2])
    except (IndexError, ValueError):
        return None
    return maxval if maxval > 0 else None
