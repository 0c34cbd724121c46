"""A run's evaluations in its model card: evaluate writes the card again with the figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mammohybrid.evaluation.evaluate import evaluate_run
from mammohybrid.run_dir import RunDir


def test_evaluate_writes_the_card_again_with_its_intervals(run_dir: Path, tmp_path) -> None:
    run = RunDir.at(shutil.copytree(run_dir, tmp_path / "run"))
    assert "Not evaluated yet" in run.model_card.read_text()
    result = evaluate_run(run.root, "test", overrides=["evaluate.bootstrap_samples=50"])
    card = run.model_card.read_text()
    assert "Not evaluated yet" not in card
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert f"**test split**: {metrics['n']} images of {metrics['n_patients']} patients" in card
    low, high = metrics["auc_ci95"]
    assert f"| ROC AUC | {metrics['auc']:.3f} | {low:.3f} - {high:.3f} |" in card
