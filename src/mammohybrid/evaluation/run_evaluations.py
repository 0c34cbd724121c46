"""A run's evaluations, found beside it and read as tables (metric, value, interval): what the
``serve`` page's run panel shows and what the model card's evaluation section says.

:func:`write_run_model_card` writes the run's card (:mod:`mammohybrid.model_card`)
with every evaluation found; ``evaluate`` calls it after each evaluation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mammohybrid.errors import MammohybridError
from mammohybrid.evaluation.metrics import METRIC_LABELS, METRIC_NAMES
from mammohybrid.evaluation.report import metric_interval
from mammohybrid.model_card import write_model_card
from mammohybrid.run_dir import RunDir

# The metrics shown, in this order (``paper_eq6_score`` is not F1 and stays in the report,
# which explains it).
SHOWN_METRICS = [name for name in METRIC_NAMES if name != "paper_eq6_score"]


def find_metrics_files(run: RunDir) -> list[Path]:
    """The ``metrics.json`` of every evaluation of ``run``: ``evaluate``'s default folders
    (``RUN_DIR/evaluation-<split>``) and, for a run evaluated into its parent folder as
    ``make demo`` does, the parent's, when the configuration saved beside it is the run's."""
    found = sorted(run.root.glob("evaluation-*/metrics.json"))
    parent = run.root.parent
    beside = parent / "config.yaml"
    if (parent / "metrics.json").is_file() and beside.is_file() and run.config.is_file() \
            and beside.read_bytes() == run.config.read_bytes():
        found.append(parent / "metrics.json")
    return found


def evaluation_table(path: Path) -> dict[str, Any]:
    """One metrics.json as a table: split, counts, each metric with its interval."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        level = float(metrics.get("ci", {}).get("level", 0.95))
        rows = []
        for name in SHOWN_METRICS:
            interval = metric_interval(metrics, name) or [None, None]
            rows.append({"metric": METRIC_LABELS.get(name, name), "value": metrics.get(name),
                         "low": interval[0], "high": interval[1]})
    except RecursionError:
        raise MammohybridError(f"{path}: not a metrics.json written by evaluate (nested too "
                               "deeply)") from None
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise MammohybridError(f"{path}: not a metrics.json written by evaluate ({error})") \
            from None
    return {"file": str(path), "split": metrics.get("split", "?"), "n": metrics.get("n"),
            "n_patients": metrics.get("n_patients"), "level": level, "metrics": rows}


def evaluations_markdown(tables: Sequence[dict[str, Any]]) -> str:
    """The model card's evaluation section: one table per :func:`evaluation_table`."""
    parts = []
    for table in tables:
        level = round(100 * table["level"])
        rows = [f"| metric | value | {level} % interval |", "|---|---:|---:|"]
        for row in table["metrics"]:
            interval = ("n/a" if row["low"] is None or row["high"] is None
                        else f"{_number(row['low'])} - {_number(row['high'])}")
            rows.append(f"| {row['metric']} | {_number(row['value'])} | {interval} |")
        parts.append(f"**{table['split']} split**: {table['n']} images of "
                     f"{table['n_patients']} patients; patient-bootstrap intervals "
                     f"(`{table['file']}`)\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def evaluation_files(run: RunDir,
                     metrics_files: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """``metrics_files`` (evaluations written elsewhere), then those found beside the run
    (:func:`find_metrics_files`), each once."""
    return list(dict.fromkeys([*map(Path, metrics_files), *find_metrics_files(run)]))


def write_run_model_card(run: RunDir) -> Path:
    """Write the run's model card with the evaluations found beside it, atomically."""
    tables = [evaluation_table(path) for path in evaluation_files(run)]
    return write_model_card(run, evaluations_markdown(tables))


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "undefined"
