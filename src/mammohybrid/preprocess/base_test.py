import numpy as np
import pytest

from mammohybrid.config import MedianConfig
from mammohybrid.errors import ConfigError, InvalidImageError
from mammohybrid.preprocess.base import check_image, section


def test_check_image_accepts_2d_and_drops_a_single_channel_axis():
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    checked = check_image(image, "step")
    assert checked.shape == (3, 4)
    np.testing.assert_array_equal(checked, image[:, :, 0])


def test_check_image_makes_views_contiguous():
    image = np.zeros((6, 8), np.uint8)[:, ::2]
    assert check_image(image, "step").flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("bad, message", [
    ([[1, 2], [3, 4]], "expected a NumPy array"),
    (np.zeros((4, 4, 3), np.uint8), "expected a 2-D greyscale image"),
    (np.zeros((0, 5), np.uint8), "empty image"),
])
def test_check_image_rejects_bad_input(bad, message):
    with pytest.raises(InvalidImageError, match=message):
        check_image(bad, "step")


def test_check_image_names_the_step_and_dtypes():
    with pytest.raises(InvalidImageError, match=r"nlm: expected dtype uint8, got uint16 "
                                               r"\(apply ToUint8 first\)"):
        check_image(np.zeros((4, 4), np.uint16), "nlm", (np.uint8,))


def test_section_applies_and_validates_overrides():
    assert section(MedianConfig, None, {}) == MedianConfig()
    assert section(MedianConfig, MedianConfig(ksize=5), {}).ksize == 5
    assert section(MedianConfig, MedianConfig(ksize=5), {"ksize": 7}).ksize == 7
    with pytest.raises(ConfigError, match="ksize"):
        section(MedianConfig, None, {"ksize": 4})
    with pytest.raises(ConfigError, match="size"):
        section(MedianConfig, None, {"size": 3})
