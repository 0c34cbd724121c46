"""The one image-reading function of the project, and atomic PNG and DICOM writing.

``read_image`` returns a 2-D greyscale array:
- ``uint8`` for 8-bit files,
- ``uint16`` for 16-bit files and all DICOM pixel data wider than 8 bits, on the full 16-bit
  scale: a DICOM stored in fewer bits (``BitsStored`` = 12, say) is rescaled so that its
  largest representable value becomes 65535; MONOCHROME1 images are inverted so that bright
  always means dense tissue; signed pixel data is shifted to unsigned;
- ``float32`` for floating-point files (e.g. TIFF).
Colour files are converted to grey. A PGM/PPM whose header ``maxval`` is below its depth's full
scale (a 12-bit PGM with maxval 4095) is rescaled to that full scale, as DICOM ``BitsStored`` is:
OpenCV returns the stored values, which would put a 12-bit film far below the 193 threshold.
Every failure raises :class:`ImageReadError` naming the file.

``write_dicom`` is its inverse for DICOM (used by the synthetic CBIS-DDSM and the tests): it
encodes an image as ``read_image`` would return it, in a chosen ``BitsStored``, photometric
interpretation, signedness and transfer syntax (uncompressed, RLE or JPEG 2000 lossless).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np

from mammohybrid.errors import ImageReadError
from mammohybrid.fileio import atomic_path

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".pnm", ".ppm", ".tif", ".tiff", ".bmp"}
IMAGE_SUFFIXES = DICOM_SUFFIXES | RASTER_SUFFIXES


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """True for files with a DICOM suffix or the ``DICM`` magic at byte 128."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a DICOM, PNG, JPEG, PGM or TIFF image as a 2-D greyscale array (see module doc)."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if is_dicom(path):
        return _read_dicom(path)
    return _read_raster(path)


def _read_raster(path: Path) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[:, :, :3]
        if image.shape[2] == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        else:
            image = image[:, :, 0]
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        maxval = _pnm_maxval(data)
        full_scale = int(np.iinfo(image.dtype).max)
        if maxval is not None and maxval < full_scale:
            values = np.minimum(image, maxval).astype(np.int64)
            image = ((values * full_scale + maxval // 2) // maxval).astype(image.dtype)
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    if image.dtype == np.int16:
        return (image.astype(np.int32) + 32768).astype(np.uint16)
    raise ImageReadError(f"{path}: unsupported pixel type {image.dtype}")


def _pnm_maxval(data: np.ndarray) -> int | None:
    """The ``maxval`` of a PGM/PPM header (P2, P3, P5, P6), None for any other file."""
    head = data[:1024].tobytes()
    if head[:2] not in (b"P2", b"P3", b"P5", b"P6"):
        return None
    # Header: magic, width, height, maxval, separated by whitespace; '#' comments run to the
    # end of their line.
    fields = re.sub(rb"#[^\r\n]*", b" ", head[2:]).split(maxsplit=3)
    try:
        maxval = int(fields[2])
    except (IndexError, ValueError):
        return None
    return maxval if maxval > 0 else None


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except InvalidDicomError as error:
        raise ImageReadError(f"{path}: not a valid DICOM file ({error})") from None
    except (AttributeError, KeyError):
        raise ImageReadError(f"{path}: DICOM file has no pixel data") from None
    except Exception as error:  # pydicom raises many kinds for truncated or undecodable data
        raise ImageReadError(f"{path}: cannot decode DICOM pixel data ({error})") from None

    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3 and photometric in {"RGB", "YBR_FULL", "YBR_FULL_422"}:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY)
    elif pixels.ndim == 3:
        raise ImageReadError(f"{path}: multi-frame DICOM ({pixels.shape[0]} frames) is not "
                             "supported; expected one ROI image")
    if pixels.ndim != 2:
        raise ImageReadError(f"{path}: unexpected DICOM pixel array shape {pixels.shape}")

    bits_allocated = int(getattr(dataset, "BitsAllocated", pixels.dtype.itemsize * 8))
    bits_stored = int(getattr(dataset, "BitsStored", bits_allocated) or bits_allocated)
    signed = int(getattr(dataset, "PixelRepresentation", 0)) == 1
    values = pixels.astype(np.int64)
    if signed:
        values = values + (1 << (bits_stored - 1))
    max_value = (1 << bits_stored) - 1
    values = np.clip(values, 0, max_value)
    if photometric == "MONOCHROME1":
        values = max_value - values
    if bits_allocated <= 8 and bits_stored <= 8:
        return (values * 255 // max_value).astype(np.uint8)
    if bits_stored != 16:
        values = (values * 65535 + max_value // 2) // max_value
    return values.astype(np.uint16)


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write an 8- or 16-bit greyscale (or BGR) image as PNG, atomically."""
    path = Path(path)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ImageReadError(f"{path}: could not encode image of dtype {image.dtype} as PNG")
    with atomic_path(path) as tmp:
        encoded.tofile(tmp)
    return path


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
    from pydicom.uid import generate_uid

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
    sop_instance = str(attributes.pop("SOPInstanceUID", None) or generate_uid())
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = _SECONDARY_CAPTURE
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
