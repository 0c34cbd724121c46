"""``mammohybrid grid``: a grid of trainings (by default the paper's Table 5), resumable, with a
summary table in Table 5's layout where the best row is chosen on validation only.

Grid file (YAML; the shipped ``table5`` is an example, see ``docs/evaluation.md``)::

    name: table5
    base: null                # config file or preset the cells start from (null: defaults)
    set:                      # overrides of the base, dotted keys
      train.epochs: 100
    manifest: null            # the manifest (relative to the grid file); or --manifest
                              # a raw manifest is pre-processed once per distinct
                              # 'preprocess' section and cached under OUT/datasets/; a
                              # pre-processed one must match every cell's section
    select_by: auc            # validation metric that picks the best row
    axes:                     # full factorial product (optional)
      preprocess.strategy: [gaussian, median, wiener]
      model.pooling: [avg, max]
    runs:                     # explicit extra cells (optional)
      - name: resnet50v2-only
        set: {model.backbones: [resnet50v2]}
    reference:                # published numbers shown beside matching rows (optional)
      source: Boudouh & Bouakkaz (2023), Table 5
      rows:
        - match: {preprocess.strategy: median, model.pooling: avg}
          accuracy: 0.9813

Output: ``OUT/runs/<cell>/`` (one run directory per cell, plus ``grid_metrics.json`` with its
validation and test metrics), ``OUT/datasets/`` (pre-processed datasets, one per filter),
``OUT/grid_summary.csv`` and ``.md``, ``OUT/best/`` (the full evaluation report of the row
chosen on validation), ``OUT/grid.yaml`` (the grid as run) and ``OUT/config.yaml`` (the base).

Resuming: a cell whose run finished is skipped; one that was interrupted resumes from its
last epoch (``train(..., resume=True)``); evaluations are cached per cell.
"""

from __future__ import annotations

import itertools
import json
import os
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mammohybrid.config import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_yaml_mapping,
    save_config,
)
from mammohybrid.data.manifest import read_manifest, usable_rows
from mammohybrid.errors import ConfigError
from mammohybrid.evaluation.evaluate import (
    RunPredictor,
    choose_threshold,
    evaluate_run,
    metrics_report,
    predictions_frame,
    release_models,
)
from mammohybrid.fileio import atomic_open, atomic_write_json, atomic_write_text
from mammohybrid.preprocess.dataset import ensure_preprocessed
from mammohybrid.progress import console
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.tracking import ensure_trained, open_tracker

_GRID_KEYS = {"name", "description", "base", "set", "manifest", "select_by",
              "axes", "runs", "reference"}
ERROR_FILE = "grid_error.txt"  # a failed cell's traceback, in its run directory
SELECTABLE = ("auc", "accuracy", "f1", "sensitivity", "specificity")

# Column labels of the summary for the keys Table 5 varies; other keys show as themselves.
COLUMN_LABELS = {"preprocess.strategy": "Filter", "model.pooling": "Pooling",
                 "train.learning_rate": "LR", "model.head_dropout": "Dropout",
                 "model.branch_dropout": "Branch dropout", "model.backbones": "Backbones"}
# (metric, short label) of the summary's metric columns, in Table 5's order.
SUMMARY_METRICS = (("accuracy", "Acc"), ("specificity", "TNR"), ("sensitivity", "TPR"),
                   ("auc", "AUC"), ("f1", "F1"), ("paper_eq6_score", "Eq.6"))


# --------------------------------------------------------------------------- grid definition
@dataclass(frozen=True)
class GridCell:
    """One training of the grid: its name, the values that define it, and its full config."""

    name: str
    values: dict[str, Any]
    config: Config


@dataclass(frozen=True)
class ReferenceRow:
    """Published numbers for the cells whose config matches ``match``."""

    match: dict[str, Any]
    metrics: dict[str, float]

    def matches(self, config: Config) -> bool:
        flat = config_to_dict(config)
        return all(_normalise(_get_dotted(flat, key)) == _normalise(value)
                   for key, value in self.match.items())


@dataclass(frozen=True)
class GridSpec:
    """A validated grid: every cell's config is built (and checked) when the grid is loaded."""

    name: str
    source: str
    base: Config
    cells: list[GridCell]
    manifest: Path | None
    select_by: str
    reference_source: str = ""
    reference: list[ReferenceRow] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        """The config keys that vary between cells, in order of first appearance."""
        keys: list[str] = []
        for cell in self.cells:
            keys += [k for k in cell.values if k not in keys]
        return keys


