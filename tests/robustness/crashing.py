"""Stand-ins that kill their process on one file, as a segfaulting native decoder would;
importable by the spawned worker processes."""

from __future__ import annotations

import os

import numpy as np

from mammohybrid.imaging import read_image
from mammohybrid.preprocess.chain import Chain

CRASH_MARK = "crash"


def decode_or_abort(path: str) -> tuple[str, int]:
    """A fake decoder: ``os.abort()`` for a file whose name holds ``crash``."""
    if CRASH_MARK in os.path.basename(path):
        os.abort()
    return path, int(read_image(path).size)


class AbortingChain(Chain):
    """The real chain, except that a 13-pixel-high image kills the process."""

    def __call__(self, image: np.ndarray, record=None):
        if image.shape[0] == 13:
            os.abort()
        return super().__call__(image, record)
