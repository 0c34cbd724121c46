"""The one guarded image read: budgets checked before decoding, every decoder exception an
:class:`ImageReadError` naming the file, decoder chatter kept off the terminal."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.fileio import not_a_regular_file
from mammohybrid.imaging.decoder_output import decoder_output_kept, with_decoder_output
from mammohybrid.imaging.dicom import read_dicom
from mammohybrid.imaging.formats import is_dicom
from mammohybrid.imaging.raster import read_raster

# Images smaller than this on a side are read, with a warning: the model input is upsampled
# from almost nothing.
TINY_SIDE = 32


@dataclass(frozen=True)
class DecodedImage:
    """An image as :func:`decode_image` returns it, and what the decoders said about it."""

    image: np.ndarray
    warnings: list[str] = field(default_factory=list)
    # Millimetres per pixel from a DICOM header (PixelSpacing, else ImagerPixelSpacing) when
    # it gives square pixels; None for other formats, which carry no spacing.
    pixel_spacing_mm: float | None = None


def read_image(path: str | os.PathLike[str], limits: LimitsConfig | None = None) -> np.ndarray:
    """Read a DICOM, PNG, JPEG, PGM, TIFF or BMP image as a 2-D greyscale array (see module
    doc and :func:`decode_image`, whose warnings this drops)."""
    return decode_image(path, limits).image


def decode_image(path: str | os.PathLike[str],
                 limits: LimitsConfig | None = None) -> DecodedImage:
    """The one guarded image read every command (and the server, through ``Predictor``) uses.

    Before decoding, the file's size and the pixel count its header declares are checked against
    ``limits`` (default: :class:`~mammohybrid.config.LimitsConfig`'s), and files of no supported
    format are refused. Whatever a decoder raises, ``BaseException`` subclasses of native
    plugins included (pydicom's RLE plugin panics with ``pyo3_runtime.PanicException``), becomes
    an :class:`ImageReadError` naming the file; only ``KeyboardInterrupt``, ``SystemExit`` and
    ``GeneratorExit`` pass. What decoders print (libpng, libjpeg, OpenCV, pydicom warnings) does
    not reach the terminal: it is returned as warnings, or added to the error.
    """
    path = Path(path)
    limits = limits or LimitsConfig()
    said: list[str] = []
    try:
        with decoder_output_kept(said):
            image, spacing = _decode(path, limits)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except ImageReadError as error:
        raise ImageReadError(with_decoder_output(str(error), said)) from None
    except BaseException as error:  # native decoders raise BaseException too
        message = f"{path}: cannot decode ({type(error).__name__}: {error})"
        raise ImageReadError(with_decoder_output(message, said)) from None
    warnings = [f"decoder: {line}" for line in said]
    if min(image.shape[:2]) < TINY_SIDE:
        warnings.append(f"tiny image ({image.shape[0]}x{image.shape[1]} pixels): its model "
                        "input is upsampled from almost nothing")
    return DecodedImage(image, warnings, spacing)


def _decode(path: Path, limits: LimitsConfig) -> tuple[np.ndarray, float | None]:
    problem = not_a_regular_file(path)
    if problem is not None:
        raise ImageReadError(f"{path}: {problem}")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        raise ImageReadError(f"{path}: file of {size / 2**20:.0f} MB is over the "
                             f"{limits.max_file_mb:g} MB budget (limits.max_file_mb)")
    if is_dicom(path):
        return read_dicom(path, limits)
    return read_raster(path, limits), None
