"""Step 1 of the paper's chain: Non-Local-Means denoising (OpenCV ``fastNlMeansDenoising``)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from mammohybrid.config import NLMConfig
from mammohybrid.preprocess.base import Record, check_image, section

# Immerkaer's mask: the difference of two Laplacians, which cancels any locally planar image
# content and leaves (mostly) the noise.
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of additive white Gaussian noise, in the image's grey levels.

    J. Immerkaer, "Fast noise variance estimation", CVIU 64(2), 1996: convolve with a 3x3
    Laplacian-difference mask and average the absolute response over the interior,
    sigma = sqrt(pi / 2) * sum|I * N| / (6 (W - 2) (H - 2)). One filter pass, so it costs
    almost nothing next to NLM. Texture and edges add to the estimate, so on a textured image
    it is an upper bound, which suits NLM's ``h`` (too small an ``h`` leaves the noise).
    Images smaller than 3x3 give 0.
    """
    image = check_image(image, "estimate_noise_sigma")
    height, width = image.shape
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(image.astype(np.float32), cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1]
    total = cv2.norm(response, cv2.NORM_L1)
    return math.sqrt(math.pi / 2) * total / (6.0 * (width - 2) * (height - 2))


class NLMDenoise:
    """Non-Local-Means denoising of a uint8 image (``cv2.fastNlMeansDenoising``).

    ``h`` None (default) uses the image's estimated noise standard deviation (at least
    ``h_min``), which is what MATLAB ``imnlmfilt`` (the paper's tool) does by default; the
    windows default to MATLAB's 5x5 comparison and 21x21 search windows. The ``h`` used is
    written to ``record.nlm_h``.
    """

    name = "nlm"

    def __init__(self, config: NLMConfig | None = None, **overrides: Any) -> None:
        self.config = section(NLMConfig, config, overrides)

    def strength(self, image: np.ndarray) -> float:
        """The filter strength ``h`` this transform uses on ``image``."""
        if self.config.h is not None:
            return float(self.config.h)
        return max(estimate_noise_sigma(image), self.config.h_min)

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, (np.uint8,))
        h = self.strength(image)
        if record is not None:
            record.nlm_h = h
        # Keyword arguments pick the float-h overload (a list h selects the uint16 one).
        return cv2.fastNlMeansDenoising(src=image, h=h,
                                        templateWindowSize=self.config.template_window,
                                        searchWindowSize=self.config.search_window)
