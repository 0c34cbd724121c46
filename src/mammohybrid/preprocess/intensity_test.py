import numpy as np
import pytest

from mammohybrid.config import IntensityConfig
from mammohybrid.errors import ConfigError, InvalidImageError
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.intensity import ToUint8


def test_uint8_passes_unchanged_in_every_mode():
    image = np.array([[0, 7], [193, 255]], np.uint8)
    for mode in ("full_range", "minmax", "percentile"):
        np.testing.assert_array_equal(ToUint8(mode=mode)(image), image)


def test_uint16_full_range_is_matlab_im2uint8():
    # round(x / 257): 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1, 193 * 257 -> 193.
    values = np.array([[0, 128, 129, 257, 385, 386, 193 * 257, 65535]], np.uint16)
    out = ToUint8()(values)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0, 0, 1, 1, 1, 2, 193, 255]])
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    np.testing.assert_array_equal(ToUint8()(every), np.round(every / 257.0).astype(np.uint8))


def test_float_full_range_scales_unit_interval():
    image = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(ToUint8()(image), [[0, 64, 128, 255]])
    np.testing.assert_array_equal(ToUint8()(image.astype(np.float16)), [[0, 64, 128, 255]])


def test_float_outside_unit_interval_is_a_clear_error():
    with pytest.raises(InvalidImageError, match=r"outside \[0, 1\].*intensity.mode=minmax"):
        ToUint8()(np.array([[0.0, 1000.0]]))
    with pytest.raises(InvalidImageError, match="NaN"):
        ToUint8()(np.array([[0.0, np.nan]]))


def test_minmax_stretches_to_full_scale():
    image = np.array([[1000, 2000, 3000]], np.uint16)
    np.testing.assert_array_equal(ToUint8(mode="minmax")(image), [[0, 128, 255]])
    floats = np.array([[-2.0, 0.0, 2.0]])
    np.testing.assert_array_equal(ToUint8(IntensityConfig(mode="minmax"))(floats),
                                  [[0, 128, 255]])


def test_percentile_clips_outliers():
    image = np.arange(1000, 2001, dtype=np.uint16).reshape(1, -1)
    image[0, -1] = 65535  # one hot pixel must not squash the rest
    out = ToUint8(mode="percentile", low_percentile=10, high_percentile=90)(image)
    low, high = np.percentile(image, [10, 90])
    expected = np.rint(np.clip((image - low) * 255 / (high - low), 0, 255))
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0] == 0 and out[0, -1] == 255 and out[0, 500] == 128


def test_constant_image_stretch_gives_zeros_and_a_warning():
    record = Record()
    out = ToUint8(mode="minmax")(np.full((3, 3), 500, np.uint16), record)
    np.testing.assert_array_equal(out, np.zeros((3, 3), np.uint8))
    assert record.warnings and "constant image" in record.warnings[0]


@pytest.mark.parametrize("bad", [np.zeros((3, 3), np.int32), np.zeros((3, 3), bool),
                                 np.zeros((3, 3, 3), np.uint16)])
def test_unsupported_input_is_rejected(bad):
    with pytest.raises(InvalidImageError, match="to_uint8"):
        ToUint8()(bad)


def test_invalid_settings_are_config_errors():
    with pytest.raises(ConfigError, match="mode"):
        ToUint8(mode="log")
