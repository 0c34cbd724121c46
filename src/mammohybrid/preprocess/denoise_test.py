import cv2
import numpy as np
import pytest

from mammohybrid.config import NLMConfig
from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.denoise import NLMDenoise, estimate_noise_sigma


def _smooth(size: int = 160) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return 120 + 60 * np.sin(xx / 23.0) * np.cos(yy / 31.0)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_estimate_recovers_known_added_noise(sigma):
    rng = np.random.default_rng(int(sigma))
    noisy = _smooth() + rng.normal(0, sigma, (160, 160))
    assert estimate_noise_sigma(noisy.astype(np.float32)) == pytest.approx(sigma, rel=0.05)
    quantised = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    assert estimate_noise_sigma(quantised) == pytest.approx(sigma, rel=0.08)


def test_noise_estimate_is_zero_on_planes_and_tiny_images():
    yy, xx = np.mgrid[0:50, 0:60]
    assert estimate_noise_sigma((3.0 * xx + 2.0 * yy).astype(np.float32)) < 1e-4
    assert estimate_noise_sigma(np.ones((2, 9), np.uint8)) == 0.0


def _noisy_uint8(sigma: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    clean = _smooth()
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return clean, np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def test_nlm_estimates_h_and_removes_most_of_the_noise():
    clean, noisy = _noisy_uint8(8.0)
    record = Record()
    out = NLMDenoise()(noisy, record)
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    assert record.nlm_h == pytest.approx(8.0, rel=0.1)
    error_before = np.mean((noisy - clean) ** 2)
    error_after = np.mean((out - clean) ** 2)
    assert error_after < error_before / 4


def test_nlm_equals_opencv_with_matlab_windows():
    _, noisy = _noisy_uint8(5.0, seed=1)
    out = NLMDenoise(NLMConfig(h=6.0))(noisy)
    reference = cv2.fastNlMeansDenoising(noisy, None, 6.0, 5, 21)
    np.testing.assert_array_equal(out, reference)
    out = NLMDenoise(h=4.0, template_window=7, search_window=11)(noisy)
    np.testing.assert_array_equal(out, cv2.fastNlMeansDenoising(noisy, None, 4.0, 7, 11))


def test_nlm_strength_never_falls_below_h_min():
    flat = np.full((40, 40), 90, np.uint8)
    record = Record()
    out = NLMDenoise(h_min=1.5)(flat, record)
    assert record.nlm_h == 1.5
    np.testing.assert_array_equal(out, flat)


def test_nlm_needs_uint8():
    with pytest.raises(InvalidImageError, match="apply ToUint8 first"):
        NLMDenoise()(np.zeros((20, 20), np.uint16))