def grid_names() -> list[str]:
    """Names of the grid files shipped with the package (``mammohybrid/grids``)."""
    folder = resources.files("mammohybrid") / "grids"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_grid(source: str | os.PathLike[str], overrides: Sequence[str] = (),
              manifest: str | os.PathLike[str] | None = None) -> GridSpec:
    """Read a grid file (a path, or the name of a shipped grid such as ``table5``).

    ``overrides`` (``key=value``) change the base of every cell (an axis still wins for its own
    key); ``manifest`` replaces the grid file's manifest.
    """
    data, label, folder = _read_grid_yaml(source)
    unknown = sorted(set(data) - _GRID_KEYS)
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(unknown)} (allowed: "
                          f"{', '.join(sorted(_GRID_KEYS))})")
    base_source = data.get("base")
    if base_source is not None and Path(str(base_source)).suffix in {".yaml", ".yml"}:
        base_source = _resolve(base_source, folder)
    base_dict = config_to_dict(load_config(base_source))
    base_dict = apply_overrides(base_dict, _as_overrides(data.get("set") or {}, label))
    base_dict = apply_overrides(base_dict, list(overrides))
    base = config_from_dict(base_dict, f"{label} base")

    cells = [GridCell(name, values, _cell_config(base_dict, values, f"{label} cell {name}"))
             for name, values in _cell_values(data, label)]
    names = [cell.name for cell in cells]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{label}: duplicate cell name(s) {', '.join(duplicates)}")
    if not cells:
        raise ConfigError(f"{label}: the grid has no cells (give 'axes' and/or 'runs')")

    select_by = str(data.get("select_by", "auc"))
    if select_by not in SELECTABLE:
        raise ConfigError(f"{label}: select_by must be one of {', '.join(SELECTABLE)}, "
                          f"got '{select_by}'")
    manifest_path = (Path(manifest) if manifest is not None
                     else _resolve(data["manifest"], folder) if data.get("manifest") else None)
    reference = data.get("reference") or {}
    rows = [ReferenceRow(dict(row.get("match", {})),
                         {k: float(v) for k, v in row.items() if k != "match"})
            for row in reference.get("rows", [])]
    return GridSpec(name=str(data.get("name", Path(label).stem)), source=label, base=base,
                    cells=cells, manifest=manifest_path, select_by=select_by,
                    reference_source=str(reference.get("source", "")), reference=rows,
                    raw=data)


def _read_grid_yaml(source: str | os.PathLike[str]) -> tuple[dict[str, Any], str, Path | None]:
    path = Path(source)
    if path.is_file():
        text, label, folder = path.read_text(encoding="utf-8"), str(path), path.resolve().parent
    else:
        shipped = resources.files("mammohybrid") / "grids" / f"{source}.yaml"
        if not shipped.is_file():
            raise ConfigError(f"grid '{source}' is neither a file nor a shipped grid "
                              f"(shipped: {', '.join(grid_names())})")
        text, label, folder = shipped.read_text(encoding="utf-8"), f"grid {source}", None
    return parse_yaml_mapping(text, label), label, folder


def _resolve(value: Any, folder: Path | None) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() or folder is None else folder / path


def _as_overrides(values: Mapping[str, Any], label: str) -> list[str]:
    """Dotted-key mapping -> ``key=value`` strings (JSON is YAML, so values round-trip)."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{label}: 'set' must be a mapping of dotted keys to values")
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def _cell_values(data: dict[str, Any], label: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, {dotted key: value}) of every cell: the axes' product, then the explicit runs."""
    cells = []
    axes = data.get("axes") or {}
    if not isinstance(axes, Mapping) or not all(isinstance(v, list) and v
                                                for v in axes.values()):
        raise ConfigError(f"{label}: 'axes' must map dotted keys to non-empty lists of values")
    if axes:
        for combination in itertools.product(*axes.values()):
            values = dict(zip(axes.keys(), combination))
            cells.append(("-".join(_slug(v) for v in combination), values))
    for index, run in enumerate(data.get("runs") or []):
        if not isinstance(run, Mapping) or "name" not in run:
            raise ConfigError(f"{label}: runs[{index}] needs a 'name' (and a 'set' mapping)")
        values = dict(run.get("set") or {})
        _as_overrides(values, f"{label} runs[{index}]")
        cells.append((str(run["name"]), values))
    return cells


