"""The run panel of the page: the run's configuration, its decision threshold and how
it was chosen, the metrics (with bootstrap intervals) of every evaluation of it found, and its
model card with those evaluations."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from mammohybrid.evaluation import evaluation_files, evaluation_table, evaluations_markdown
from mammohybrid.inference import Predictor
from mammohybrid.model_card import render_model_card
from mammohybrid.run_dir import RunDir


def run_panel(run_dir: str | os.PathLike[str], predictor: Predictor,
                metrics_files: Sequence[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    """Everything the page's run panel shows (JSON-ready). ``metrics_files`` are evaluations
    written elsewhere; those found beside the run are added."""
    run = RunDir.at(run_dir)
    config = predictor.config
    evaluations = [evaluation_table(path) for path in evaluation_files(run, metrics_files)]
    info = json.loads(run.info.read_text(encoding="utf-8")) if run.info.is_file() else {}
    best_auc = info.get("best_val_auc")
    return {
        "run": str(run.root),
        "facts": [
            ["backend", predictor.scorer.backend],
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
        "evaluations": evaluations,
        "model_card": render_model_card(run, evaluations_markdown(evaluations)),
    }

