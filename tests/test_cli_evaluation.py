"""End-to-end tests of ``mammohybrid evaluate``, ``grid``, ``cv`` and ``features`` on a tiny
generated dataset and a tiny model (32 px images, ``tinycnn`` backbone, 2 epochs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from mammohybrid.cli import app
from mammohybrid.config import Config, load_config, save_config, with_overrides
from mammohybrid.data.manifest import read_manifest
from mammohybrid.evaluation.metrics import METRIC_NAMES
from mammohybrid.run_dir import RunDir

runner = CliRunner()
# One worker runs this file's tests, so that the trained run below is trained once.
pytestmark = pytest.mark.xdist_group("cli_evaluation")
TINY = ["model.backbones=[tinycnn]", "model.weights=none", "model.input_size=32",
        "model.augment=none", "preprocess.output_size=32", "train.epochs=2",
        "train.batch_size=8", "train.learning_rate=0.03", "evaluate.bootstrap_samples=200"]


@pytest.fixture(scope="module")
def toy(toy_dataset) -> Path:
    """The toy dataset with 48 usable images (one patient each, 24 train, 12 val, 12 test) +
    one failed row: enough for the cross-validation folds."""
    return toy_dataset({"train": 24, "val": 12, "test": 12})


@pytest.fixture(scope="module")
def raw_toy(toy, tmp_path_factory) -> Path:
    """The toy images as a raw manifest (no pre-processing columns, no config.yaml beside)."""
    from mammohybrid.data.manifest import write_manifest

    frame = read_manifest(toy)
    frame = frame[frame["status"] == "ok"].drop(columns=["source_path", "status"])
    return write_manifest(frame, tmp_path_factory.mktemp("raw") / "raw.csv")


@pytest.fixture(scope="module")
def trained_run(toy, tmp_path_factory) -> Path:
    from mammohybrid.training import train

    config = with_overrides(Config(), [*TINY, f"data.manifest={toy}"])
    return train(config, tmp_path_factory.mktemp("run") / "run").root


class InterruptAfter:
    """A Keras callback raising KeyboardInterrupt at the end of the n-th epoch it sees (over
    all the trainings it is given to), like Ctrl-C during training."""

    def __new__(cls, epochs: int):
        import keras

        class _Interrupt(keras.callbacks.Callback):
            left = epochs

            def on_epoch_end(self, epoch, logs=None):
                type(self).left -= 1
                if type(self).left == 0:
                    raise KeyboardInterrupt

        return _Interrupt()


def _ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def test_help_of_every_command():
    for command, options in {"evaluate": ["--split", "--out", "--manifest", "--set"],
                             "grid": ["--out", "--manifest", "--set", "--mlflow", "--dry-run"],
                             "cv": ["--folds", "--repeats", "--out", "--include-test", "--mlflow"],
                             "select": ["--out", "--folds", "--repeats", "--inner-folds",
                                        "--inner-repeats", "--rule", "--include-test"],
                             "features": ["--out"]}.items():
        output = _ok(runner.invoke(app, [command, "--help"]))
        for option in options:
            assert option in output, (command, option)


def test_evaluate_writes_every_artefact(trained_run, toy, tmp_path):
    out = tmp_path / "eval"
    output = _ok(runner.invoke(app, ["evaluate", str(trained_run), "--out", str(out)]))
    assert "ROC AUC" in output and "report:" in output
    for name in ("predictions.csv", "metrics.json", "confusion_matrix.png", "roc_curve.png",
                 "training_curves.png", "report.html", "report.md", "config.yaml"):
        assert (out / name).is_file(), name

    predictions = pd.read_csv(out / "predictions.csv")
    test_rows = read_manifest(toy).query("split == 'test'")
    assert len(predictions) == len(test_rows) == 12
    assert list(predictions.columns[:5]) == ["image", "patient", "label", "probability",
                                             "predicted"]
    assert set(predictions["split"]) == {"test"}

    metrics = json.loads((out / "metrics.json").read_text())
    stored = json.loads(RunDir.at(trained_run).threshold.read_text())
    assert metrics["threshold"] == stored["value"] and metrics["threshold_split"] == "none"
    assert metrics["n"] == 12
    for name in METRIC_NAMES:
        assert name in metrics and len(metrics[f"{name}_ci95"]) == 2
    assert metrics["auc"] == pytest.approx(roc_auc_score(predictions["label"],
                                                         predictions["probability"]))
    assert (predictions["predicted"] == (predictions["probability"] >= stored["value"])).all()

    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing outside the file
    for text in ("Test split, touched only here", "not the F1 score", "BENIGN_WITHOUT_CALLBACK",
                 "left out of training and evaluation", "tinycnn"):
        assert text in html, text
    md = (out / "report.md").read_text()
    assert "![Confusion matrix" in md and "| ROC AUC |" in md


def test_evaluate_new_threshold_rule_is_chosen_on_validation(trained_run, toy, tmp_path):
    from mammohybrid.decision import select_threshold
    from mammohybrid.models import load_model
    from mammohybrid.training import predict_manifest

    out = tmp_path / "youden"
    _ok(runner.invoke(app, ["evaluate", str(trained_run), "--out", str(out),
                            "--set", "evaluate.threshold=youden"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["threshold_method"], metrics["threshold_split"]) in {("youden", "val"),
                                                                         ("fixed", "none")}
    config = load_config(RunDir.at(trained_run).config)
    val = read_manifest(toy).query("split == 'val' and status == 'ok'")
    model = load_model(RunDir.at(trained_run).model)
    expected = select_threshold(val["label"].to_numpy(), predict_manifest(model, val, config),
                                with_overrides(config, ["evaluate.threshold=youden"]).evaluate)
    assert metrics["threshold"] == pytest.approx(expected.value)


def test_evaluate_errors_are_one_line(tmp_path, trained_run, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    save_config(Config(), unfinished / "config.yaml")
    from mammohybrid.cli import main

    for args, message in (([str(unfinished)], "has not finished"),
                          ([str(tmp_path / "nothing")], "not a run directory"),
                          ([str(trained_run), "--split", "holdout"], "split must be one of")):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", *args])
        assert exit_.value.code == 1, message
        error = capsys.readouterr().err
        assert message in error and "Traceback" not in error


def test_features_npz(trained_run, toy, tmp_path):
    output = _ok(runner.invoke(app, ["features", str(trained_run), str(toy), "--out",
                                     str(tmp_path / "features")]))
    path = tmp_path / "features.npz"
    assert str(path) in output
    data = np.load(path)
    usable = read_manifest(toy).query("status == 'ok'")
    assert data["X"].shape == (48, 16)  # tinycnn: 16 channels, globally pooled
    assert data["X"].dtype == np.float32 and np.isfinite(data["X"]).all()
    assert data["X"].std(axis=0).max() > 0
    assert list(data["image_path"]) == list(usable["image_path"])
    assert list(data["label"]) == list(usable["label"])
    assert list(data["patient_id"]) == list(usable["patient_id"])


def test_features_refuse_images_preprocessed_otherwise(trained_run, toy, tmp_path):
    from mammohybrid.errors import ConfigError
    from mammohybrid.evaluation.feature_export import extract_features

    other = tmp_path / "median"
    other.mkdir()
    manifest = other / "manifest.csv"
    manifest.write_text(toy.read_text())
    save_config(with_overrides(load_config(toy.parent / "config.yaml"),
                               ["preprocess.strategy=wiener"]), other / "config.yaml")
    with pytest.raises(ConfigError, match=r"preprocess\.strategy"):
        extract_features(trained_run, manifest, tmp_path / "features.npz")
    assert not (tmp_path / "features.npz").exists()


@pytest.mark.slow
def test_grid_runs_resumes_after_interruption_and_summarises(raw_toy, tmp_path):
    from mammohybrid.workflows.grid import load_grid, run_grid

    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({
        "name": "tiny",
        # Typed values, as a grid file holds them (config types are strict: "2" is no 2).
        "set": {key: yaml.safe_load(value) for key, value in
                (item.split("=", 1) for item in TINY)} | {
            "model.backbones": ["tinycnn"], "train.learning_rate": 0.03},
        "manifest": str(raw_toy),  # a raw manifest: pre-processed once per filter
        "axes": {"preprocess.strategy": ["median", "wiener"]},
        "runs": [{"name": "median-max", "set": {"preprocess.strategy": "median",
                                                "model.pooling": "max"}},
                 # tinycnn has no ImageNet weights: this cell fails, the grid goes on.
                 {"name": "broken", "set": {"model.weights": "imagenet"}}],
    }))
    out = tmp_path / "grid"
    # Interrupted (Ctrl-C) in the second epoch of the second cell.
    with pytest.raises(KeyboardInterrupt):
        run_grid(load_grid(grid_file), out, callbacks=[InterruptAfter(4)], report_best=False)
    runs = {name: RunDir.at(out / "runs" / name) for name in ("median", "wiener", "median-max")}
    assert runs["median"].is_finished() and not runs["wiener"].is_finished()
    assert not runs["median-max"].root.exists()
    assert len(list((out / "datasets").glob("*/manifest.csv"))) == 2  # median and wiener
    first_model = runs["median"].model.stat().st_mtime_ns

    mlruns = tmp_path / "mlruns"
    result = runner.invoke(app, ["grid", str(grid_file), "--out", str(out),
                                 "--mlflow", mlruns.as_uri()])
    assert result.exit_code == 1, result.output
    output = result.output
    assert "1 cell(s) failed: broken" in output
    assert "no ImageNet weights" in (out / "runs" / "broken" / "grid_error.txt").read_text()
    assert "(done)" in output and "(resuming)" in output and "(new)" in output
    assert runs["median"].model.stat().st_mtime_ns == first_model  # skipped, not retrained
    info = json.loads(runs["wiener"].info.read_text())
    assert info["resumed_at_epochs"] == [1] and info["epochs"] == 2
    assert all(run.is_finished() for run in runs.values())

    summary = pd.read_csv(out / "grid_summary.csv")
    assert list(summary["run"]) == ["median", "wiener", "median-max", "broken"]
    assert list(summary["Filter"]) == ["median", "wiener", "median", "median"]
    assert list(summary["Pooling"]) == ["avg", "avg", "max", "avg"]
    assert summary["status"].iloc[3].startswith("failed: ")
    summary = summary.iloc[:3]
    assert summary[["val_auc", "test_auc", "val_accuracy", "test_accuracy"]].notna().all().all()
    best = summary.loc[summary["val_auc"].idxmax(), "run"]
    assert summary.loc[summary["best"], "run"].tolist() == [best]
    md = (out / "grid_summary.md").read_text()
    assert "chosen on the validation AUC only" in md and f"**{best}** (best)" in md
    assert (out / "best" / "report.html").is_file()
    best_metrics = json.loads((out / "best" / "metrics.json").read_text())
    assert best_metrics["auc"] == pytest.approx(
        summary.loc[summary["run"] == best, "test_auc"].item())
    # Each filter's cells trained on that filter's pre-processed dataset.
    for name, run in runs.items():
        assert load_config(run.config).preprocess.strategy == name.split("-")[0]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlruns.as_uri())
    children = {r.data.tags["mlflow.runName"]: r for r in client.search_runs(
        [e.experiment_id for e in client.search_experiments()])
        if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == {"median", "wiener", "median-max", "broken"}
    assert children["broken"].info.status == "FAILED"
    new = children["median-max"]
    assert new.data.params["preprocess.strategy"] == "median"
    assert len(client.get_metric_history(new.info.run_id, "val_auc")) == 2  # per epoch
    assert "eval_test_auc" in new.data.metrics and "eval_val_auc" in new.data.metrics


@pytest.mark.slow
def test_cv_runs_resumes_after_interruption_and_summarises(toy, tmp_path):
    from mammohybrid.workflows.cv import run_cv

    config_file = tmp_path / "cv.yaml"
    config = with_overrides(Config(), [*TINY, f"data.manifest={toy}", "data.val_fraction=0.2"])
    save_config(config, config_file)
    out = tmp_path / "cv"
    with pytest.raises(KeyboardInterrupt):  # in the second epoch of the second fold
        run_cv(config, out, folds=3, repeats=1, include_test=True,
               callbacks=[InterruptAfter(4)])
    fold_runs = [RunDir.at(out / "r0" / f"f{k}" / "run") for k in range(3)]
    assert fold_runs[0].is_finished() and not fold_runs[1].is_finished()
    first_model = fold_runs[0].model.stat().st_mtime_ns

    output = _ok(runner.invoke(app, ["cv", str(config_file), "--folds", "3", "--out", str(out),
                                     "--include-test"]))
    assert "3 fold run(s)" in output and "of the test split included" in output
    assert fold_runs[0].model.stat().st_mtime_ns == first_model
    assert json.loads(fold_runs[1].info.read_text())["resumed_at_epochs"] == [1]

    summary = json.loads((out / "cv_summary.json").read_text())
    assert summary["n_folds"] == 3 and summary["n_repeats"] == 1 and len(summary["folds"]) == 3
    aucs = [fold["auc"] for fold in summary["folds"]]
    assert summary["auc_mean"] == pytest.approx(np.mean(aucs))
    assert summary["auc_std"] == pytest.approx(np.std(aucs, ddof=1))
    assert (out / "cv_roc.png").is_file()
    oof = pd.read_csv(out / "oof_predictions.csv")
    assert len(oof) == 48 and oof["image"].is_unique  # every usable image predicted once
    assert summary["pooled_out_of_fold"][0]["auc"] == pytest.approx(
        roc_auc_score(oof["label"], oof["probability"]))
    for k, run in enumerate(fold_runs):
        fold_manifest = read_manifest(out / "r0" / f"f{k}" / "manifest.csv")
        assert Path(load_config(run.config).data.manifest) == out / "r0" / f"f{k}" / "manifest.csv"
        held_out = set(fold_manifest.query("split == 'test'")["image_path"])
        assert held_out == set(oof.query("fold == @k")["image"])
        assert not held_out & set(fold_manifest.query("split != 'test'")["image_path"])


@pytest.mark.slow
def test_train_with_mlflow_logs_params_epochs_and_files(toy, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    args = ["train", "--out", str(tmp_path / "run"), "--mlflow", store.as_uri(),
            *[part for item in [*TINY, f"data.manifest={toy}"] for part in ("--set", item)]]
    _ok(runner.invoke(app, args))
    client = MlflowClient(store.as_uri())
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.runName"] == "run"
    assert run.data.params["model.backbones"] == "['tinycnn']"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_auc")] == [0, 1]
    assert "run.best_val_auc" in run.data.metrics
    files = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "history.csv", "training_curves.png", "threshold.json",
            "run.json"} <= files


@pytest.mark.slow
def test_cv_and_train_apply_the_configs_preprocessing_to_a_raw_manifest(raw_toy, tmp_path):
    """The settings are never silently ignored: two strategies on one raw manifest train on
    two differently pre-processed datasets and give different out-of-fold predictions."""
    from mammohybrid.preprocess.settings import manifest_preprocess
    from mammohybrid.training import train
    from mammohybrid.workflows.cv import run_cv

    predictions = {}
    for strategy in ("none", "median"):
        config = with_overrides(Config(), [*TINY, "train.epochs=1", f"data.manifest={raw_toy}",
                                           f"preprocess.strategy={strategy}"])
        result = run_cv(config, tmp_path / strategy, folds=2, repeats=1, include_test=True)
        oof = pd.read_csv(result.files["oof_predictions"])
        predictions[strategy] = oof.assign(name=oof["image"].map(lambda p: Path(p).name))
        used = Path(result.summary["manifest"])
        assert used.parent.parent == raw_toy.parent / "raw.preprocessed"
        assert manifest_preprocess(used) == config.preprocess
        run = train(config, tmp_path / f"run-{strategy}")
        assert Path(load_config(run.config).data.manifest) == used  # the same cached dataset
    assert len(list((raw_toy.parent / "raw.preprocessed").glob("*/manifest.csv"))) == 2
    merged = predictions["none"].merge(predictions["median"], on="name")
    assert len(merged) == 48
    assert not np.allclose(merged["probability_x"], merged["probability_y"])


@pytest.mark.parametrize("include_test", [False, True])
def test_cv_leaves_the_test_split_out_unless_asked(toy, tmp_path, monkeypatch, include_test):
    """The manifest's test split is kept for a final evaluation: cv folds it in only with
    --include-test, and says which rows it used. (Training is stubbed: only the rows count.)"""
    import mammohybrid.workflows.cv as cv_module

    def fold_without_training(task):
        held_out = task.frame[task.frame["split"] == "test"]
        predictions = pd.DataFrame({"image": held_out["image_path"].astype(str),
                                    "patient": held_out["patient_id"].astype(str),
                                    "label": held_out["label"],
                                    "probability": np.linspace(0, 1, len(held_out))})
        return predictions, dict.fromkeys(METRIC_NAMES, 0.5)

    monkeypatch.setattr(cv_module, "run_fold", fold_without_training)
    test_images = set(read_manifest(toy).query("split == 'test'")["image_path"].astype(str))
    config_file = save_config(with_overrides(Config(), [*TINY, f"data.manifest={toy}"]),
                              tmp_path / "cv.yaml")
    args = ["cv", str(config_file), "--folds", "3", "--out", str(tmp_path / "cv"),
            *(["--include-test"] if include_test else [])]
    output = _ok(runner.invoke(app, args))
    oof = pd.read_csv(tmp_path / "cv" / "oof_predictions.csv")
    summary = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())
    if include_test:
        assert len(oof) == 48 and test_images <= set(oof["image"])
        assert "12 of the test split included" in output
    else:
        assert len(oof) == 36 and not test_images & set(oof["image"])
        assert "test split (12 left out)" in output
    assert summary["rows"] in output


@pytest.mark.slow
def test_cv_keeps_tensorflows_chatter_off_the_terminal(toy, tmp_path):
    """Neither TensorFlow's start-up lines (oneDNN, CPU features, absl) nor its retracing
    warnings (several models predicting in one process) reach the terminal."""
    import os
    import subprocess
    import sys

    config_file = save_config(with_overrides(Config(), [*TINY, f"data.manifest={toy}",
                                                        "train.epochs=1"]), tmp_path / "cv.yaml")
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [sys.executable, "-c", "from mammohybrid.cli import main; main()", "cv",
         str(config_file), "--folds", "2", "--out", str(tmp_path / "cv")],
        capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 fold run(s)" in done.stdout
    terminal = done.stdout + done.stderr
    for chatter in ("retracing", "oneDNN", "cpu_feature_guard", "absl", "WARNING:tensorflow"):
        assert chatter not in terminal


def _cv_folder(folder: Path, strategy: str, probabilities: np.ndarray) -> Path:
    """A finished cv output folder: a pre-processed manifest of 20 crops of 10 patients (one
    strategy's copies of the same sources) and out-of-fold predictions over 2 repeats."""
    sources = [f"/data/crop{i}.png" for i in range(20)]
    labels = np.tile([0, 1], 10)
    patients = [f"P{i // 2}" for i in range(20)]
    folder.mkdir(parents=True)
    manifest = folder / "manifest.csv"
    images = [f"/cache/{strategy}/crop{i}.png" for i in range(20)]
    pd.DataFrame({"image_path": images, "source_path": sources, "label": labels,
                  "patient_id": patients, "status": "ok"}).to_csv(manifest, index=False)
    pd.DataFrame({"image": images * 2, "patient": patients * 2, "label": np.tile(labels, 2),
                  "probability": probabilities, "predicted": 0, "split": "test",
                  "repeat": np.repeat([0, 1], 20), "fold": np.tile(np.arange(20) % 4, 2)}
                 ).to_csv(folder / "oof_predictions.csv", index=False)
    (folder / "cv_summary.json").write_text(json.dumps({"manifest": str(manifest)}))
    return folder


def test_compare_pairs_two_cross_validations_by_source_image(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 20)
    good = _cv_folder(tmp_path / "good", "median", labels + rng.normal(0, 0.3, 40))
    noise = _cv_folder(tmp_path / "noise", "none", rng.random(40))
    output = _ok(runner.invoke(app, ["compare", str(good), str(noise), "--bootstrap", "500"]))
    assert "paired difference: good - noise: +" in output
    assert "above zero: the first is better" in output
    same = _ok(runner.invoke(app, ["compare", str(noise), str(noise), "--bootstrap", "500"]))
    assert "includes zero" in same
    short = _cv_folder(tmp_path / "short", "wiener", rng.random(40))
    oof = pd.read_csv(short / "oof_predictions.csv")
    oof.iloc[:-1].to_csv(short / "oof_predictions.csv", index=False)  # one prediction missing
    result = runner.invoke(app, ["compare", str(good), str(short)])
    assert result.exit_code != 0 and "same predictions" in result.output


@pytest.mark.parametrize("command", ["cv", "grid"])
def test_a_ray_address_nobody_answers_at_is_one_line_at_once(tmp_path, capsys, monkeypatch,
                                                             closed_port, command):
    """Ray would retry it for over 400 s, deaf to Ctrl-C: the command stops at once."""
    ray = pytest.importorskip("ray")
    from mammohybrid.cli import main
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("ray.init was called"))
    address = f"127.0.0.1:{closed_port}"
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"name": "g", "base": "cpu-quick",
                                         "manifest": str(tmp_path / "m.csv"),
                                         "axes": {"model.pooling": ["avg", "max"]}}))
    first = "cpu-quick" if command == "cv" else str(grid_file)
    with pytest.raises(SystemExit) as exit_info:
        main([command, first, "--out", str(tmp_path / "out"), "--executor", "ray",
              "--address", address])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot reach the Ray cluster at {address}: connection "
                            "refused")
    assert "Traceback" not in error
