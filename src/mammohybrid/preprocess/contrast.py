"""Step 4 of the paper's chain: CLAHE contrast enhancement (OpenCV)."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from mammohybrid.config import CLAHEConfig
from mammohybrid.preprocess.base import Record, check_image, section


class CLAHE:
    """Contrast-limited adaptive histogram equalisation (``cv2.createCLAHE``) on uint8/uint16.

    The paper used MATLAB ``adapthisteq`` (8x8 tiles, ClipLimit 0.01, uniform); the default
    ``clip_limit`` is the OpenCV setting measured closest to it (see docs/preprocessing.md).
    """

    name = "clahe"

    def __init__(self, config: CLAHEConfig | None = None, **overrides: Any) -> None:
        self.config = section(CLAHEConfig, config, overrides)

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray:
        image = check_image(image, self.name, (np.uint8, np.uint16))
        tiles = self.config.tile_grid
        # A CLAHE object is cheap to make (microseconds) and not picklable, so it is made per
        # call; the transform itself stays picklable for worker processes.
        clahe = cv2.createCLAHE(clipLimit=self.config.clip_limit, tileGridSize=(tiles, tiles))
        return clahe.apply(image)


def adapthisteq(image: np.ndarray, tiles: int = 8, clip_limit: float = 0.01) -> np.ndarray:
    """Reference: MATLAB ``adapthisteq`` (uint8, 256 bins, uniform distribution, Range 'full')
    re-implemented in NumPy from its documented algorithm, to measure how close :class:`CLAHE`
    comes to what the paper ran. Slow (Python loops over tiles); not used in the chain.

    MATLAB pads the image (symmetric) so that the tiles have even integer sides, clips every
    tile histogram at ceil(N/256) + round(clip_limit * (N - ceil(N/256))) for a tile of N
    pixels, redistributes the excess without exceeding that limit, maps grey levels by the
    scaled cumulative histogram, and interpolates bilinearly between tile centres.
    """
    image = check_image(image, "adapthisteq", (np.uint8,))
    bins = 256
    pads = [_adapthisteq_padding(side, tiles) for side in image.shape]
    padded = np.pad(image, pads, mode="symmetric")
    tile_h, tile_w = padded.shape[0] // tiles, padded.shape[1] // tiles
    pixels = tile_h * tile_w
    min_clip = math.ceil(pixels / bins)
    clip = min_clip + math.floor(clip_limit * (pixels - min_clip) + 0.5)  # MATLAB round
    maps = np.empty((tiles, tiles, bins))
    for row in range(tiles):
        for col in range(tiles):
            tile = padded[row * tile_h:(row + 1) * tile_h, col * tile_w:(col + 1) * tile_w]
            hist = _clip_histogram(np.bincount(tile.ravel(), minlength=bins), clip)
            mapping = np.minimum(np.cumsum(hist) * (255.0 / pixels), 255.0)
            maps[row, col] = np.floor(mapping + 0.5)  # MATLAB's grayxform to uint8
    output = np.empty(padded.shape)
    for top, rows, upper, lower in _adapthisteq_regions(tile_h, tiles):
        weight_r = np.arange(rows)[:, None]
        for left, cols, left_tile, right_tile in _adapthisteq_regions(tile_w, tiles):
            weight_c = np.arange(cols)[None, :]
            values = padded[top:top + rows, left:left + cols]
            output[top:top + rows, left:left + cols] = (
                (rows - weight_r) * ((cols - weight_c) * maps[upper, left_tile][values]
                                     + weight_c * maps[upper, right_tile][values])
                + weight_r * ((cols - weight_c) * maps[lower, left_tile][values]
                              + weight_c * maps[lower, right_tile][values])) / (rows * cols)
    result = np.floor(output + 0.5).astype(np.uint8)
    return result[pads[0][0]:pads[0][0] + image.shape[0], pads[1][0]:pads[1][0] + image.shape[1]]


def _adapthisteq_padding(side: int, tiles: int) -> tuple[int, int]:
    """(before, after) padding that makes ``side`` split into ``tiles`` even tile sides."""
    tile = side // tiles if side % tiles == 0 else side // tiles + 1
    pad = tile * tiles - side
    if tile % 2:
        pad += tiles
    return pad // 2, pad - pad // 2


def _adapthisteq_regions(tile: int, tiles: int) -> list[tuple[int, int, int, int]]:
    """(start, length, first tile, second tile) of the interpolation bands along one axis:
    half a tile on each edge mapped by the edge tile, full tiles between two tile centres."""
    bands = [(0, tile // 2, 0, 0)]
    bands += [(tile // 2 + (k - 1) * tile, tile, k - 1, k) for k in range(1, tiles)]
    bands.append((tile // 2 + (tiles - 1) * tile, tile // 2, tiles - 1, tiles - 1))
    return bands


def _clip_histogram(hist: np.ndarray, clip: int) -> np.ndarray:
    """MATLAB adapthisteq's clipHistogram: clip at ``clip`` and hand the excess back to the
    bins, never lifting one above ``clip``."""
    hist = hist.astype(np.int64)
    bins = hist.size
    excess = int(np.maximum(hist - clip, 0).sum())
    increment = excess // bins
    upper = clip - increment
    over, high = hist > clip, (hist > upper) & (hist <= clip)
    low = ~(over | high)
    excess -= int((clip - hist[high]).sum()) + increment * int(low.sum())
    hist[over | high] = clip
    hist[low] += increment
    start = 0
    while excess > 0:  # the rest one pixel at a time, spread evenly
        step = max(bins // excess, 1)
        for index in range(start, bins, step):
            if hist[index] < clip:
                hist[index] += 1
                excess -= 1
                if excess == 0:
                    break
        start = (start + 1) % bins
    return hist
