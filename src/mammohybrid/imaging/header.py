"""What an image's header declares, checked before any decoder allocates it: the width and height
of a PNG, JPEG, PNM, TIFF or BMP, PNG chunk lengths, and the pixel budget."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def check_declared_pixels(path: Path, pixels: int, what: str, limits: LimitsConfig) -> None:
    """Refuse a header that declares no pixels, or more than ``limits`` allow; ``what`` says
    how they were counted (``"W x H"``, DICOM's rows, columns and frames)."""
    if pixels <= 0:
        raise ImageReadError(f"{path}: header declares no pixels ({what})")
    if pixels > limits.max_image_pixels:
        raise ImageReadError(f"{path}: header declares {what} = {pixels / 1e6:.1f} megapixels, "
                             f"over the {limits.max_image_pixels / 1e6:g} megapixel budget "
                             "(limits.max_image_pixels)")


def declared_raster_size(head: bytes | memoryview, path: Path) -> tuple[int, int]:
    """``(width, height)`` as a PNG, JPEG, PNM, TIFF or BMP header declares
    them; any other content (or a header cut short) raises :class:`ImageReadError`: OpenCV
    would otherwise pick a decoder by content, for formats nobody budgeted. ``head`` is the
    whole file (a TIFF's first IFD may be at its end; a JPEG's frame header may follow large
    EXIF or ICC segments, which are skipped by their lengths)."""
    try:
        if head[:8] == PNG_SIGNATURE:
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


def check_png_chunks(data: np.ndarray, path: Path) -> None:
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
