import numpy as np
import pytest

from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.geometry import FieldOfView, LimitSize, Resize, ToRGB, to_model_input


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


def _square(side: int, top: int, size: int, value: int = 200) -> np.ndarray:
    image = np.zeros((side, side), np.uint8)
    image[top:top + size, top:top + size] = value
    return image


def test_field_of_view_shrinks_to_the_physical_scale_and_pads_with_background():
    # 100 px at 0.2 mm = 20 mm of crop; a 40 mm field on 100 output px is 0.4 mm per pixel, so
    # the crop shrinks by exactly 2 (50 px) and sits in the middle: rows/cols 25-74.
    image = np.full((100, 100), 50, np.uint8)
    image[40:60, 40:60] = 200  # a 4 mm lesion: 10 output pixels, centred
    out = FieldOfView(40, 100)(image, Record(pixel_spacing_mm=0.2))
    assert out.shape == (100, 100) and out.dtype == np.uint8
    expected = np.zeros((100, 100), np.uint8)
    expected[25:75, 25:75] = 50
    expected[45:55, 45:55] = 200
    np.testing.assert_array_equal(out, expected)


def test_field_of_view_same_lesion_same_size_whatever_the_resolution():
    # The same 6 mm lesion scanned at 0.1 mm (60 px) and at 0.05 mm (120 px) per pixel.
    coarse = _square(200, 70, 60)
    fine = _square(400, 140, 120)
    field = FieldOfView(30, 100)  # 0.3 mm per output pixel: the lesion is 20 pixels wide
    for image, spacing in ((coarse, 0.1), (fine, 0.05)):
        out = field(image, Record(pixel_spacing_mm=spacing))
        bright = np.argwhere(out > 100)
        assert bright.min(axis=0).tolist() == [40, 40]
        assert bright.max(axis=0).tolist() == [59, 59]


def test_field_of_view_enlarges_small_crops_and_centres_on_the_lesion():
    # A 40 x 40 crop at 0.5 mm (20 mm); field 20 mm on 80 px: 0.25 mm per pixel, scale 2.
    image = np.zeros((40, 40), np.uint8)
    image[4:8, 10:14] = 255  # lesion centre at (5.5, 11.5)
    out = FieldOfView(20, 80)(image, Record(pixel_spacing_mm=0.5, center=(5.5, 11.5)))
    # Scaled by 2 the lesion spans 8 x 8 pixels, centred on the output centre (39.5, 39.5).
    bright = np.argwhere(out > 128)
    assert bright.min(axis=0).tolist() == [36, 36]
    assert bright.max(axis=0).tolist() == [43, 43]
    # The crop's top edge is (5.5 + 0.5) px * 2 = 12 output pixels above the lesion centre:
    # rows above 39.5 - 12 = 27.5 lie outside the crop, i.e. background.
    assert (out[:27] == 0).all() and out[28:].any()


def test_field_of_view_of_a_large_image_resamples_only_the_field():
    image = np.zeros((5000, 5000), np.uint16)
    image[2490:2510, 2490:2510] = 60000
    out = FieldOfView(10, 50)(image, Record(pixel_spacing_mm=0.05))  # 0.2 mm px: scale 0.25
    assert out.dtype == np.uint16
    # 20 input pixels (1 mm) -> 5 output pixels centred on the output centre 24.5: rows 22-26.
    bright = np.argwhere(out > 30000)
    assert bright.min(axis=0).tolist() == [22, 22] and bright.max(axis=0).tolist() == [26, 26]


def test_field_of_view_refuses_an_unknown_spacing():
    for record in (None, Record(), Record(pixel_spacing_mm=0.0)):
        with pytest.raises(InvalidImageError, match="pixel spacing is unknown"):
            FieldOfView(40, 100)(np.zeros((10, 10), np.uint8), record)
    with pytest.raises(ValueError, match="field_mm"):
        FieldOfView(0, 100)