def _cell_config(base: dict[str, Any], values: Mapping[str, Any], label: str) -> Config:
    return config_from_dict(apply_overrides(base, _as_overrides(values, label)), label)


def _slug(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_slug(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("/", "_").replace(" ", "_")


def _get_dotted(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _normalise(value: Any) -> Any:
    """Compare 1e-4 with 0.0001 and lists with tuples."""
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return round(float(value), 12)
    return value


# --------------------------------------------------------------------------- datasets
def prepare_datasets(spec: GridSpec, out_dir: Path, workers: int = 1) -> dict[str, Path]:
    """The pre-processed manifest each cell trains on, by cell name: a raw manifest is
    pre-processed once per distinct ``preprocess`` section into ``OUT/datasets/`` and reused
    when the grid is run again; a pre-processed one is used by the cells whose settings it
    matches and refused for the others
    (:func:`~mammohybrid.preprocess.dataset.ensure_preprocessed`)."""
    if spec.manifest is None:
        raise ConfigError(f"{spec.source}: no manifest; give 'manifest' in the grid file or "
                          "--manifest")
    if not spec.manifest.is_file():
        raise ConfigError(f"{spec.source}: manifest {spec.manifest} not found")
    return {cell.name: ensure_preprocessed(spec.manifest, cell.config,
                                           cache_root=out_dir / "datasets", workers=workers)
            for cell in spec.cells}


# --------------------------------------------------------------------------- running
@dataclass
class CellResult:
    """The outcome of one cell: its validation and test metrics, or why it has none."""

    cell: GridCell
    run_dir: Path
    status: str  # "finished", "failed"
    val: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    error: str = ""


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


def run_grid(spec: GridSpec, out_dir: str | os.PathLike[str], *, workers: int = 1,
             tracking_uri: str | None = None, callbacks: Sequence[Any] = (),
             report_best: bool = True) -> GridResult:
    """Run (or resume) every cell, then write the summary and the best row's report.

    A cell that raises is recorded as failed and the grid goes on; ``KeyboardInterrupt`` stops
    the grid at once (run it again to resume). ``callbacks`` are passed to every training
    (Keras callbacks).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "grid.yaml", yaml.safe_dump(spec.raw, sort_keys=False))
    save_config(spec.base, out / "config.yaml")
    manifests = prepare_datasets(spec, out, workers)
    results: list[CellResult] = []
    with open_tracker(tracking_uri, run_name=f"grid {spec.name}") as parent:
        for index, cell in enumerate(spec.cells, start=1):
            run = RunDir.at(out / "runs" / cell.name)
            config = cell.config.model_copy(deep=True)
            config.data.manifest = manifests[cell.name]
            state = "done" if run.is_finished() else "resuming" if run.root.exists() else "new"
            console.print(f"[bold]grid cell {index}/{len(spec.cells)}[/bold] {cell.name} ({state})")
            try:
                with open_tracker(tracking_uri, run_name=cell.name, parent=parent) as tracker:
                    ensure_trained(tracker, config, run, callbacks)
                    metrics = cell_metrics(run, config)
                    for split, values in metrics.items() if tracker else ():
                        tracker.log_metrics(values, prefix=f"eval_{split}_")
                (run.root / ERROR_FILE).unlink(missing_ok=True)  # from an earlier failure
                results.append(CellResult(cell, run.root, "finished", metrics.get("val"),
                                          metrics.get("test")))
            except Exception as error:  # noqa: BLE001 - one failed cell must not stop the grid
                console.print(f"[red]cell {cell.name} failed:[/red] {error}")
                run.root.mkdir(parents=True, exist_ok=True)
                atomic_write_text(run.root / ERROR_FILE, traceback.format_exc())
                results.append(CellResult(cell, run.root, "failed", error=str(error)))
            finally:
                release_models()
        best = select_best(results, spec.select_by)
        csv_path, md_path = write_summary(spec, results, best, out)
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


# --------------------------------------------------------------------------- summary
def summary_frame(spec: GridSpec, results: Sequence[CellResult], best: str | None) -> pd.DataFrame:
    """One row per cell: the varying keys, validation and test metrics (with the test 95 %
    interval), the published reference where one matches, and the best-row marker."""
    rows = []
    for result in results:
        row: dict[str, Any] = {"run": result.cell.name}
        for key in spec.keys:
            row[COLUMN_LABELS.get(key, key)] = _display(_get_dotted(config_to_dict(
                result.cell.config), key))
        for split, metrics in (("val", result.val), ("test", result.test)):
            for name, _ in SUMMARY_METRICS:
                row[f"{split}_{name}"] = (metrics or {}).get(name)
        test = result.test or {}
        suffix = next((k[len("auc_"):] for k in test if k.startswith("auc_ci")), "ci95")
        row[f"test_auc_{suffix}"] = test.get(f"auc_{suffix}")
        if spec.reference:
            reference = next((r for r in spec.reference if r.matches(result.cell.config)), None)
            for name, _ in SUMMARY_METRICS[:4]:
                row[f"paper_{name}"] = reference.metrics.get(name) if reference else None
        row["status"] = result.status if not result.error else f"failed: {result.error}"
        row["best"] = result.cell.name == best
        rows.append(row)
    return pd.DataFrame(rows)


def write_summary(spec: GridSpec, results: Sequence[CellResult], best: str | None,
                  out_dir: Path) -> tuple[Path, Path]:
    """``grid_summary.csv`` (every number) and ``grid_summary.md`` (Table 5's layout)."""
    frame = summary_frame(spec, results, best)
    csv_path, md_path = out_dir / "grid_summary.csv", out_dir / "grid_summary.md"
    with atomic_open(csv_path, "w", newline="", encoding="utf-8") as handle:
        frame.to_csv(handle, index=False)
    atomic_write_text(md_path, _summary_markdown(spec, frame, best))
    return csv_path, md_path


def _summary_markdown(spec: GridSpec, frame: pd.DataFrame, best: str | None) -> str:
    key_columns = [COLUMN_LABELS.get(k, k) for k in spec.keys]
    has_reference = bool(spec.reference)
    header = ["Run", *key_columns,
              *(f"Val {label}" for name, label in SUMMARY_METRICS[:4]),
              *(f"Test {label}" for name, label in SUMMARY_METRICS),
              "Test AUC 95 % CI"]
    if has_reference:
        header += [f"Paper {label}" for _, label in SUMMARY_METRICS[:4]]
    ci_column = next(c for c in frame.columns if c.startswith("test_auc_ci"))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in frame.iterrows():
        name = f"**{row['run']}** (best)" if row["best"] else str(row["run"])
        if row["status"] != "finished":
            name += f" ({row['status']})"
        cells = [name, *(str(row[c]) for c in key_columns)]
        cells += [_fmt(name_, row[f"val_{name_}"]) for name_, _ in SUMMARY_METRICS[:4]]
        cells += [_fmt(name_, row[f"test_{name_}"]) for name_, _ in SUMMARY_METRICS]
        interval = row[ci_column]
        cells.append(f"{interval[0]:.2f}–{interval[1]:.2f}"
                     if isinstance(interval, list) and None not in interval else "")
        if has_reference:
            cells += [_fmt(n, row[f"paper_{n}"]) for n, _ in SUMMARY_METRICS[:4]]
        lines.append("| " + " | ".join(cells) + " |")
    selection = (f"Best row (**{best}**) chosen on the validation {spec.select_by.upper()} only; "
                 "the test columns were not used for any choice (model epoch, threshold or "
                 "configuration)." if best else "No finished run: no best row.")
    notes = [
        f"# Grid {spec.name}", "",
        selection, "",
        "Acc = accuracy, TNR = specificity, TPR = sensitivity, AUC = ROC AUC, F1 = "
        "2PR/(P+R), Eq.6 = the paper's Eq. 6, 2·TNR·precision/(TNR+precision), which the paper "
        "calls F1 but is not F1. Percentages except AUC. Each run's threshold was chosen on its "
        "validation split (or fixed).", "",
    ]
    if has_reference:
        notes += [f"Paper columns: {spec.reference_source} — the paper's claims on its own test "
                  "set, not reproduced results.", ""]
    return "\n".join(notes + lines) + "\n"


def _fmt(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{value:.3f}" if name == "auc" else f"{100 * value:.1f}"


def _display(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
