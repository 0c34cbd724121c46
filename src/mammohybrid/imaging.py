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
Every failure raises :class:`ImageReadError` naming the file; :func:`decode_image` is the
guarded read behind it (budgets checked before decoding, every decoder exception caught,
decoder chatter kept off the terminal).

``write_dicom`` is its inverse for DICOM (used by the synthetic CBIS-DDSM and the tests): it
encodes an image as ``read_image`` would return it, in a chosen ``BitsStored``, photometric
interpretation, signedness and transfer syntax (uncompressed, RLE or JPEG 2000 lossless).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.fileio import atomic_path, atomic_write_bytes, not_a_regular_file

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


def read_limits() -> LimitsConfig:
    """The budgets :func:`decode_image` applies when it is given none."""
    return _limits


def set_read_limits(limits: LimitsConfig) -> None:
    """Set the budgets of every later read in this process that is given none (a command sets
    its config's ``limits`` once; worker processes are handed theirs explicitly)."""
    global _limits
    _limits = limits


_limits = LimitsConfig()

# Images smaller than this on a side are read, with a warning: the model input is upsampled
# from almost nothing.
TINY_SIDE = 32
# Set (to anything) to let decoders write to the terminal: the CLI's --debug does.
SHOW_DECODER_OUTPUT_ENV = "MAMMOHYBRID_SHOW_DECODER_OUTPUT"
# What a decoder may say about one file that is kept for its row.
_MAX_DECODER_LINES, _MAX_DECODER_BYTES = 5, 8192


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

    Before decoding, the file's size and the pixel count its header declares are checked
    against ``limits`` (default :func:`read_limits`), and files of no supported format are
    refused. Whatever a decoder raises, ``BaseException`` subclasses of native plugins
    included (pydicom's RLE plugin panics with ``pyo3_runtime.PanicException``), becomes an
    :class:`ImageReadError` naming the file; only ``KeyboardInterrupt``, ``SystemExit`` and
    ``GeneratorExit`` pass. What decoders print (libpng, libjpeg, OpenCV, pydicom warnings)
    does not reach the terminal: it is returned as warnings, or added to the error.
    """
    path = Path(path)
    limits = limits or _limits
    said: list[str] = []
    try:
        with _decoder_output_kept(said):
            image, spacing = _decode(path, limits)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except ImageReadError as error:
        raise ImageReadError(_with_decoder_output(str(error), said)) from None
    except BaseException as error:  # noqa: BLE001 - native decoders raise BaseException too
        message = f"{path}: cannot decode ({type(error).__name__}: {error})"
        raise ImageReadError(_with_decoder_output(message, said)) from None
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
        return _read_dicom(path, limits)
    return _read_raster(path, limits), None


def _check_pixels(path: Path, pixels: int, what: str, limits: LimitsConfig) -> None:
    if pixels <= 0:
        raise ImageReadError(f"{path}: header declares no pixels ({what})")
    if pixels > limits.max_image_pixels:
        raise ImageReadError(f"{path}: header declares {what} = {pixels / 1e6:.1f} megapixels, "
                             f"over the {limits.max_image_pixels / 1e6:g} megapixel budget "
                             "(limits.max_image_pixels)")


@contextlib.contextmanager
def _decoder_output_kept(lines: list[str]) -> Iterator[None]:
    """Keep what decoders print on file descriptor 2 (C libraries) and warn (pydicom) in the
    block; append it to ``lines`` when the block ends. A no-op under ``--debug``."""
    if os.environ.get(SHOW_DECODER_OUTPUT_ENV):
        yield
        return
    # File descriptor 2 and the warning filters are the process's: threads (a server calling
    # Predictor from several) take turns, or one would restore another's redirection.
    with _decoder_output_lock:
        yield from _kept_output(lines)


_decoder_output_lock = threading.RLock()


def _kept_output(lines: list[str]) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(_MAX_DECODER_BYTES).decode("utf-8", errors="replace")
            said = [line.strip() for line in text.splitlines() if line.strip()]
            said += [f"{w.category.__name__}: {w.message}" for w in caught]
            lines.extend(list(dict.fromkeys(said))[:_MAX_DECODER_LINES])


def _with_decoder_output(message: str, said: list[str]) -> str:
    """The error's one line: decoders' messages appended, line breaks folded."""
    message = f"{message} [decoder: {' | '.join(said)}]" if said else message
    return " ".join(message.splitlines())


def _read_raster(path: Path, limits: LimitsConfig) -> np.ndarray:
    data = np.fromfile(path, dtype=np.uint8)
    width, height = declared_raster_size(memoryview(data), path)
    if data[:8].tobytes() == _PNG_SIGNATURE:
        _check_png_chunks(data, path)
    _check_pixels(path, width * height, f"{width} x {height}", limits)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"{path}: not a readable image (corrupt or unsupported format)")
    if image.ndim == 3:
        # BGRA2GRAY weighs B, G, R as BGR2GRAY does, without first copying out the alpha.
        if image.shape[2] in (3, 4):
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3
                                 else cv2.COLOR_BGRA2GRAY)
        else:
            image = image[:, :, 0]
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        maxval = _pnm_maxval(data)
        full_scale = int(np.iinfo(image.dtype).max)
        if maxval is not None and maxval < full_scale:
            image = _to_full_scale(np.minimum(image, maxval), maxval, image.dtype)
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    if image.dtype == np.int16:
        return (image.astype(np.int32) + 32768).astype(np.uint16)
    raise ImageReadError(f"{path}: unsupported pixel type {image.dtype}")


def _to_full_scale(values: np.ndarray, max_value: int, dtype: np.dtype) -> np.ndarray:
    """Values in [0, max_value] -> [0, full scale of ``dtype``], rounded. Computed in place in
    uint32 (65535 * 65535 + 32767 still fits): 4 bytes a pixel, not int64's 8."""
    full_scale = int(np.iinfo(dtype).max)
    work = values.astype(np.uint32)
    work *= full_scale
    work += max_value // 2
    work //= max_value
    return work.astype(dtype)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_raster_size(head: bytes | memoryview, path: Path) -> tuple[int, int]:
    """``(width, height)`` as a PNG, JPEG, PNM, TIFF or BMP header declares
    them; any other content (or a header cut short) raises :class:`ImageReadError`: OpenCV
    would otherwise pick a decoder by content, for formats nobody budgeted. ``head`` is the
    whole file (a TIFF's first IFD may be at its end; a JPEG's frame header may follow large
    EXIF or ICC segments, which are skipped by their lengths)."""
    try:
        if head[:8] == _PNG_SIGNATURE:
            if head[12:16] != b"IHDR":
                raise ImageReadError(f"{path}: PNG without an IHDR header")
            return struct.unpack(">II", head[16:24])
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head, path)
        if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7"):
            return _pnm_size(head, path)
        if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
            return _tiff_size(head, path)
        if head[:2] == b"BM":
            if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 header: 16-bit sizes
                width, height = struct.unpack("<HH", head[18:22])
            else:
                width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
    except (struct.error, IndexError, KeyError, ValueError):
        raise ImageReadError(f"{path}: image header cut short or malformed") from None
    raise ImageReadError(f"{path}: not a readable image (unsupported format; expected DICOM, PNG, "
                         "JPEG, PGM/PPM, TIFF or BMP)")


