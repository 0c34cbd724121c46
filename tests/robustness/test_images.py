"""Every image read goes through ``decode_image``, which budgets before decoding (refusing
decompression bombs from their headers), turns anything a decoder raises into one
ImageReadError, keeps decoder chatter off the terminal and warns about a 1x1 image."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import decode_image, read_image, write_dicom, write_png

from .conftest import forged_png, png_bytes, small_crop


def test_a_good_png_is_read_without_warnings(tmp_path: Path) -> None:
    image = small_crop()
    decoded = decode_image(write_png(tmp_path / "good.png", image))
    np.testing.assert_array_equal(decoded.image, image)
    assert decoded.warnings == []


def test_a_panic_from_a_native_dicom_plugin_becomes_an_image_error(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """pyo3_runtime.PanicException derives from BaseException, so catching Exception misses it."""
    import pydicom.dataset

    class PanicException(BaseException):
        pass

    def panics(self) -> None:
        raise PanicException("index out of bounds: the len is 20000 but the index is 20000")

    path = write_dicom(tmp_path / "rle.dcm", small_crop().astype(np.uint16) * 257,
                       transfer_syntax="rle")
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(panics))
    with pytest.raises(ImageReadError, match=r"rle\.dcm: cannot decode \(PanicException: index "
                                             "out of bounds"):
        read_image(path)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_ctrl_c_and_exit_are_never_swallowed(tmp_path: Path, monkeypatch,
                                             interrupt: type[BaseException]) -> None:
    from mammohybrid.imaging import decode

    def interrupted(*_: object) -> None:
        raise interrupt()

    monkeypatch.setattr(decode, "read_raster", interrupted)
    with pytest.raises(interrupt):
        read_image(write_png(tmp_path / "a.png", small_crop()))


def test_a_pgm_declaring_a_huge_width_is_refused_before_decoding(tmp_path: Path) -> None:
    """The header is budgeted first, so OpenCV's CV_IO_MAX_IMAGE_WIDTH assertion never escapes."""
    path = tmp_path / "huge.pgm"
    path.write_bytes(b"P5\n2000000000 2\n255\n" + b"\0" * 64)
    with pytest.raises(ImageReadError, match=r"4000\.0 megapixels, over the 100 megapixel budget"):
        read_image(path)


@pytest.mark.parametrize("depth,colour", [(8, 0), (16, 2)], ids=["grey8", "rgb16"])
def test_a_png_bomb_is_refused_from_its_header(tmp_path: Path, depth: int, colour: int) -> None:
    """A 30000 x 30000 PNG would decode to gigabytes: its header alone is enough to refuse it."""
    path = tmp_path / "bomb.png"
    path.write_bytes(forged_png(30000, 30000, depth, colour))
    with pytest.raises(ImageReadError, match=r"30000 x 30000 = 900\.0 megapixels"):
        read_image(path)


def test_a_png_chunk_length_past_the_end_is_refused(tmp_path: Path) -> None:
    """A chunk length claiming more bytes than the file holds is refused before any allocation."""
    data = bytearray(png_bytes(small_crop()))
    idat = data.index(b"IDAT") - 4
    data[idat:idat + 4] = struct.pack(">I", 4_143_978_297)
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="claims 4143978297 bytes, past the end"):
        read_image(path)


def test_jpeg_tiff_and_dicom_headers_are_budgeted_too(tmp_path: Path) -> None:
    import cv2

    limits = LimitsConfig(max_image_pixels=1000)
    image = small_crop(shape=(40, 30))  # 1200 pixels
    for suffix in (".jpg", ".tif", ".bmp", ".pgm"):
        path = tmp_path / f"a{suffix}"
        cv2.imwrite(str(path), image)
        with pytest.raises(ImageReadError, match=r"40 x 30|30 x 40"):
            read_image(path, limits)
        assert read_image(path).shape == (40, 30)  # within the default budget
    dicom = write_dicom(tmp_path / "a.dcm", image)
    with pytest.raises(ImageReadError, match="Rows x Columns x frames = 40 x 30 x 1"):
        read_image(dicom, limits)


def test_the_file_size_budget_is_checked_before_reading(tmp_path: Path) -> None:
    path = write_png(tmp_path / "a.png", small_crop(shape=(200, 200)))
    with pytest.raises(ImageReadError, match=r"over the 0\.001 MB budget"):
        read_image(path, LimitsConfig(max_file_mb=0.001))


def test_formats_nobody_budgeted_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"GIF89a" + b"\0" * 64)
    with pytest.raises(ImageReadError, match="unsupported format"):
        read_image(path)


