"""Running a grid: the pre-processed dataset of every cell, one training and evaluation per
cell (serially or on a Ray cluster, :mod:`~mammohybrid.workflows.executors`), the best row
chosen on validation, its full report.

Output: ``OUT/runs/<cell>/`` (one run directory per cell, plus ``grid_metrics.json`` with its
validation and test metrics), ``OUT/datasets/`` (pre-processed datasets, one per filter),
``OUT/grid_summary.csv`` and ``.md``, ``OUT/best/`` (the full evaluation report of the row
chosen on validation), ``OUT/grid.yaml`` (the grid as run) and ``OUT/config.yaml`` (the base).

Resuming: a cell whose run finished is skipped; one that was interrupted resumes from its
last epoch (``train(..., resume=True)``); evaluations are cached per cell.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mammohybrid.config import Config, save_config
from mammohybrid.data import read_manifest, usable_rows
from mammohybrid.errors import ConfigError
from mammohybrid.evaluation import (
    RunPredictor,
    choose_threshold,
    evaluate_run,
    metrics_report,
    predictions_frame,
    release_models,
)
from mammohybrid.fileio import atomic_write_json, atomic_write_text
from mammohybrid.preprocess import ensure_preprocessed
from mammohybrid.progress import console
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.executors import Executor, SerialExecutor, check_callbacks
from mammohybrid.workflows.grid.result_table import write_result_table
from mammohybrid.workflows.grid.spec import CellResult, GridCell, GridSpec
from mammohybrid.workflows.tracking import open_tracker
from mammohybrid.workflows.training_runs import ensure_trained

ERROR_FILE = "grid_error.txt"  # a failed cell's traceback, in its run directory


def prepare_datasets(spec: GridSpec, out_dir: Path, workers: int = 1) -> dict[str, Path]:
    """The pre-processed manifest each cell trains on, by cell name: a raw manifest is
    pre-processed once per distinct ``preprocess`` section into ``OUT/datasets/`` and reused
    when the grid is run again; a pre-processed one is used by the cells whose settings it
    matches and refused for the others
    (:func:`~mammohybrid.preprocess.cache.ensure_preprocessed`)."""
    if spec.manifest is None:
        raise ConfigError(f"{spec.source}: no manifest; give 'manifest' in the grid file or "
                          "--manifest")
    if not spec.manifest.is_file():
        raise ConfigError(f"{spec.source}: manifest {spec.manifest} not found")
    return {cell.name: ensure_preprocessed(spec.manifest, cell.config,
                                           cache_root=out_dir / "datasets", workers=workers)
            for cell in spec.cells}


@dataclass
class GridResult:
    spec: GridSpec
    out_dir: Path
    cells: list[CellResult]
    best: str | None
    summary_csv: Path
    summary_md: Path
    best_report: Path | None

    @property
    def failed(self) -> list[CellResult]:
        return [c for c in self.cells if c.status != "finished"]


def cell_metrics(run: RunDir, config: Config) -> dict[str, dict[str, Any]]:
    """Validation and test metrics of a finished cell, cached in ``grid_metrics.json`` (redone
    when the run's model is newer than the cache)."""
    cache = run.root / "grid_metrics.json"
    if cache.is_file() and cache.stat().st_mtime >= run.model.stat().st_mtime:
        return json.loads(cache.read_text(encoding="utf-8"))
    assert config.data.manifest is not None, "a grid cell trains on the grid's manifest"
    frame = usable_rows(read_manifest(config.data.manifest))
    predict = RunPredictor(run, config)
    threshold = choose_threshold(run, config, frame, predict)
    result = {}
    for split in ("val", "test"):
        rows = frame[frame["split"] == split]
        if rows.empty:
            continue
        predictions = predictions_frame(rows, predict(rows), threshold.value)
        result[split] = metrics_report(predictions, threshold, config.evaluate, config.seed,
                                       split)
    atomic_write_json(cache, result)
    return result


@dataclass(frozen=True)
class CellTask:
    """One cell's training and evaluation, as sent to an executor (picklable)."""

    cell: GridCell
    index: int  # 1-based, for the progress line
    total: int
    run_root: Path
    manifest: Path  # the pre-processed manifest the cell trains on
    tracking_uri: str | None = None
    parent_run_id: str | None = None
    callbacks: Sequence[Any] = ()


def run_cell(task: CellTask) -> CellResult:
    """Train (or resume) one cell and compute its validation and test metrics; an error is
    recorded in the cell's ``grid_error.txt`` and returned as a failed result."""
    cell, run = task.cell, RunDir.at(task.run_root)
    config = cell.config.model_copy(deep=True)
    config.data.manifest = task.manifest
    state = "done" if run.is_finished() else "resuming" if run.root.exists() else "new"
    console.print(f"[bold]grid cell {task.index}/{task.total}[/bold] {cell.name} ({state})")
    try:
        with open_tracker(task.tracking_uri, run_name=cell.name,
                          parent_run_id=task.parent_run_id) as tracker:
            ensure_trained(tracker, config, run, task.callbacks)
            metrics = cell_metrics(run, config)
            if tracker:
                for split, values in metrics.items():
                    tracker.log_metrics(values, prefix=f"eval_{split}_")
        (run.root / ERROR_FILE).unlink(missing_ok=True)  # from an earlier failure
        return CellResult(cell, run.root, "finished", metrics.get("val"), metrics.get("test"))
    except Exception as error:  # one failed cell must not stop the grid
        console.print(f"[red]cell {cell.name} failed:[/red] {error}")
        run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.root / ERROR_FILE, traceback.format_exc())
        return CellResult(cell, run.root, "failed", error=str(error))
    finally:
        release_models()


