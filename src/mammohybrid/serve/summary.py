"""The run summary panel of the page: the run's configuration, its decision threshold and how
it was chosen, and the metrics (with bootstrap intervals) of every evaluation of it found."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mammohybrid.errors import MammohybridError
from mammohybrid.evaluation.metrics import METRIC_LABELS, METRIC_NAMES
from mammohybrid.evaluation.report import metric_interval
from mammohybrid.inference import Predictor
from mammohybrid.run_dir import RunDir

# The metrics the panel shows, in this order (``paper_eq6_score`` is not F1 and stays in the
# report, which explains it).
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


def evaluation_summary(path: Path) -> dict[str, Any]:
    """One metrics.json as the panel's table: split, counts, each metric with its interval."""
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


def run_summary(run_dir: str | os.PathLike[str], predictor: Predictor,
                metrics_files: Sequence[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    """Everything the page's run panel shows (JSON-ready). ``metrics_files`` are evaluations
    written elsewhere; those found beside the run are added."""
    run = RunDir.at(run_dir)
    config = predictor.config
    files = list(dict.fromkeys([*map(Path, metrics_files), *find_metrics_files(run)]))
    info = json.loads(run.info.read_text(encoding="utf-8")) if run.info.is_file() else {}
    best_auc = info.get("best_val_auc")
    return {
        "run": str(run.root),
        "facts": [
            ["pre-processing", config.preprocess.strategy],
            ["backbones", " + ".join(config.model.backbones)],
            ["weights", str(config.model.weights)],
            ["trainable layers", config.model.trainable],
            ["model input", f"{predictor.input_size}x{predictor.input_size}"],
            ["epochs", str(config.train.epochs)],
            ["best epoch", str(info.get("best_epoch", "?"))],
            ["best validation AUC",
             f"{best_auc:.3f}" if isinstance(best_auc, (int, float)) else "?"],
            ["seed", str(config.seed)],
        ],
        "threshold": predictor.threshold.to_dict(),
        "strategies": predictor.strategies,
        "training_strategy": config.preprocess.strategy,
        "config_yaml": run.config.read_text(encoding="utf-8"),
        "evaluations": [evaluation_summary(path) for path in files],
    }
