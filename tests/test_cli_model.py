"""`mammohybrid summary` and `mammohybrid train` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mammohybrid.run_dir import RunDir

CLI = [sys.executable, "-c", "from mammohybrid.cli import main; main()"]
TINY = ["--set", "model.backbones=[tinycnn]", "--set", "model.input_size=32",
        "--set", "model.weights=none", "--set", "preprocess.output_size=32",
        "--set", "train.epochs=1", "--set", "train.batch_size=8"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_summary_of_the_paper_preset_is_fig_9() -> None:
    done = run("summary", "--preset", "paper")
    assert done.returncode == 0, done.stderr
    for text in ("Total params: 87,667,096", "Trainable params: 87,310,929",
                 "Non-trainable params: 356,167", "23,564,800", "64,097,687", "4,609",
                 "(None, 8, 8, 4608)", "resnet50v2", "efficientnetb7", "global_pool",
                 "[-1, 1]"):
        assert text in done.stdout, text


def test_paper_median_preset_is_the_median_table5_row() -> None:
    from mammohybrid.config import load_config

    config = load_config("paper-median")
    assert config == load_config("paper")  # the headline row is also the median filter's best
    assert (config.preprocess.strategy, config.model.pooling, config.train.learning_rate,
            config.model.head_dropout) == ("median", "avg", 1e-4, 0.2)
    assert config.model.backbones == ["resnet50v2", "efficientnetb7"]


@pytest.mark.slow
def test_summary_of_a_config_file_with_overrides(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  backbones: [tinycnn]\n  input_size: 64\n")
    done = run("summary", "--config", str(config), "--set", "model.pooling=max")
    assert done.returncode == 0, done.stderr
    assert "GlobalMaxPooling2D" in done.stdout and "Total params: 4,653" in done.stdout
    both = run("summary", "--config", str(config), "--preset", "paper")
    assert both.returncode != 0 and "not both" in both.stderr


@pytest.mark.slow
def test_train_writes_a_finished_run_directory(tmp_path: Path, toy: Path) -> None:
    out = tmp_path / "run"
    done = run("train", "--out", str(out), "--set", f"data.manifest={toy}", *TINY)
    assert done.returncode == 0, done.stderr
    assert f"model: {out / 'model.keras'}" in done.stdout
    run_dir = RunDir.at(out)
    assert run_dir.is_finished() and run_dir.threshold.is_file()
    assert json.loads(run_dir.info.read_text())["epochs"] == 1
    again = run("train", "--out", str(out), "--set", f"data.manifest={toy}", *TINY)
    assert again.returncode == 1 and "--resume" in again.stderr
    resumed = run("train", "--out", str(out), "--resume", "--set", f"data.manifest={toy}", *TINY)
    assert resumed.returncode == 0 and "already trained" in resumed.stderr


@pytest.mark.slow
def test_train_without_a_manifest_is_a_one_line_error(tmp_path: Path) -> None:
    done = run("train", "--out", str(tmp_path / "run"), *TINY)
    assert done.returncode == 1
    assert "data.manifest is not set" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_imagenet_for_a_from_scratch_backbone_is_a_one_line_error(tmp_path: Path,
                                                                   toy: Path) -> None:
    # The offline-download path itself is tested in models/weights_test.py (no network here
    # either way: tinycnn has no ImageNet weights, which must be said as plainly).
    done = run("train", "--out", str(tmp_path / "run"), "--set", f"data.manifest={toy}",
               *TINY, "--set", "model.weights=imagenet")
    assert done.returncode == 1
    assert "no ImageNet weights" in done.stderr and "model.weights: none" in done.stderr


def test_train_on_a_tracking_server_nobody_answers_at_is_one_line_at_once(
        tmp_path, capsys, closed_port, monkeypatch) -> None:
    """MLflow would retry it silently for about 250 s: train stops at once, naming it."""
    pytest.importorskip("mlflow")
    from mlflow import tracking

    from mammohybrid.cli import main
    monkeypatch.setattr(tracking, "MlflowClient", lambda **kwargs: pytest.fail("client made"))
    uri = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", "cpu-quick", "--out", str(tmp_path / "run"), "--mlflow", uri])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: --mlflow {uri}: cannot reach the tracking server "
                            "(connection refused)")
    assert not (tmp_path / "run").exists()
