"""Step 2 of the paper's chain: ROI extraction by grey-level threshold, output = mask * image."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from mammohybrid.config import ROIConfig
from mammohybrid.errors import EmptyROIError
from mammohybrid.preprocess.base import Record, check_image, section


def _otsu(image: np.ndarray, config: ROIConfig) -> float:
    threshold, _ = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return float(threshold)


# How each mode picks the threshold of one uint8 image (None: no masking).
_THRESHOLDS: dict[str, Callable[[np.ndarray, ROIConfig], float | None]] = {
    "fixed": lambda image, config: float(config.threshold),
    "percentile": lambda image, config: float(np.percentile(image, config.percentile)),
    "otsu": _otsu,
    "off": lambda image, config: None,
}


def _keep(image: np.ndarray, masked: np.ndarray, threshold: float) -> tuple[np.ndarray, str]:
    return masked, f"ROI empty: no pixel above {threshold:g} (empty_policy=keep: black image)"


def _fallback(image: np.ndarray, masked: np.ndarray, threshold: float) -> tuple[np.ndarray, str]:
    return image, (f"ROI empty: no pixel above {threshold:g} "
                   "(empty_policy=fallback: unmasked image)")


def _otsu_policy(image: np.ndarray, masked: np.ndarray,
                 threshold: float) -> tuple[np.ndarray, str]:
    # The image's own Otsu threshold: a dark lesion on darker tissue is masked like the others,
    # instead of turning black (keep) or keeping all its background (fallback).
    otsu, remasked = cv2.threshold(image, 0, 0, cv2.THRESH_TOZERO | cv2.THRESH_OTSU)
    kept = cv2.countNonZero(remasked) / image.size
    if kept in (0.0, 1.0):  # nothing to separate (a flat image): the paper's black image
        return masked, (f"ROI empty: no pixel above {threshold:g}, and Otsu's threshold "
                        "separates nothing (empty_policy=otsu: black image)")
    return remasked, (f"ROI empty: no pixel above {threshold:g} (empty_policy=otsu: "
                      f"re-thresholded at Otsu's {otsu:g}, kept {kept:.1%} of the pixels)")


def _error(image: np.ndarray, masked: np.ndarray, threshold: float) -> tuple[np.ndarray, str]:
    raise EmptyROIError(
        f"ROI empty: no pixel above {threshold:g} (preprocess.roi.empty_policy=error); use "
        "empty_policy keep, fallback or otsu, or another preprocess.roi.mode")


# What an empty mask turns into: (image to pass on, warning to record).
_EMPTY_POLICIES: dict[str, Callable[[np.ndarray, np.ndarray, float],
                                    tuple[np.ndarray, str]]] = {
    "keep": _keep,
    "fallback": _fallback,
    "otsu": _otsu_policy,
    "error": _error,
}


class ROIThreshold:
    """Keep the pixels above a grey-level threshold, zero the rest (uint8 in, uint8 out).

    Mode ``fixed`` (default) is exactly the paper's ``cv2.threshold(x, 193, 0, THRESH_TOZERO)``,
    i.e. ``(x > 193) * x``; ``percentile`` and ``otsu`` pick the threshold per image; ``off``
    passes the image through. Writes ``kept_fraction``, ``roi_empty`` and ``roi_threshold``
    into the record (those of the configured threshold, so that empty ROIs are counted as the
    paper's method would produce them); an empty mask follows ``empty_policy`` (``keep``,
    ``fallback``, ``otsu`` or ``error`` -> :class:`~mammohybrid.errors.EmptyROIError`).
    """

    name = "roi"

    def __init__(self, config: ROIConfig | None = None, **overrides: Any) -> None:
        self.config = section(ROIConfig, config, overrides)

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, (np.uint8,))
        record = record if record is not None else Record()
        threshold = _THRESHOLDS[self.config.mode](image, self.config)
        record.roi_threshold = threshold
        if threshold is None:
            record.kept_fraction, record.roi_empty = 1.0, False
            return image
        # On uint8, OpenCV compares with floor(threshold): the same as x > threshold.
        _, masked = cv2.threshold(image, threshold, 0, cv2.THRESH_TOZERO)
        kept = cv2.countNonZero(masked)
        record.kept_fraction = kept / image.size
        record.roi_empty = kept == 0
        if kept:
            return masked
        output, warning = _EMPTY_POLICIES[self.config.empty_policy](image, masked, threshold)
        record.warnings.append(warning)
        return output
