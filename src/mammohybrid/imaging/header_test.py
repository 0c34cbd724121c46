"""What headers declare, read without decoding, and the pixel budget checked against it."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import declared_raster_size
from mammohybrid.imaging.header import check_declared_pixels, check_png_chunks


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".pgm", ".tif", ".bmp"])
def test_the_declared_size_is_the_encoded_one(suffix: str) -> None:
    ok, encoded = cv2.imencode(suffix, np.zeros((30, 70), np.uint8))
    assert ok
    assert declared_raster_size(encoded.tobytes(), Path(f"x{suffix}")) == (70, 30)


def test_unknown_or_cut_headers_are_refused() -> None:
    with pytest.raises(ImageReadError, match="unsupported format"):
        declared_raster_size(b"GIF89a" + b"\0" * 20, Path("x.gif"))
    with pytest.raises(ImageReadError, match="cut short or malformed"):
        declared_raster_size(b"BM" + b"\0" * 4, Path("x.bmp"))
    with pytest.raises(ImageReadError, match="without a frame header"):
        declared_raster_size(b"\xff\xd8\xff\xd9", Path("x.jpg"))


def test_the_pixel_budget_counts_what_the_header_declares() -> None:
    limits = LimitsConfig(max_image_pixels=100)
    check_declared_pixels(Path("a.png"), 100, "10 x 10", limits)
    with pytest.raises(ImageReadError, match=r"a\.png: header declares no pixels \(0 x 5\)"):
        check_declared_pixels(Path("a.png"), 0, "0 x 5", limits)
    with pytest.raises(ImageReadError, match=r"over the 0\.0001 megapixel budget"):
        check_declared_pixels(Path("a.png"), 101, "101 x 1", limits)


def test_a_png_chunk_longer_than_the_file_is_refused() -> None:
    ok, encoded = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    assert ok
    check_png_chunks(encoded.ravel(), Path("a.png"))
    forged = encoded.ravel().copy()
    forged[33:37] = np.frombuffer(struct.pack(">I", 1 << 31), np.uint8)  # the chunk after IHDR
    with pytest.raises(ImageReadError, match="past the end of the file"):
        check_png_chunks(forged, Path("a.png"))
