"""End-to-end tests of ``mammohybrid preprocess`` through the command line."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app, main
from mammohybrid.data.manifest import read_manifest
from mammohybrid.imaging import read_image
from mammohybrid.preprocess.batch import RECORDS_NAME
from mammohybrid.preprocess.batch_test import make_dataset

runner = CliRunner()
SMALL = ["--set", "preprocess.output_size=64"]


def test_help_lists_the_options():
    result = runner.invoke(app, ["preprocess", "--help"])
    assert result.exit_code == 0
    for option in ("--strategy", "--workers", "--out", "--config", "--set", "--qa"):
        assert option in result.output


@pytest.mark.slow
def test_parallel_run_with_a_corrupt_image_reports_it_and_goes_on(tmp_path):
    manifest = make_dataset(tmp_path, count=5)
    result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(tmp_path / "out"),
                                 "--strategy", "wiener", "--workers", "2", "--qa", "2", *SMALL])
    assert result.exit_code == 3, result.output
    assert "7 image(s): 7 processed now, 0 already done, 1 failed, 1 with an empty ROI" \
        in result.output
    assert "broken.png" in result.output

    out = read_manifest(tmp_path / "out" / "manifest.csv")
    assert out["status"].value_counts().to_dict() == {"ok": 6, "error": 1}
    assert len(list((tmp_path / "out" / "qa").glob("*.png"))) == 2
    assert "strategy: wiener" in (tmp_path / "out" / "config.yaml").read_text()

    # Two worker processes give exactly what one process gives.
    serial = runner.invoke(app, ["preprocess", str(manifest), "--out", str(tmp_path / "serial"),
                                 "--strategy", "wiener", "--workers", "1", *SMALL])
    assert serial.exit_code == 3
    serial_out = read_manifest(tmp_path / "serial" / "manifest.csv")
    for parallel_path, serial_path in zip(out["image_path"].dropna(),
                                          serial_out["image_path"].dropna(), strict=True):
        np.testing.assert_array_equal(read_image(parallel_path), read_image(serial_path))


def test_clean_run_exits_zero_and_rerun_skips_everything(tmp_path):
    manifest = make_dataset(tmp_path, count=3, bad=False)
    args = ["preprocess", str(manifest), "--out", str(tmp_path / "out"), "--workers", "1", *SMALL]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0
    assert "4 image(s): 0 processed now, 4 already done, 0 failed" in second.output


def test_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", str(tmp_path / "nothing.csv"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "nothing.csv: manifest not found" in error and "Traceback" not in error

    manifest = make_dataset(tmp_path, count=1, bad=False, dark=False)
    with pytest.raises(SystemExit):
        main(["preprocess", str(manifest), "--out", str(tmp_path / "out"),
              "--strategy", "bilateral"])
    assert "unknown strategy 'bilateral'" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path):
    manifest = make_dataset(tmp_path, count=40, bad=False, dark=False)
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from mammohybrid.cli import main; main()", "preprocess",
               str(manifest), "--out", str(out), "--workers", "2", *SMALL]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    journal = out / RECORDS_NAME
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if journal.is_file() and len(journal.read_text().splitlines()) >= 5:
                break
            time.sleep(0.01)
    finally:
        # ProcessLookupError: it already ended, and the assertion below says so.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the command and its worker processes
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done_at_kill = len(journal.read_text().splitlines())
    assert 5 <= done_at_kill < 40
    finished = [png for png in (out / "images").glob("*.png") if not png.name.startswith(".")]
    for png in finished:  # never a half-written file under a final name
        assert read_image(png).shape == (64, 64)

    result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(out),
                                 "--workers", "1", *SMALL])
    assert result.exit_code == 0, result.output
    processed, resumed = map(int, re.search(r"(\d+) processed now, (\d+) already done",
                                            result.output).groups())
    # Every journal line had its PNG written first; only a line cut by the kill may be lost.
    assert processed + resumed == 40 and resumed >= done_at_kill - 1
    final = read_manifest(out / "manifest.csv")
    assert (final["status"] == "ok").all()
    assert all(read_image(path).shape == (64, 64) for path in final["image_path"])
    assert not list((out / "images").glob(".*"))


def test_a_large_manifest_shows_its_reading_and_checking(tmp_path, monkeypatch, capsys):
    """A 200 MB manifest (1.4 million rows) was read and checked for 110 s without a word: a
    manifest from data.manifest.PROGRESS_BYTES on (here every one) shows how far it is, and
    so does naming the outputs and checking what an earlier run finished."""
    from mammohybrid.cli import main
    from mammohybrid.data import manifest as manifest_module
    from mammohybrid.preprocess import batch

    monkeypatch.setattr(manifest_module, "PROGRESS_BYTES", 0)
    monkeypatch.setattr(batch, "QUICK_ITEMS", 0)
    manifest = make_dataset(tmp_path, count=3, bad=False, dark=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["preprocess", str(manifest), "--out", str(tmp_path / "out"), *SMALL])
    assert exit_info.value.code == 0
    shown = capsys.readouterr().err
    assert re.search(r"reading manifest\.csv\b.* 3/3", shown), shown
    # Its one path column made absolute, and the real path of each image.
    assert re.search(r"checking manifest\.csv's paths\b.* 6/6", shown), shown
    assert re.search(r"checking what is done\b.* 3/3", shown), shown
