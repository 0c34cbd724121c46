"""The grid file: its keys, its cells (the axes' product and the explicit runs, each with its
full, validated config) and the published reference rows shown beside matching cells.

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
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from mammohybrid.config import (
    Config,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_yaml_mapping,
)
from mammohybrid.errors import ConfigError

_GRID_KEYS = {"name", "description", "base", "set", "manifest", "select_by",
              "axes", "runs", "reference"}
SELECTABLE = ("auc", "accuracy", "f1", "sensitivity", "specificity")


@dataclass(frozen=True)
class GridCell:
    """One training of the grid: its name, the values that define it, and its full config."""

    name: str
    values: dict[str, Any]
    config: Config


@dataclass
class CellResult:
    """The outcome of one cell: its validation and test metrics, or why it has none."""

    cell: GridCell
    run_dir: Path
    status: str  # "finished", "failed"
    val: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    error: str = ""


@dataclass(frozen=True)
class ReferenceRow:
    """Published numbers for the cells whose config matches ``match``."""

    match: dict[str, Any]
    metrics: dict[str, float]

    def matches(self, config: Config) -> bool:
        flat = config_to_dict(config)
        return all(_normalise(get_dotted(flat, key)) == _normalise(value)
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
            values = dict(zip(axes.keys(), combination, strict=True))
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


def get_dotted(data: Mapping[str, Any], key: str) -> Any:
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
