import numpy as np
import pytest
from scipy import ndimage, signal

from mammohybrid.config import GaussianConfig, WienerConfig
from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.filters import GaussianFilter, MedianFilter, WienerFilter, wiener2

RNG = np.random.default_rng(0)
IMAGE8 = RNG.integers(0, 256, (37, 53), dtype=np.uint8)
IMAGE_F = RNG.normal(100, 30, (37, 53))


# ---------------------------------------------------------------------------- median
@pytest.mark.parametrize("ksize", [3, 5, 7])
def test_median_matches_scipy_with_replicated_borders(ksize):
    out = MedianFilter(ksize=ksize)(IMAGE8)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, ndimage.median_filter(IMAGE8, ksize, mode="nearest"))


def test_median_removes_salt_noise_and_keeps_other_dtypes():
    image = np.full((9, 9), 50, np.uint16)
    image[4, 4] = 60000
    np.testing.assert_array_equal(MedianFilter()(image), np.full((9, 9), 50))
    floats = IMAGE_F.astype(np.float32)
    np.testing.assert_allclose(MedianFilter(ksize=5)(floats),
                               ndimage.median_filter(floats, 5, mode="nearest"))


def test_large_median_needs_uint8():
    with pytest.raises(InvalidImageError, match="7x7 kernel needs uint8"):
        MedianFilter(ksize=7)(IMAGE8.astype(np.uint16))


# ---------------------------------------------------------------------------- gaussian
def test_gaussian_kernel_size_follows_matlab_rule():
    assert GaussianFilter().ksize == 3  # sigma 0.5 -> 2 * ceil(1) + 1
    assert GaussianFilter(sigma=1.0).ksize == 5
    assert GaussianFilter(sigma=1.3).ksize == 7
    assert GaussianFilter(GaussianConfig(sigma=1.0, ksize=9)).ksize == 9


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_gaussian_matches_scipy_on_floats(sigma):
    filt = GaussianFilter(sigma=sigma)
    radius = filt.ksize // 2
    reference = ndimage.gaussian_filter(IMAGE_F, sigma, mode="nearest", truncate=radius / sigma)
    np.testing.assert_allclose(filt(IMAGE_F), reference, atol=1e-6)


def test_gaussian_on_uint8_is_close_to_the_float_result():
    # OpenCV filters uint8 in fixed point: rounding plus a little kernel quantisation.
    out = GaussianFilter()(IMAGE8)
    assert out.dtype == np.uint8
    reference = ndimage.gaussian_filter(IMAGE8.astype(float), 0.5, mode="nearest", truncate=2.0)
    difference = np.abs(out - reference)
    assert difference.max() < 1.5 and difference.mean() < 0.4
    assert abs((out - reference).mean()) < 0.05  # no bias


# ---------------------------------------------------------------------------- wiener
@pytest.mark.parametrize("window", [3, 5])
def test_wiener_matches_scipy_wiener(window):
    out = WienerFilter(window=window)(IMAGE_F)
    assert out.dtype == np.float64
    reference = signal.wiener(IMAGE_F, window)
    margin = window // 2
    np.testing.assert_allclose(out[margin:-margin, margin:-margin],
                               reference[margin:-margin, margin:-margin], atol=1e-6)
    np.testing.assert_allclose(out, reference, atol=1e-6)  # zero padding as scipy/MATLAB


def test_wiener_with_given_noise_matches_scipy():
    out = WienerFilter(WienerConfig(noise=400.0))(IMAGE_F)
    np.testing.assert_allclose(out, signal.wiener(IMAGE_F, 3, noise=400.0), atol=1e-6)


def test_wiener_on_uint8_is_the_rounded_float_result():
    out = WienerFilter()(IMAGE8)
    assert out.dtype == np.uint8
    reference = signal.wiener(IMAGE8.astype(float), 3)
    np.testing.assert_array_equal(out, np.clip(np.rint(reference), 0, 255))


def test_wiener_hand_computed_constant_image():
    # Interior windows of a constant image have variance 0 <= noise: output = local mean = c.
    image = np.full((6, 7), 40.0)
    out = wiener2(image)
    np.testing.assert_array_equal(out[1:-1, 1:-1], image[1:-1, 1:-1])
    # Corner: window mean over zero padding is 4 * 40 / 9, and the corner is smoothed to it
    # only as far as its variance exceeds the noise.
    assert 4 * 40 / 9 <= out[0, 0] <= 40


def test_wiener_gives_no_nan_on_a_flat_image():
    for image in (np.zeros((16, 16)), np.zeros((16, 16), np.uint8), np.full((5, 5), 7.0)):
        out = WienerFilter()(image)
        assert not np.isnan(out.astype(float)).any()
    np.testing.assert_array_equal(WienerFilter()(np.zeros((16, 16), np.uint8)), 0)


def test_filters_reject_bad_input():
    for filt in (MedianFilter(), GaussianFilter(), WienerFilter()):
        with pytest.raises(InvalidImageError, match=filt.name):
            filt(np.zeros((4, 4), np.int32))
        with pytest.raises(InvalidImageError, match="2-D"):
            filt(np.zeros((4, 4, 3), np.uint8))
