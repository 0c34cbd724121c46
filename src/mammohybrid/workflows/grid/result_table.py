"""The grid's result table: one row per cell with validation and test metrics side by side
(``grid_summary.csv``) and the same in the layout of the paper's Table 5 (``grid_summary.md``),
the row chosen on validation marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mammohybrid.config import config_to_dict
from mammohybrid.fileio import atomic_open, atomic_write_text
from mammohybrid.workflows.grid.spec import CellResult, GridSpec, get_dotted

# Column labels of the table for the keys Table 5 varies; other keys show as themselves.
COLUMN_LABELS = {"preprocess.strategy": "Filter", "model.pooling": "Pooling",
                 "train.learning_rate": "LR", "model.head_dropout": "Dropout",
                 "model.branch_dropout": "Branch dropout", "model.backbones": "Backbones"}
# (metric, short label) of the table's metric columns, in Table 5's order.
TABLE_METRICS = (("accuracy", "Acc"), ("specificity", "TNR"), ("sensitivity", "TPR"),
                 ("auc", "AUC"), ("f1", "F1"), ("paper_eq6_score", "Eq.6"))


def result_table_frame(spec: GridSpec, results: Sequence[CellResult],
                       best: str | None) -> pd.DataFrame:
    """One row per cell: the varying keys, validation and test metrics (with the test 95 %
    interval), the published reference where one matches, and the best-row marker."""
    rows = []
    for result in results:
        row: dict[str, Any] = {"run": result.cell.name}
        for key in spec.keys:
            row[COLUMN_LABELS.get(key, key)] = _display(get_dotted(config_to_dict(
                result.cell.config), key))
        for split, metrics in (("val", result.val), ("test", result.test)):
            for name, _ in TABLE_METRICS:
                row[f"{split}_{name}"] = (metrics or {}).get(name)
        test = result.test or {}
        suffix = next((k[len("auc_"):] for k in test if k.startswith("auc_ci")), "ci95")
        row[f"test_auc_{suffix}"] = test.get(f"auc_{suffix}")
        if spec.reference:
            reference = next((r for r in spec.reference if r.matches(result.cell.config)), None)
            for name, _ in TABLE_METRICS[:4]:
                row[f"paper_{name}"] = reference.metrics.get(name) if reference else None
        row["status"] = result.status if not result.error else f"failed: {result.error}"
        row["best"] = result.cell.name == best
        rows.append(row)
    return pd.DataFrame(rows)


def write_result_table(spec: GridSpec, results: Sequence[CellResult], best: str | None,
                  out_dir: Path) -> tuple[Path, Path]:
    """``grid_summary.csv`` (every number) and ``grid_summary.md`` (Table 5's layout)."""
    frame = result_table_frame(spec, results, best)
    csv_path, md_path = out_dir / "grid_summary.csv", out_dir / "grid_summary.md"
    with atomic_open(csv_path, "w", newline="", encoding="utf-8") as handle:
        frame.to_csv(handle, index=False)
    atomic_write_text(md_path, _table_markdown(spec, frame, best))
    return csv_path, md_path


def _table_markdown(spec: GridSpec, frame: pd.DataFrame, best: str | None) -> str:
    key_columns = [COLUMN_LABELS.get(k, k) for k in spec.keys]
    has_reference = bool(spec.reference)
    header = ["Run", *key_columns,
              *(f"Val {label}" for name, label in TABLE_METRICS[:4]),
              *(f"Test {label}" for name, label in TABLE_METRICS),
              "Test AUC 95 % CI"]
    if has_reference:
        header += [f"Paper {label}" for _, label in TABLE_METRICS[:4]]
    ci_column = next(c for c in frame.columns if c.startswith("test_auc_ci"))
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in frame.iterrows():
        name = f"**{row['run']}** (best)" if row["best"] else str(row["run"])
        if row["status"] != "finished":
            name += f" ({row['status']})"
        cells = [name, *(str(row[c]) for c in key_columns)]
        cells += [_fmt(name_, row[f"val_{name_}"]) for name_, _ in TABLE_METRICS[:4]]
        cells += [_fmt(name_, row[f"test_{name_}"]) for name_, _ in TABLE_METRICS]
        interval = row[ci_column]
        cells.append(f"{interval[0]:.2f}–{interval[1]:.2f}"
                     if isinstance(interval, list) and None not in interval else "")
        if has_reference:
            cells += [_fmt(n, row[f"paper_{n}"]) for n, _ in TABLE_METRICS[:4]]
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
