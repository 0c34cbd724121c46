"""``benchmarks/gpu_train_e2e.py --tiny`` runs end to end (synthetic crops, ``mammohybrid
preprocess`` and ``train`` as subprocesses, the raw step) and ends with its summary line."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train_e2e.py"
LAST_LINE = re.compile(r"gpu_train images_per_s=(\S+) pipeline_efficiency=(\S+) "
                       r"trial_minutes=(\S+)")


@pytest.mark.slow
def test_tiny_mode_prints_the_summary_line(tmp_path) -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--crops", "12", "--val-crops", "4",
         "--epochs", "2", "--raw-steps", "2", "--workers", "1",
         "--keep", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    last = completed.stdout.strip().splitlines()[-1]
    match = LAST_LINE.fullmatch(last)
    assert match, last
    values = [float(value) for value in match.groups()]
    assert all(math.isfinite(value) and value > 0 for value in values), last
    assert (tmp_path / "work" / "run" / "DONE").is_file()
