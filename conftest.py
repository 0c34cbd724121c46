"""Fixtures shared by the tests beside the modules (src/) and the tests in tests/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHARED_DIR = Path(__file__).resolve().parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (CI has it; a user's fresh clone does not)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: the real CBIS-DDSM CSVs are needed for this test")
    return SHARED_DIR


@pytest.fixture(scope="session")
def cbis_csv_dir(shared_dir: Path) -> Path:
    """The four real CBIS-DDSM case-description CSVs."""
    folder = shared_dir / "data" / "cbis-ddsm"
    if not (folder / "mass_case_description_train_set.csv").is_file():
        pytest.skip(f"{folder} lacks the real CBIS-DDSM CSVs")
    return folder
