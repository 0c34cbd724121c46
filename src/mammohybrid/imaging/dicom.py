"""DICOM pixel data read as display values: the full 16-bit scale whatever ``BitsStored``,
MONOCHROME1 inverted, signed values shifted; and the pixel spacing the header gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging.header import check_declared_pixels
from mammohybrid.imaging.raster import to_full_scale


def dicom_pixel_spacing(dataset: Any) -> float | None:
    """Millimetres per pixel of a DICOM dataset: ``PixelSpacing`` (0028,0030), else
    ``ImagerPixelSpacing`` (0018,1164, at the detector, which is what a mammogram's usually
    carries); None when neither is there, readable and positive, or when the row and column
    spacings differ by more than 1 % (non-square pixels: one number cannot describe them)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            row, column = (float(value) for value in dataset.get(keyword) or ())
        except (TypeError, ValueError):  # absent, one value, three values, text
            continue
        if row > 0 and column > 0 and abs(row - column) <= 0.01 * max(row, column):
            return row
        return None
    return None


def read_dicom(path: Path, limits: LimitsConfig) -> tuple[np.ndarray, float | None]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
        # Rows x Columns x frames x samples is what the pixel decoders allocate: checked first.
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
        samples = int(getattr(dataset, "SamplesPerPixel", 1) or 1)
        bits = int(getattr(dataset, "BitsAllocated", 16) or 16)
    except InvalidDicomError as error:
        raise ImageReadError(f"{path}: not a valid DICOM file ({error})") from None
    except (AttributeError, KeyError):
        raise ImageReadError(f"{path}: DICOM file has no pixel data") from None
    except Exception as error:  # pydicom raises many kinds for truncated or malformed files
        raise ImageReadError(f"{path}: not a readable DICOM file ({type(error).__name__}: "
                             f"{error})") from None
    if not (1 <= samples <= 4 and 1 <= bits <= 64):
        raise ImageReadError(f"{path}: unsupported pixel layout ({samples} sample(s) of "
                             f"{bits} bits)")
    check_declared_pixels(path, rows * columns * frames,
                  f"Rows x Columns x frames = {rows} x {columns} x {frames}", limits)
    try:
        pixels = dataset.pixel_array
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
    if not 1 <= bits_stored <= 32:
        raise ImageReadError(f"{path}: BitsStored {bits_stored} out of range")
    signed = int(getattr(dataset, "PixelRepresentation", 0)) == 1
    # In place, int32 for up to 16 stored bits: a 100-megapixel image costs 400 MB, not int64's
    # 800 MB per copy.
    values = pixels.astype(np.int64) if bits_stored > 16 else pixels.astype(np.int32)
    del pixels
    spacing = dicom_pixel_spacing(dataset)
    if signed:
        values += 1 << (bits_stored - 1)
    max_value = (1 << bits_stored) - 1
    np.clip(values, 0, max_value, out=values)
    if photometric == "MONOCHROME1":
        np.subtract(max_value, values, out=values)
    if bits_allocated <= 8 and bits_stored <= 8:
        values *= 255
        values //= max_value
        return values.astype(np.uint8), spacing
    if bits_stored == 16:
        return values.astype(np.uint16), spacing
    if bits_stored > 16:
        return ((values * 65535 + max_value // 2) // max_value).astype(np.uint16), spacing
    return to_full_scale(values, max_value, np.dtype(np.uint16)), spacing