def _jpeg_size(head: bytes | memoryview, path: Path) -> tuple[int, int]:
    position = 2
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            raise ImageReadError(f"{path}: JPEG marker expected at byte {position}")
        marker = head[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # no length field
            position += 2
            continue
        if marker == 0xDA:
            break
        length = struct.unpack(">H", head[position + 2:position + 4])[0]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", head[position + 5:position + 9])
            return width, height
        position += 2 + length
    raise ImageReadError(f"{path}: JPEG without a frame header (SOF)")


def _pnm_size(head: bytes | memoryview, path: Path) -> tuple[int, int]:
    body = re.sub(rb"#[^\r\n]*", b" ", bytes(head[2:4096]))
    if head[:2] == b"P7":  # PAM: WIDTH and HEIGHT lines up to ENDHDR
        fields = dict(re.findall(rb"^\s*(WIDTH|HEIGHT)\s+(\d+)", body, re.MULTILINE))
        return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    width, height = body.split(maxsplit=2)[:2]
    return int(width), int(height)


def _tiff_size(head: bytes | memoryview, path: Path) -> tuple[int, int]:
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\0", b"\0+")
    if big:
        (offset,) = struct.unpack(order + "Q", head[8:16])
        (count,) = struct.unpack(order + "Q", head[offset:offset + 8])
        entries, size, layout = offset + 8, 20, order + "HHQ8s"
    else:
        (offset,) = struct.unpack(order + "I", head[4:8])
        (count,) = struct.unpack(order + "H", head[offset:offset + 2])
        entries, size, layout = offset + 2, 12, order + "HHI4s"
    tags: dict[int, int] = {}
    for index in range(min(count, 4096)):
        start = entries + index * size
        tag, kind, _, value = struct.unpack(layout, head[start:start + size])
        if tag in (256, 257, 322, 323):  # image width and length, tile width and length
            # SHORT (3) values sit in the first two bytes of the value field.
            tags[tag] = struct.unpack(order + ("H" if kind == 3 else "I"),
                                      value[:2] if kind == 3 else value[:4])[0]
    if 256 not in tags or 257 not in tags:
        raise ImageReadError(f"{path}: TIFF without image width and length tags")
    tile = tags.get(322, 0) * tags.get(323, 0)
    # A tile larger than the image still has to be allocated whole.
    width, height = tags[256], tags[257]
    if tile > width * height:
        width, height = tags[322], tags[323]
    return width, height


def _check_png_chunks(data: np.ndarray, path: Path) -> None:
    """Every chunk's length must fit in the file: a forged IDAT length makes the decoder
    allocate it (4 GB from a 6 KB file)."""
    raw = data.data
    position, end = 8, data.size
    while position + 8 <= end:
        (length,) = struct.unpack(">I", raw[position:position + 4])
        kind = bytes(raw[position + 4:position + 8])
        if position + 12 + length > end:
            raise ImageReadError(f"{path}: PNG chunk {kind!r} at byte {position} claims "
                                 f"{length} bytes, past the end of the file ({end} bytes)")
        if kind == b"IEND":
            return
        position += 12 + length


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


def _read_dicom(path: Path, limits: LimitsConfig) -> tuple[np.ndarray, float | None]:
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
    _check_pixels(path, rows * columns * frames,
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
    values = pixels.astype(np.int64 if bits_stored > 16 else np.int32)
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
    return _to_full_scale(values, max_value, np.dtype(np.uint16)), spacing


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
    with _decoder_output_kept([]):
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
