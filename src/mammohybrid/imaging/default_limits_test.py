"""The process-wide read budgets: what every read given no limits of its own applies."""

from __future__ import annotations

import numpy as np
import pytest

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import read_image, read_limits, set_read_limits, write_png


def test_reads_given_no_limits_apply_the_process_budgets(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("mammohybrid.imaging.default_limits._limits", read_limits())
    path = write_png(tmp_path / "a.png", np.zeros((40, 50), np.uint8))
    assert read_image(path).shape == (40, 50)
    small = LimitsConfig(max_image_pixels=1000)
    set_read_limits(small)
    assert read_limits() is small
    with pytest.raises(ImageReadError, match=r"over the 0\.001 megapixel budget"):
        read_image(path)
    assert read_image(path, LimitsConfig()).shape == (40, 50)  # limits given win
