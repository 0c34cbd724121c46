"""write_dicom and write_png: what they write reads back through read_image."""

from __future__ import annotations

import numpy as np
import pytest

from mammohybrid.imaging import png_decodes, read_image, write_dicom, write_png


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


def test_write_png_round_trips_16_bit(tmp_path):
    image = np.arange(0, 65535, 257, dtype=np.uint16).reshape(15, 17)
    np.testing.assert_array_equal(read_image(write_png(tmp_path / "a.png", image)), image)


def test_png_decodes_checks_the_shape_it_is_given(tmp_path) -> None:
    data = write_png(tmp_path / "a.png", np.zeros((6, 9), np.uint8)).read_bytes()
    assert png_decodes(data) and png_decodes(data, (6, 9))
    assert not png_decodes(data, (9, 6))
    assert not png_decodes(b"") and not png_decodes(data[:20])
