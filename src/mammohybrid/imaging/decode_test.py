"""decode_image, the guarded read: every failure an ImageReadError naming the file."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import decode_image, read_image, write_png


def test_unreadable_files_raise_image_read_error_naming_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")
    corrupt_png = tmp_path / "corrupt.png"
    corrupt_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(ImageReadError, match=r"corrupt\.png"):
        read_image(corrupt_png)
    not_dicom = tmp_path / "text.dcm"
    not_dicom.write_text("hello")
    with pytest.raises(ImageReadError, match=r"text\.dcm"):
        read_image(not_dicom)


def test_what_is_no_regular_file_is_named_for_what_it_is(tmp_path):
    """A named pipe, a device, a folder or a broken link is not "no such file" (and a pipe
    is never opened: reading it would wait for a writer)."""
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "gone.png")
    for path, said in [(fifo, "a named pipe (FIFO), not a regular file"),
                       ("/dev/zero", "a character device, not a regular file"),
                       (tmp_path / "folder.png", "a folder, not a regular file"),
                       (tmp_path / "link.png", "no such file (a broken symbolic link)")]:
        with pytest.raises(ImageReadError) as error:
            read_image(path)
        assert str(error.value) == f"{path}: {said}"


def test_a_tiny_image_is_read_with_a_warning(tmp_path) -> None:
    decoded = decode_image(write_png(tmp_path / "tiny.png", np.zeros((8, 40), np.uint8)))
    assert decoded.image.shape == (8, 40)
    assert decoded.warnings == ["tiny image (8x40 pixels): its model input is upsampled from "
                                "almost nothing"]
    assert decode_image(write_png(tmp_path / "ok.png", np.zeros((32, 32), np.uint8))).warnings == []
