"""The one image-reading function of the project, and atomic PNG writing.

``read_image`` returns a 2-D greyscale array:
- ``uint8`` for 8-bit files,
- ``uint16`` for 16-bit files and all DICOM pixel data wider than 8 bits, on the full 16-bit
  scale: a DICOM stored in fewer bits (``BitsStored`` = 12, say) is rescaled so that its
  largest representable value becomes 65535; MONOCHROME1 images are inverted so that bright
  always means dense tissue; signed pixel data is shifted to unsigned;
- ``float32`` for floating-point files (e.g. TIFF).
Colour files are converted to grey. Every failure raises :class:`ImageReadError` naming the file.
"""

from __future__ import annotations

import os
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
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    if image.dtype == np.int16:
        return (image.astype(np.int32) + 32768).astype(np.uint16)
    raise ImageReadError(f"{path}: unsupported pixel type {image.dtype}")


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