def run_grid(spec: GridSpec, out_dir: str | os.PathLike[str], *, workers: int = 1,
             tracking_uri: str | None = None, callbacks: Sequence[Any] = (),
             report_best: bool = True, executor: Executor | None = None) -> GridResult:
    """Run (or resume) every cell, then write the summary and the best row's report.

    The datasets are pre-processed here (``workers`` processes); the cells run on ``executor``
    (default: one after the other in this process). A cell that raises is recorded as failed
    and the grid goes on; ``KeyboardInterrupt`` stops the grid at once (run it again to
    resume). ``callbacks`` (Keras callbacks) are passed to every training; serial executor
    only.
    """
    executor = executor or SerialExecutor()
    check_callbacks(executor, callbacks)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "grid.yaml", yaml.safe_dump(spec.raw, sort_keys=False))
    save_config(spec.base, out / "config.yaml")
    manifests = prepare_datasets(spec, out, workers)
    with open_tracker(tracking_uri, run_name=f"grid {spec.name}") as parent:
        tasks = [CellTask(cell, index, len(spec.cells), (out / "runs" / cell.name).resolve(),
                          manifests[cell.name].resolve(), tracking_uri,
                          parent.run_id if parent else None, callbacks)
                 for index, cell in enumerate(spec.cells, start=1)]
        results = executor.map(run_cell, tasks)
        best = select_best(results, spec.select_by)
        csv_path, md_path = write_result_table(spec, results, best, out)
        best_report = None
        if best is not None and report_best:
            best_cell = next(r for r in results if r.cell.name == best)
            best_report = evaluate_run(best_cell.run_dir, "test", out / "best").files[
                "report_html"]
        if parent:
            parent.log_artifact(csv_path)
            parent.log_artifact(md_path)
    return GridResult(spec, out, results, best, csv_path, md_path, best_report)


def select_best(results: Sequence[CellResult], metric: str) -> str | None:
    """The name of the finished cell with the highest *validation* ``metric`` (first on ties).
    Test metrics are never looked at."""
    best, best_value = None, float("-inf")
    for result in results:
        value = (result.val or {}).get(metric)
        if result.status == "finished" and value is not None and value > best_value:
            best, best_value = result.cell.name, value
    return best
