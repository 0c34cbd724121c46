"""Interrupted writes and the output lock: every file written is complete or absent,
the resume journal is trusted only for files that still verify, no command writes over its
own inputs, one writer per output folder."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mammohybrid import fileio
from mammohybrid.cli import app
from mammohybrid.errors import DiskFullError, OutputConflictError
from mammohybrid.fileio import atomic_write_bytes, output_lock
from mammohybrid.imaging import png_decodes, write_png
from mammohybrid.preprocess.batch import RECORDS_NAME
from mammohybrid.preprocess.batch_test import make_dataset

runner = CliRunner()
SMALL = ["--set", "preprocess.output_size=64", "--workers", "1"]


def _records(out: Path) -> list[dict[str, object]]:
    return pd.read_json(out / RECORDS_NAME, lines=True).to_dict("records")


def test_a_short_write_is_an_error_and_leaves_no_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open

    class ShortFile:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.handle = real_open(*args, **kwargs)  # type: ignore[call-overload]

        def write(self, data: bytes) -> int:  # what a nearly full disk may do silently
            return self.handle.write(data[: len(data) // 2])

        def __getattr__(self, name: str) -> object:
            return getattr(self.handle, name)

        def __enter__(self) -> ShortFile:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

    monkeypatch.setattr(fileio, "open", ShortFile, raising=False)
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(tmp_path / "a.png", b"x" * 4594)
    assert caught.value.errno == errno.ENOSPC and "short write" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_png_with_an_ok_journal_line_is_redone(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path, count=3)
    out = tmp_path / "out"
    assert runner.invoke(app, ["preprocess", str(manifest), "--out", str(out), *SMALL]) \
        .exit_code == 3
    victim = Path(next(r["image_path"] for r in _records(out) if r["status"] == "ok"))
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    again = runner.invoke(app, ["preprocess", str(manifest), "--out", str(out), *SMALL])
    assert again.exit_code == 3, again.output
    assert "2 processed now, 3 already done, 1 failed" in again.output  # broken.png + victim
    assert png_decodes(victim.read_bytes())


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 48 KB tmpfs (root only): where a full disk can really happen."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs",
                              str(mount_point)], check=False, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_ends_the_run_and_records_nothing_false(tmp_path: Path,
                                                           tiny_disk: Path) -> None:
    manifest = make_dataset(tmp_path, count=12)
    out = tiny_disk / "out"
    settings = ["--set", "preprocess.output_size=229", "--workers", "1"]
    result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(out), *settings])
    assert result.exit_code == 1
    assert isinstance(result.exception, DiskFullError)
    assert str(result.exception).startswith(f"{out.resolve()}: no space left on device")
    # Every journal line "ok" names a PNG that decodes; no half-written image is left.
    for record in _records(out) if (out / RECORDS_NAME).is_file() else []:
        if record["status"] == "ok":
            assert png_decodes(Path(str(record["image_path"])).read_bytes())
    for png in (out / "images").glob("*.png"):
        assert png_decodes(png.read_bytes()), png
    # With room again, the rerun finishes the job.
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_disk)], check=True)
    again = runner.invoke(app, ["preprocess", str(manifest), "--out", str(out), *settings])
    assert again.exit_code == 3, again.output  # broken.png only
    assert "14 image(s)" in again.output and "1 failed" in again.output


def test_predict_onto_a_full_disk_says_where_and_that_nothing_was_written(
        run_dir: Path, tmp_path: Path, tiny_disk: Path, monkeypatch) -> None:
    image = write_png(tmp_path / "a.png", np.full((40, 40), 200, np.uint8))
    filler = tiny_disk / "filler"
    with open(filler, "wb") as handle, contextlib.suppress(OSError):
        handle.write(b"\0" * 2**20)  # up to the last byte of the disk
    monkeypatch.chdir(tiny_disk)
    result = runner.invoke(app, ["predict", str(run_dir), str(image), "--out", "p.csv",
                                 "--workers", "0"])
    assert result.exit_code == 1
    assert isinstance(result.exception, DiskFullError)
    assert str(result.exception) == (f"{tiny_disk}: no space left on device; free some space "
                                     "and run predict again (p.csv was not written)")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


def test_preprocess_refuses_an_output_folder_holding_its_manifest(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path, count=2)
    before = manifest.read_bytes()
    result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(tmp_path), *SMALL])
    assert result.exit_code == 1
    assert isinstance(result.exception, OutputConflictError)
    assert "holds the input" in str(result.exception)
    assert manifest.read_bytes() == before
    assert not (tmp_path / "images").exists()


def test_ingest_refuses_to_write_over_its_input_list(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text("path,label,patient\nmissing.png,B,p1\n")
    before = listing.read_bytes()
    result = runner.invoke(app, ["ingest", "folder", str(listing), "--out", str(listing)])
    assert result.exit_code == 1
    assert isinstance(result.exception, OutputConflictError)
    assert listing.read_bytes() == before


def test_a_second_writer_to_one_output_folder_is_refused(tmp_path: Path) -> None:
    manifest = make_dataset(tmp_path, count=2)
    out = tmp_path / "out"
    with output_lock(out):
        result = runner.invoke(app, ["preprocess", str(manifest), "--out", str(out), *SMALL])
    assert result.exit_code == 1
    assert "in use by another mammohybrid process" in str(result.exception)
    assert not (out / "images").exists()
    # Once the first writer is gone, the folder is free again.
    assert runner.invoke(app, ["preprocess", str(manifest), "--out", str(out), *SMALL]) \
        .exit_code == 3


def test_a_second_ingest_names_the_manifest_and_the_process_writing_it(tmp_path: Path,
                                                                      monkeypatch) -> None:
    """A relative --out used to say "error: . is in use"."""
    listing = tmp_path / "list.csv"
    listing.write_text("path,label,patient\nmissing.png,B,p1\n")
    monkeypatch.chdir(tmp_path)
    with output_lock(tmp_path, ".manifest.csv.lock"):
        result = runner.invoke(app, ["ingest", "folder", "list.csv", "--out", "manifest.csv"])
    assert result.exit_code == 1
    message = str(result.exception)
    assert message.startswith(f"{tmp_path / 'manifest.csv'} is in use by another mammohybrid "
                              f"process (pid {os.getpid()}: ")
    assert "python" in message  # the holder's command line
