"""read_image on raster files: depth kept, colour to grey, a PGM's maxval put on the full scale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammohybrid.imaging import decode_image, read_image


def test_raster_images_carry_no_pixel_spacing(tmp_path):
    path = tmp_path / "x.png"
    assert cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))
    assert decode_image(path).pixel_spacing_mm is None


@pytest.mark.parametrize("suffix", [".png", ".pgm", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_raster_files_keep_their_depth(tmp_path, suffix, dtype):
    image = np.random.default_rng(2).integers(0, np.iinfo(dtype).max, (21, 34)).astype(dtype)
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), image)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)


def test_pgm_maxval_below_full_scale_is_rescaled(tmp_path):
    # OpenCV returns the stored values of a PGM; the header's maxval says what white is.
    stored = np.array([[0, 1, 2048], [4095, 100, 3000]], ">u2")
    twelve = tmp_path / "twelve.pgm"
    twelve.write_bytes(b"P5\n# a 12-bit film\n3 2\n4095\n" + stored.tobytes())
    image = read_image(twelve)
    assert image.dtype == np.uint16
    # round(v * 65535 / 4095), as DICOM BitsStored 12
    np.testing.assert_array_equal(image, [[0, 16, 32776], [65535, 1600, 48011]])
    four = tmp_path / "four.pgm"
    four.write_bytes(b"P5 2 2 15\n" + bytes([0, 15, 8, 1]))
    np.testing.assert_array_equal(read_image(four), [[0, 255], [136, 17]])


def test_jpeg_and_colour_files_become_grey(tmp_path):
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 1] = 200  # pure green: grey = 0.587 * 200
    assert cv2.imwrite(str(tmp_path / "c.png"), colour)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), 117)
    assert cv2.imwrite(str(tmp_path / "g.jpg"), np.full((16, 16), 90, np.uint8))
    jpeg = read_image(tmp_path / "g.jpg")
    assert jpeg.dtype == np.uint8 and np.abs(jpeg.astype(int) - 90).max() <= 2
