"""The end-to-end demo, shrunk: a few synthetic patients, a tiny model, one epoch. Checks that
every stage runs through the real readers and writes the artefacts the README promises, and that
a second run into the same folder reuses the finished stages."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app

TINY = ["model.backbones=[tinycnn]", "model.weights=none", "model.trainable=all",
        "model.input_size=32", "preprocess.output_size=48",
        "train.epochs=1", "train.batch_size=8", "evaluate.bootstrap_samples=50"]


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path, monkeypatch) -> None:
    # A relative output folder, as `make demo` gives it.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "demo"
    args = ["demo", "--out", "demo", "--patients", "10", "--workers", "1"]
    for key_value in TINY:
        args += ["--set", key_value]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "sensitivity", "specificity", "precision", "f1", "auc",
                "paper_eq6_score", "threshold", "n", "auc_ci95", "f1_ci95"):
        assert key in metrics
    assert metrics["split"] == "test" and metrics["n"] > 0
    html = (out / "report.html").read_text()
    assert "Test-time filter ensemble" in html and "Grad-CAM" in html
    assert html.count("data:image/png;base64,") >= 4  # figures and overlays embedded
    assert "src=\"http" not in html

    # Predicted from the raw DICOMs: one row per usable test image, every strategy reported.
    manifest = pd.read_csv(out / "data" / "preprocessed" / "manifest.csv")
    test = manifest[(manifest["split"] == "test") & (manifest["status"] == "ok")]
    predictions = pd.read_csv(out / "predict" / "test_predictions.csv")
    assert len(predictions) == len(test) and predictions["error"].isna().all()
    assert all(predictions["path"].str.endswith(".dcm"))
    for strategy in ("median", "wiener", "gaussian"):
        assert predictions[f"probability_{strategy}"].between(0, 1).all()
    overlays = sorted(p.name for p in (out / "predict" / "gradcam").glob("*_combined.png"))
    assert overlays and all((out / "predict" / "gradcam" / n.replace("combined", "tinycnn"))
                            .is_file() for n in overlays)

    timings = json.loads((out / "demo_timings.json").read_text())
    assert set(timings) >= {"synth", "ingest", "preprocess", "train", "predict", "evaluate"}
    # A second run reuses the dataset, the pre-processed images and the finished training.
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output and "already trained" in again.output


def test_the_training_strategy_alone_is_the_ensembles_baseline() -> None:
    from mammohybrid.workflows.demo import ENSEMBLES, _ensemble_section, ensembles

    assert ensembles("median") == list(ENSEMBLES)
    compared = ensembles("wiener")  # a model trained on Wiener-filtered images
    assert compared[0] == ("wiener",) and sorted(compared) == sorted(ENSEMBLES)
    assert ensembles("custom")[0] == ("custom",) and len(ensembles("custom")) == 6

    table = pd.DataFrame({
        "strategies": [" + ".join(names) for names in compared],
        "auc": [0.90, 0.80, 0.95, 0.90, 0.90], "auc_ci_low": [0.8] * 5,
        "auc_ci_high": [1.0] * 5, "accuracy": [0.9] * 5,
        "log_loss": [0.30, 0.40, 0.35, 0.20, 0.31]})
    verdict = _ensemble_section(table).paragraphs[1]
    assert verdict.startswith("Against wiener alone (AUC 0.900, log loss 0.300)")
    assert "gaussian (AUC 0.950" in verdict  # a higher AUC
    assert "median + wiener (AUC 0.900, log loss 0.200)" in verdict  # same AUC, lower log loss
    assert "median (AUC" not in verdict and "gaussian (AUC 0.900" not in verdict