def test_a_1x1_image_is_read_with_a_warning(tmp_path: Path) -> None:
    decoded = decode_image(write_png(tmp_path / "dot.png", np.full((1, 1), 200, np.uint8)))
    assert decoded.image.shape == (1, 1)
    assert decoded.warnings == ["tiny image (1x1 pixels): its model input is upsampled from "
                                "almost nothing"]


def test_decoder_chatter_goes_to_the_error_not_the_terminal(tmp_path: Path, capfd) -> None:
    """libpng/OpenCV messages about a bad file go into its error, which the CSV reports."""
    data = bytearray(png_bytes(small_crop(shape=(64, 64))))
    idat = data.index(b"IDAT") + 4
    data[idat + 2:idat + 40] = b"\xff" * 38  # corrupt compressed data, lengths intact
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    printed = capfd.readouterr()
    assert printed.err == "" and printed.out == ""
    assert "corrupt.png" in str(caught.value)


def test_a_bomb_costs_no_memory_measured_in_a_subprocess(tmp_path: Path) -> None:
    """Peak RSS of reading each bomb (< 10 MB files) stays far under 2 GB."""
    bombs = []
    for name, data in [("grey.png", forged_png(30000, 30000)),
                       ("rgb16.png", forged_png(30000, 30000, 16, 2)),
                       ("wide.pgm", b"P5\n46000 46000\n255\n" + b"\0" * 1024)]:
        (tmp_path / name).write_bytes(data)
        bombs.append(str(tmp_path / name))
    # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forked pytest process.
    script = ("import re, sys\n"
              "from mammohybrid.imaging import read_image\n"
              "from mammohybrid.errors import ImageReadError\n"
              "for path in sys.argv[1:]:\n"
              "    try:\n"
              "        read_image(path)\n"
              "    except ImageReadError:\n"
              "        pass\n"
              "status = open('/proc/self/status').read()\n"
              "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n")
    result = subprocess.run([sys.executable, "-c", script, *bombs], capture_output=True,
                            text=True, check=True)
    peak_kib = int(result.stdout.split()[-1])
    assert peak_kib < 2 * 1024 * 1024
    assert peak_kib < 400 * 1024  # in fact: the interpreter, NumPy, OpenCV and pydicom


def test_real_rle_mutants_that_panic_the_decoder_are_error_rows(tmp_path: Path) -> None:
    """A native decoder's panic on real files is one error row: RLE Lossless pixel data with a
    chunk deleted or duplicated makes the native RLE plugin panic (when it is the one installed)."""
    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 4096, (100, 100)) * 16).astype(np.uint16)
    data = write_dicom(tmp_path / "rle.dcm", pixels, transfer_syntax="rle").read_bytes()
    messages = []
    for k in range(40):
        at, size = len(data) - 200 - 250 * k, 123  # inside the pixel data, at its end
        mutant = data[:at] + data[at + size:] if k % 2 else data[:at] + data[at:at + size] * 2 \
            + data[at + size:]
        path = tmp_path / f"m{k}.dcm"
        path.write_bytes(mutant)
        try:
            read_image(path)
        except ImageReadError as error:
            messages.append(str(error))
    assert messages  # most mutants are refused, none escapes as anything else
    if not any("PanicException" in message for message in messages):
        pytest.skip("the installed RLE decoder does not panic on these files")
    assert all("\n" not in message for message in messages)


def test_threads_reading_at_once_leave_stderr_where_it_was(tmp_path: Path) -> None:
    """A server may call Predictor from several threads: the stderr redirection must nest."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    bad = tmp_path / "bad.png"
    bad.write_bytes(png_bytes(small_crop())[:60])
    good = write_png(tmp_path / "good.png", small_crop())
    before = os.fstat(2)

    def read_both(_: int) -> tuple[str, int]:
        try:
            read_image(bad)
        except ImageReadError as error:
            return str(error), read_image(good).size
        raise AssertionError("the truncated file was read")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read_both, range(40)))
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    assert all("bad.png" in message and size == 64 * 48 for message, size in results)


def test_a_pydicom_warning_becomes_a_row_warning(tmp_path: Path, capfd) -> None:
    """pydicom warns (and still decodes) about excess pixel data: the message belongs to that
    image's row, not to the terminal."""
    import pydicom

    path = write_dicom(tmp_path / "padded.dcm", small_crop(3, (40, 40)).astype(np.uint16))
    dataset = pydicom.dcmread(path)
    dataset.PixelData = dataset.PixelData + b"\0" * 400
    dataset.save_as(path)
    decoded = decode_image(path)
    assert decoded.image.shape == (40, 40)
    assert decoded.warnings == ["decoder: UserWarning: The pixel data is 3600 bytes long, which "
                                "indicates it contains 400 bytes of excess padding to be removed"]
    assert capfd.readouterr().err == ""
