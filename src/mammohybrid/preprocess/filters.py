"""Step 3 of the paper's chain: the second noise filter, one of median, Gaussian or Wiener
(each with the defaults of the MATLAB function the paper would have called)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from mammohybrid.config import GaussianConfig, MedianConfig, WienerConfig
from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.base import Record, check_image, section

_FILTER_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


class MedianFilter:
    """Median filter (``cv2.medianBlur``); 3x3 = MATLAB ``medfilt2``'s default.

    Borders replicate the edge pixel (MATLAB pads with zeros: the two differ only on the
    outermost pixels). Kernels above 5x5 need uint8 input (an OpenCV limit).
    """

    name = "median"

    def __init__(self, config: MedianConfig | None = None, **overrides: Any) -> None:
        self.config = section(MedianConfig, config, overrides)

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, (np.uint8, np.uint16, np.float32))
        ksize = self.config.ksize
        if ksize > 5 and image.dtype != np.uint8:
            raise InvalidImageError(f"median: a {ksize}x{ksize} kernel needs uint8 input "
                                    f"(OpenCV), got {image.dtype}")
        return cv2.medianBlur(image, ksize)


class GaussianFilter:
    """Gaussian filter (``cv2.GaussianBlur``, replicated borders) as MATLAB ``imgaussfilt``:
    sigma 0.5 and, unless given, a kernel of side 2 * ceil(2 * sigma) + 1."""

    name = "gaussian"

    def __init__(self, config: GaussianConfig | None = None, **overrides: Any) -> None:
        self.config = section(GaussianConfig, config, overrides)

    @property
    def ksize(self) -> int:
        sigma = self.config.sigma
        return self.config.ksize or 2 * math.ceil(2 * sigma) + 1

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _FILTER_DTYPES)
        ksize = self.ksize
        return cv2.GaussianBlur(image, (ksize, ksize), self.config.sigma,
                                borderType=cv2.BORDER_REPLICATE)


def wiener2(image: np.ndarray, window: int = 3, noise: float | None = None) -> np.ndarray:
    """MATLAB ``wiener2`` in float64: pixel-wise adaptive Wiener filter.

    Local mean m and variance v over a ``window`` x ``window`` neighbourhood (zero padding, as
    MATLAB ``filter2``), noise n = mean of v when not given, and
    out = m + (x - m) * max(v - n, 0) / max(v, n). Box filters make it faster than
    ``scipy.signal.wiener`` (figures in docs/preprocessing.md), with which it agrees to about
    1e-11. Where v and n are both 0 (a
    flat image) the gain is 0 and the output is m, not scipy's NaN.
    """
    x = image.astype(np.float64)
    size = (window, window)
    mean = cv2.boxFilter(x, cv2.CV_64F, size, normalize=True, borderType=cv2.BORDER_CONSTANT)
    mean_sq = cv2.sqrBoxFilter(x, cv2.CV_64F, size, normalize=True,
                               borderType=cv2.BORDER_CONSTANT)
    variance = mean_sq - mean * mean
    noise_level = float(variance.mean()) if noise is None else float(noise)
    denominator = np.maximum(variance, noise_level)
    gain = np.divide(np.maximum(variance - noise_level, 0.0), denominator,
                     out=np.zeros_like(denominator), where=denominator > 0)
    return mean + (x - mean) * gain


class WienerFilter:
    """Adaptive Wiener filter as MATLAB ``wiener2`` (3x3, noise estimated), see
    :func:`wiener2`. Integer input gives the same dtype back (rounded, clipped), as MATLAB
    does; float input gives float64."""

    name = "wiener"

    def __init__(self, config: WienerConfig | None = None, **overrides: Any) -> None:
        self.config = section(WienerConfig, config, overrides)

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _FILTER_DTYPES)
        filtered = wiener2(image, self.config.window, self.config.noise)
        if image.dtype.kind == "f":
            return filtered
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(filtered), info.min, info.max).astype(image.dtype)
