"""The batch command: pre-process every image of a manifest into a pre-processed dataset.

Output (the "Pre-processed dataset" contract of docs/architecture.md)::

    DIR/config.yaml      the config whose ``preprocess`` section made the images
    DIR/manifest.csv     the input rows; image_path -> processed PNG, source_path -> original,
                         plus status, kept_fraction, roi_empty, input_height, input_width,
                         warnings (decoder messages, a tiny input), error
    DIR/images/*.png     8-bit greyscale, output_size x output_size
    DIR/qa/*.png         QA figures (``qa`` > 0)
    DIR/.records.jsonl   one line per finished image: what a resumed run reads

Rows whose image failed have ``status`` = ``error``, an empty ``image_path`` and the reason in
``error``; training and evaluation use only rows with ``status`` = ``ok``
(:func:`mammohybrid.data.manifest.usable_rows`).

Resuming: every PNG is written atomically (fsync-ed, its size checked, renamed into place)
and its record appended to ``.records.jsonl`` only after, so after an interruption (even
``kill -9`` or a full disk) a rerun skips the images that have both a record with status
``ok`` and a PNG that still decodes, and redoes the rest (failed images included, in case they
were fixed). One run at a time writes to a folder (a lock); a second is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.config import Config, LimitsConfig, load_config, save_config
from mammohybrid.data import read_manifest, usable_rows, write_manifest
from mammohybrid.fileio import (
    atomic_write_text,
    output_lock,
    refuse_overwriting_inputs,
    stop_on_full_disk,
)
from mammohybrid.imaging import png_decodes
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.pool import ImageTask, PreparedOutcome, PreprocessPool, SingleChain
from mammohybrid.preprocess.settings import SETTINGS_FILE, check_same_preprocess
from mammohybrid.progress import QUICK_ITEMS, in_blocks, progress_bar

RECORDS_NAME = ".records.jsonl"
STAT_COLUMNS = ["status", "kept_fraction", "roi_empty", "input_height", "input_width",
                "warnings", "error"]


@dataclass
class BatchReport:
    """What a batch run did: counts over the whole manifest, and where the outputs are."""

    out_dir: Path
    manifest_path: Path
    total: int  # rows in the manifest
    images: int  # distinct source images
    processed: int  # images processed by this run
    resumed: int  # images already done by an earlier run
    failed: int  # images with status "error"
    roi_empty: int  # images whose ROI mask kept no pixel
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, error), first few
    qa_figures: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The human-readable summary the CLI prints."""
        lines = [
            f"{self.images} image(s): {self.processed} processed now, "
            f"{self.resumed} already done, {self.failed} failed, {self.roi_empty} with an "
            f"empty ROI ({self.seconds:.1f} s)",
        ]
        lines += [f"  failed: {error}" for _, error in self.failures]
        if self.failed > len(self.failures):
            lines.append(f"  ... and {self.failed - len(self.failures)} more (column 'error')")
        if self.qa_figures:
            lines.append(f"QA figures: {self.qa_figures[0].parent}")
        return lines


def output_name(source: str | os.PathLike[str]) -> str:
    """The processed PNG's file name: the source's stem (readable) plus a hash of its full
    path (unique: CBIS-DDSM names every crop ``1-1.dcm``)."""
    source = os.path.abspath(source)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem)[:60] or "image"
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:10]
    return f"{stem}_{digest}.png"


def _journal_record(outcome: PreparedOutcome, target: str) -> dict[str, Any]:
    """The journal line (and output manifest statistics) of one finished image."""
    ok = outcome.ok
    height, width = outcome.input_shape or (None, None)
    return {"source_path": outcome.name, "image_path": target,
            "status": "ok" if ok else "error",
            "kept_fraction": outcome.kept_fraction if ok else None,
            "roi_empty": outcome.roi_empty if ok else None,
            "input_height": height, "input_width": width,
            "warnings": "; ".join(outcome.warnings) if ok else "", "error": outcome.error}


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # a missing file fails fast in the worker anyway
        return 0


