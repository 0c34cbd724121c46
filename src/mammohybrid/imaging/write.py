"""Atomic PNG and DICOM writing; a PNG is decoded back before it is renamed into place."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mammohybrid.errors import ImageReadError
from mammohybrid.fileio import atomic_path, atomic_write_bytes
from mammohybrid.imaging.decoder_output import decoder_output_kept


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write an 8- or 16-bit greyscale (or BGR) image as PNG, atomically; the encoded bytes are
    decoded back first, and the file is renamed into place only once its size on disk is
    right (see :mod:`mammohybrid.fileio`)."""
    path = Path(path)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ImageReadError(f"{path}: could not encode image of dtype {image.dtype} as PNG")
    if not png_decodes(encoded, image.shape[:2]):
        raise ImageReadError(f"{path}: the encoded PNG does not decode back")
    atomic_write_bytes(path, encoded.tobytes())
    return path


def png_decodes(data: np.ndarray | bytes, shape: tuple[int, ...] | None = None) -> bool:
    """True if ``data`` (a PNG file's bytes) decodes, to ``shape`` (height, width) if given."""
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    if buffer.size == 0:
        return False
    with decoder_output_kept([]):
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    return image is not None and (shape is None or image.shape[:2] == tuple(shape))


# Transfer syntaxes write_dicom can produce (all lossless; TCIA's CBIS-DDSM uses the first two).
DICOM_TRANSFER_SYNTAXES = {
    "explicit": "1.2.840.10008.1.2.1",  # Explicit VR Little Endian (uncompressed)
    "rle": "1.2.840.10008.1.2.5",  # RLE Lossless
    "jpeg2000": "1.2.840.10008.1.2.4.90",  # JPEG 2000 Image Compression (Lossless Only)
}
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def write_dicom(path: str | os.PathLike[str], image: np.ndarray, *, bits_stored: int | None = None,
                photometric: str = "MONOCHROME2", signed: bool = False,
                transfer_syntax: str = "explicit",
                attributes: dict[str, object] | None = None) -> Path:
    """Write a 2-D uint8/uint16 image as a single-frame DICOM file, atomically.

    ``image`` holds display values (bright = dense, on the full scale of its dtype), exactly
    what :func:`read_image` returns; ``bits_stored`` (default: the dtype's width),
    ``photometric`` (MONOCHROME1 stores inverted values) and ``signed`` choose how they are
    stored, so ``read_image(write_dicom(p, x))`` gives ``x`` back (up to the quantisation of
    fewer stored bits). ``attributes`` are DICOM keywords (``PatientID``, ``SeriesInstanceUID``,
    ...); an ``SOPInstanceUID`` not given there is generated.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, generate_uid

    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_dicom expects a 2-D uint8 or uint16 array, got {image.dtype} "
                         f"{image.shape}")
    if transfer_syntax not in DICOM_TRANSFER_SYNTAXES:
        raise ValueError(f"unknown transfer syntax '{transfer_syntax}' "
                         f"(known: {', '.join(DICOM_TRANSFER_SYNTAXES)})")
    photometric = photometric.upper()
    if photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, not {photometric}")
    allocated = image.dtype.itemsize * 8
    bits_stored = bits_stored or allocated
    if not 1 <= bits_stored <= allocated:
        raise ValueError(f"bits_stored {bits_stored} does not fit a {image.dtype} image")

    full_scale = np.iinfo(image.dtype).max
    max_value = (1 << bits_stored) - 1
    stored = (image.astype(np.int64) * max_value + full_scale // 2) // full_scale
    if photometric == "MONOCHROME1":
        stored = max_value - stored
    if signed:
        stored = (stored - (1 << (bits_stored - 1))).astype(np.int8 if allocated == 8 else np.int16)
    else:
        stored = stored.astype(image.dtype)

    attributes = dict(attributes or {})
    sop_instance = UID(str(attributes.pop("SOPInstanceUID", None) or generate_uid()))
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = UID(_SECONDARY_CAPTURE)
    dataset.file_meta.MediaStorageSOPInstanceUID = sop_instance
    dataset.SOPClassUID = _SECONDARY_CAPTURE
    dataset.SOPInstanceUID = sop_instance
    dataset.Modality = "MG"
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    dataset.set_pixel_data(stored, photometric, bits_stored, generate_instance_uid=False)
    syntax = pydicom.uid.UID(DICOM_TRANSFER_SYNTAXES[transfer_syntax])
    if syntax.is_compressed:
        dataset.compress(syntax, generate_instance_uid=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return path
