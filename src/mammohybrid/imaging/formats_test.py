"""Which files are DICOM: a DICOM suffix, or the DICM magic at byte 128 whatever the name."""

from __future__ import annotations

from pathlib import Path

from mammohybrid.imaging import DICOM_SUFFIXES, IMAGE_SUFFIXES, RASTER_SUFFIXES, is_dicom


def test_a_dicom_suffix_or_the_magic_makes_a_dicom(tmp_path: Path) -> None:
    assert is_dicom(tmp_path / "absent.DCM")  # the suffix alone, in any case
    magic = tmp_path / "000001"
    magic.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    assert is_dicom(magic)
    (tmp_path / "short").write_bytes(b"DICM")
    assert not is_dicom(tmp_path / "short")
    assert not is_dicom(tmp_path / "absent.png")


def test_the_suffix_sets_do_not_overlap() -> None:
    assert not DICOM_SUFFIXES & RASTER_SUFFIXES
    assert IMAGE_SUFFIXES == DICOM_SUFFIXES | RASTER_SUFFIXES
