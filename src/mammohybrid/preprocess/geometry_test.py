import numpy as np
import pytest

from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.geometry import LimitSize, Resize, ToRGB, to_model_input


def test_limit_size_shrinks_only_large_images_keeping_aspect():
    big = np.zeros((1000, 500), np.uint16)
    assert LimitSize(512)(big).shape == (512, 256)
    assert LimitSize(512)(big).dtype == np.uint16
    small = np.zeros((300, 200), np.uint8)
    assert LimitSize(512)(small) is small


def test_limit_size_averages_areas():
    image = np.array([[0, 4, 8, 8], [4, 8, 8, 8], [100, 100, 0, 0], [100, 100, 0, 2]], np.float32)
    np.testing.assert_allclose(LimitSize(2)(image), [[4, 8], [100, 0.5]])


def test_resize_to_model_side_and_keeps_dtype():
    out = Resize(229)(np.full((100, 80), 77, np.uint8))
    assert out.shape == (229, 229) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, 77)  # a constant image stays constant
    exact = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(Resize(2)(exact), [[2.5, 4.5], [10.5, 12.5]])
    same = np.zeros((229, 229), np.uint8)
    assert Resize(229)(same) is same


def test_resize_enlarging_small_crops_stays_in_range():
    image = np.zeros((20, 20), np.uint8)
    image[5:15, 5:15] = 255  # a sharp edge: bicubic overshoot must saturate, not wrap
    out = Resize(229)(image)
    assert out.min() == 0 and out.max() == 255 and out[114, 114] == 255


def test_to_rgb_replicates_the_grey_channel():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    out = ToRGB()(image)
    assert out.shape == (2, 3, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], image)


def test_to_model_input_single_and_batch():
    image = np.arange(20, dtype=np.uint8).reshape(4, 5)
    single = to_model_input(image)
    assert single.shape == (4, 5, 3) and single.dtype == np.float32
    assert single[3, 4].tolist() == [19.0, 19.0, 19.0]
    batch = to_model_input(np.stack([image, 255 - image]))
    assert batch.shape == (2, 4, 5, 3) and batch[1, 0, 0, 0] == 255.0
    assert to_model_input([image, image, image]).shape == (3, 4, 5, 3)
    assert to_model_input(image[..., None]).shape == (4, 5, 3)
    assert to_model_input(np.stack([image] * 2)[..., None]).shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(to_model_input(single), single)


def test_to_model_input_rejects_other_shapes():
    with pytest.raises(InvalidImageError, match="to_model_input"):
        to_model_input(np.zeros(5))


def test_geometry_rejects_bad_input():
    with pytest.raises(InvalidImageError, match="resize"):
        Resize(229)(np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError):
        Resize(0)
