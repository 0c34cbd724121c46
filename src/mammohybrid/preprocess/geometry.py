"""Sizes and channels: the working resolution before denoising, the physical scale (a fixed
field of view in millimetres), the final resize to the model input (step 5 of the paper's
chain) and the grey -> 3-channel replication."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mammohybrid.errors import InvalidImageError
from mammohybrid.preprocess.base import Record, check_image

_RESIZE_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    # Area averaging when shrinking (no aliasing); bicubic when enlarging small crops.
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


class LimitSize:
    """Shrink an image whose longer side exceeds ``max_side`` to that side (aspect kept, area
    averaging); smaller images pass unchanged. Put before NLM it bounds the cost of large crops,
    whose detail the final 229-px resize discards anyway."""

    name = "working size"

    def __init__(self, max_side: int) -> None:
        if max_side < 1:
            raise ValueError(f"LimitSize: max_side must be >= 1, got {max_side}")
        self.max_side = max_side

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _RESIZE_DTYPES)
        height, width = image.shape
        longest = max(height, width)
        if longest <= self.max_side:
            return image
        scale = self.max_side / longest
        return _resize(image, max(1, round(width * scale)), max(1, round(height * scale)))


class FieldOfView:
    """Resample an image to a fixed physical scale: the output is ``size`` x ``size`` pixels
    covering ``field_mm`` x ``field_mm`` millimetres centred on the lesion, so one output pixel
    is ``field_mm / size`` mm whatever the crop's size or resolution, and the model sees the
    lesion's real size (the paper's resize stretches every crop to the same side instead).

    Needs ``record.pixel_spacing_mm`` (refused when unknown: a spacing is never guessed);
    the lesion centre is ``record.center`` (row, column), or the image centre. Where the field
    reaches past the image, it is filled with 0 (background). Geometry: input pixel centres at
    integer coordinates; the input is scaled by ``spacing / (field_mm / size)`` exactly (area
    averaging when shrinking, bicubic when enlarging), then the output window is placed so that
    the lesion centre falls on the output centre, to the nearest output pixel. Only the part
    of the image inside the field is resampled, so the cost is bounded by the output size.
    """

    name = "field of view"

    def __init__(self, field_mm: float, size: int) -> None:
        if not field_mm > 0 or size < 1:
            raise ValueError(f"FieldOfView: field_mm must be > 0 and size >= 1, got {field_mm} "
                             f"and {size}")
        self.field_mm, self.size = float(field_mm), size

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _RESIZE_DTYPES)
        spacing = record.pixel_spacing_mm if record is not None else None
        if spacing is None or not spacing > 0:
            raise InvalidImageError(
                f"{self.name}: the image's pixel spacing is unknown, and a field of view in "
                "millimetres (preprocess.field_of_view_mm) needs it: give it in the manifest's "
                "pixel_spacing_mm column (or use a DICOM with PixelSpacing), or switch the "
                "option off")
        height, width = image.shape
        row, col = (record.center if record is not None and record.center is not None
                    else ((height - 1) / 2, (width - 1) / 2))
        scale = spacing * self.size / self.field_mm  # output pixels per input pixel
        # The input rows/columns whose pixels reach the field, with 2 pixels of margin for the
        # interpolation kernel.
        reach = self.size / 2 / scale + 2
        r0, r1 = max(0, int(np.floor(row - reach))), min(height, int(np.ceil(row + reach)) + 1)
        c0, c1 = max(0, int(np.floor(col - reach))), min(width, int(np.ceil(col + reach)) + 1)
        output = np.zeros((self.size, self.size), image.dtype)
        if r0 >= r1 or c0 >= c1:  # the centre lies far outside the image
            return output
        part = image[r0:r1, c0:c1]
        if round(part.shape[0] * scale) < 1 or round(part.shape[1] * scale) < 1:
            raise InvalidImageError(f"{self.name}: a {height}x{width} image at {spacing:g} mm "
                                    f"per pixel is smaller than one output pixel")
        # fx/fy given (no dsize): OpenCV maps output x to input (x + 0.5) / scale - 0.5 exactly.
        resized = cv2.resize(part, None, fx=scale, fy=scale,
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        # Where the lesion centre lands in ``resized``, then the window's top-left corner.
        top = int(np.round((row - r0 + 0.5) * scale - 0.5 - (self.size - 1) / 2))
        left = int(np.round((col - c0 + 0.5) * scale - 0.5 - (self.size - 1) / 2))
        src_r0, src_c0 = max(0, top), max(0, left)
        src_r1 = min(resized.shape[0], top + self.size)
        src_c1 = min(resized.shape[1], left + self.size)
        if src_r0 < src_r1 and src_c0 < src_c1:
            output[src_r0 - top:src_r1 - top, src_c0 - left:src_c1 - left] = \
                resized[src_r0:src_r1, src_c0:src_c1]
        return output


class Resize:
    """Resize to ``size`` x ``size`` (the model input; 229 in the paper). Like the paper, the
    crop is stretched to a square, not padded."""

    name = "resize"

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"Resize: size must be >= 1, got {size}")
        self.size = size

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, _RESIZE_DTYPES)
        if image.shape == (self.size, self.size):
            return image
        return _resize(image, self.size, self.size)


class ToRGB:
    """Replicate a greyscale image to 3 identical channels: (H, W) -> (H, W, 3)."""

    name = "rgb"

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name)
        return np.repeat(image[:, :, None], 3, axis=2)


def to_model_input(images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """The model-input contract: float32 with values in [0, 255], grey replicated to 3 channels.

    Accepts one image, (H, W) or (H, W, 1) -> (H, W, 3), or a batch, (N, H, W), (N, H, W, 1)
    or a sequence of (H, W) images -> (N, H, W, 3). Arrays whose last axis has size 3 are
    taken as already replicated and only converted to float32 (so a batch of grey images
    must not be 3 pixels wide).
    """
    array = np.stack(images) if isinstance(images, (list, tuple)) else np.asarray(images)
    if array.ndim >= 3 and array.shape[-1] == 3:
        return array.astype(np.float32, copy=False)
    if array.ndim >= 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or array.size == 0:
        raise InvalidImageError(f"to_model_input: expected (H, W), (H, W, 1), (N, H, W) or "
                                f"(N, H, W, 1), got shape {array.shape}")
    return np.repeat(array.astype(np.float32)[..., None], 3, axis=-1)