# ----------------------------------------------------------------------------- resume state
def _read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Records of earlier runs by source path; a line cut short by a kill is dropped, and the
    file is rewritten clean so that new lines never append to a broken one."""
    if not path.is_file():
        return {}
    records: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            records[record["source_path"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records.values()))
    return records


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files a killed run left behind: only names of the form
    ``fileio.atomic_path`` makes (``.<name>.<8 random characters>.tmp<suffix>``), never a
    finished file, the journal ``.records.jsonl`` or a file of the user's (``--out .``)."""
    if folder.is_dir():
        for stale in folder.glob(".*.????????.tmp*"):
            stale.unlink(missing_ok=True)


def _check_same_preprocess(out_dir: Path, config: Config) -> None:
    """Refuse to mix images made with different pre-processing in one folder."""
    saved_path = out_dir / SETTINGS_FILE
    if saved_path.is_file():
        check_same_preprocess(config, load_config(saved_path).preprocess, out_dir)


# ----------------------------------------------------------------------------- the batch
def run_batch(manifest_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
              config: Config, workers: int = 1, qa: int = 0,
              data_root: str | os.PathLike[str] | None = None,
              limits: LimitsConfig | None = None) -> BatchReport:
    """Pre-process every image of ``manifest_path`` into ``out_dir`` (see the module doc).

    Resumable; a bad image gets an error record and the run goes on. ``qa`` > 0 also writes
    that many QA figures (each step side by side, histograms before/after NLM) to
    ``out_dir/qa``. ``data_root``: every image must lie inside it (see
    :func:`~mammohybrid.data.manifest.read_manifest`). Refused before any work: an ``out_dir``
    holding the manifest, or one another process is writing to. A full disk ends the run with
    :class:`~mammohybrid.errors.DiskFullError`; what was finished is kept for the rerun.

    ``workers``: processes that decode and pre-process (1: this process, no worker to crash).
    ``limits``: the budgets every image read checks (default ``config.limits``; given, they
    replace them in the saved ``config.yaml`` too).
    """
    if limits is not None:
        config = config.model_copy(update={"limits": limits})
    started = time.perf_counter()
    # Absolute paths: write_manifest stores them relative to the output manifest's folder.
    manifest_path, out_dir = Path(manifest_path), Path(out_dir).resolve()
    preparation = SingleChain(config.preprocess)  # an unknown strategy fails before any output
    frame = read_manifest(manifest_path, data_root=data_root)
    refuse_overwriting_inputs([out_dir], [manifest_path])
    out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(out_dir), stop_on_full_disk(out_dir):
        summary = _run_locked(frame, out_dir, config, preparation, workers, qa)
    summary.seconds = time.perf_counter() - started
    return summary


