"""A checkpoint's declared shape and stride never make the reader allocate or read past what
the file holds, so a crafted or truncated file is an error, not a memory blow-up."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.errors import MammohybridError
from mammohybrid.models.torch_checkpoint import read_state_dict


def test_a_zero_stride_bomb_is_refused_without_allocating(torch_zip_checkpoint,
                                                          tmp_path: Path) -> None:
    bomb = torch_zip_checkpoint(tmp_path / "bomb.pt", (60000, 60000), (0, 0), 1)
    assert bomb.stat().st_size < 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(MammohybridError, match="addresses more than its storage holds"):
        read_state_dict(bomb)
    # ru_maxrss is in KiB on Linux: the peak grew by less than 50 MB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000


def test_a_tensor_covering_its_storage_is_read(torch_zip_checkpoint, tmp_path: Path) -> None:
    good = torch_zip_checkpoint(tmp_path / "good.pt", (2, 3), (3, 1), 6)
    np.testing.assert_array_equal(read_state_dict(good)["w"], np.zeros((2, 3), np.float32))


def test_an_overlapping_stride_that_needs_more_elements_is_refused(torch_zip_checkpoint,
                                                                   tmp_path: Path) -> None:
    overlapping = torch_zip_checkpoint(tmp_path / "overlap.pt", (1000, 1000), (1, 1), 1999)
    with pytest.raises(MammohybridError, match="addresses more than its storage holds"):
        read_state_dict(overlapping)