def _run_locked(frame: pd.DataFrame, out_dir: Path, config: Config, preparation: SingleChain,
                workers: int, qa: int) -> BatchReport:
    _check_same_preprocess(out_dir, config)
    save_config(config, out_dir / SETTINGS_FILE)
    images_dir = out_dir / "images"
    images_dir.mkdir(exist_ok=True)
    for folder in (out_dir, images_dir, out_dir / "qa"):
        _remove_stale_temporaries(folder)

    records_path = out_dir / RECORDS_NAME
    records = _read_records(records_path)
    sources = list(dict.fromkeys(frame["image_path"]))
    targets: dict[str, str] = {}
    done: set[str] = set()
    # Naming a million outputs takes seconds, and checking finished PNGs reads them: a bar.
    with progress_bar(disable=len(sources) < QUICK_ITEMS and not records) as bar:
        planning = bar.add_task("checking what is done", total=len(sources))
        for block in in_blocks(sources, bar, planning):
            for source in block:
                targets[source] = target = str(images_dir / output_name(source))
                # The journal is trusted only for images whose PNG is still there and still
                # decodes (a full disk once left a truncated PNG behind an "ok" line).
                if records.get(source, {}).get("status") == "ok" and _verifies(target):
                    done.add(source)
    known = known_geometry(frame)
    tasks = [ImageTask(index, source, known[source], target)
             for index, (source, target) in enumerate(targets.items()) if source not in done]
    # The batch's ``workers`` counts processes with 1 meaning this one (one worker process
    # would only add start-up and transfers); the pool's 0 means this process.
    processes = min(workers, len(tasks))
    processes = processes if processes > 1 else 0
    if processes:
        # Crop sizes vary a lot: hand out one image at a time, largest files first, so that no
        # big crop is left running alone at the end while others idle.
        tasks.sort(key=lambda task: _file_size(task.path), reverse=True)

    with PreprocessPool(preparation, processes, config.limits) as pool, \
            open(records_path, "a", encoding="utf-8") as journal, progress_bar() as bar:
        task_id = bar.add_task("pre-processing", total=len(targets), completed=len(done))
        for outcome in pool.map(tasks, max_in_flight=2 * processes):
            record = _journal_record(outcome, targets[outcome.name])
            # Flushed at once: a kill loses at most the line being written, which the next
            # run drops (and redoes that image).
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            records[record["source_path"]] = record
            bar.advance(task_id)

    output = _output_manifest(frame, records, targets)
    output_path = write_manifest(output, out_dir / "manifest.csv")
    per_image = [records[source] for source in targets]
    failures = [(r["source_path"], r["error"]) for r in per_image if r["status"] != "ok"]
    summary = BatchReport(
        out_dir=out_dir, manifest_path=output_path, total=len(frame), images=len(targets),
        processed=len(tasks), resumed=len(done), failed=len(failures),
        roi_empty=sum(bool(r["roi_empty"]) for r in per_image if r["status"] == "ok"),
        seconds=0.0, failures=failures[:5])
    if qa > 0:
        from mammohybrid.preprocess.qa import write_qa_figures

        summary.qa_figures = write_qa_figures(usable_rows(output), preparation.chain,
                                              out_dir / "qa", qa)
    return summary


GEOMETRY_COLUMNS = ("pixel_spacing_mm", "center_row", "center_col")


def known_geometry(frame: pd.DataFrame) -> dict[str, Record]:
    """What a manifest says of each image's geometry (optional columns ``pixel_spacing_mm``,
    millimetres per pixel, and ``center_row`` / ``center_col``, the lesion centre in the
    image's pixels), as the :class:`Record` its chain starts from; empty cells are unknown."""
    values = {column: (pd.to_numeric(frame[column], errors="coerce") if column in frame.columns
                       else pd.Series(np.nan, index=frame.index)) for column in GEOMETRY_COLUMNS}
    known: dict[str, Record] = {}
    for position, source in enumerate(frame["image_path"]):
        spacing, row, col = (float(values[c].iloc[position]) for c in GEOMETRY_COLUMNS)
        known.setdefault(source, Record(
            pixel_spacing_mm=spacing if spacing > 0 else None,
            center=(row, col) if np.isfinite(row) and np.isfinite(col) else None))
    return known


def _verifies(target: str) -> bool:
    try:
        return png_decodes(Path(target).read_bytes())
    except OSError:
        return False


def _output_manifest(frame: pd.DataFrame, records: dict[str, dict[str, Any]],
                     targets: dict[str, str]) -> pd.DataFrame:
    """The input rows with image_path -> processed PNG (empty when failed) and the statistics."""
    rows = [records[source] for source in frame["image_path"]]
    output = frame.copy()
    output["source_path"] = frame["image_path"]
    output["image_path"] = [targets[r["source_path"]] if r["status"] == "ok" else ""
                            for r in rows]
    for column in STAT_COLUMNS:
        # None (failed image) -> empty CSV cell; journals of older versions lack 'warnings'.
        output[column] = [r.get(column) for r in rows]
    for column in ("input_height", "input_width"):
        output[column] = output[column].astype("Int64")  # integers with empty cells
    return output
