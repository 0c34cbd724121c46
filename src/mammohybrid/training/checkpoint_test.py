"""Tests of the per-epoch backup."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from mammohybrid.errors import MammohybridError
from mammohybrid.training.checkpoint import Backup, TrainingState, restore, snapshot


def test_record_tracks_the_best_validation_auc() -> None:
    state = TrainingState()
    assert state.record({"loss": 1.0, "val_auc": 0.6}, 2.0)
    assert not state.record({"loss": 0.9, "val_auc": 0.6}, 2.0)  # a tie keeps the first
    assert state.record({"loss": 0.8, "val_auc": 0.7}, 2.0)
    assert not state.record({"loss": 0.7, "val_auc": float("nan")}, 2.0)
    assert (state.epochs_done, state.best_epoch, state.best_val_auc) == (4, 3, 0.7)
    assert [row["epoch"] for row in state.history] == [1, 2, 3, 4]


def test_record_breaks_auc_ties_by_validation_loss() -> None:
    state = TrainingState()
    assert state.record({"val_auc": 1.0, "val_loss": 0.5}, 1.0)
    assert not state.record({"val_auc": 1.0, "val_loss": 0.7}, 1.0)  # same AUC, worse loss
    assert state.record({"val_auc": 1.0, "val_loss": 0.2}, 1.0)  # same AUC, better loss
    assert not state.record({"val_auc": 0.9, "val_loss": 0.01}, 1.0)  # AUC comes first
    assert (state.best_epoch, state.best_val_auc, state.best_val_loss) == (3, 1.0, 0.2)


def test_a_zero_validation_loss_is_not_beaten_by_a_larger_one() -> None:
    state = TrainingState()
    assert state.record({"val_auc": 1.0, "val_loss": 0.0}, 1.0)
    assert not state.record({"val_auc": 1.0, "val_loss": 0.3}, 1.0)
    assert (state.best_epoch, state.best_val_loss) == (1, 0.0)


def test_record_without_auc_keeps_a_best_epoch() -> None:
    state = TrainingState()
    assert state.record({"loss": 1.0, "val_auc": float("nan")}, 1.0)
    assert state.best_epoch == 1 and state.best_val_auc is None
    assert state.record({"loss": 1.0, "val_auc": 0.5}, 1.0)
    assert state.best_epoch == 2


def test_backup_commits_and_cleans_up(tmp_path) -> None:
    backup = Backup(tmp_path)
    assert backup.load_state() is None
    state = TrainingState()
    arrays = [np.arange(3, dtype=np.float32), np.array([7], dtype=np.uint32)]
    state.record({"val_auc": 0.6}, 1.0)
    backup.save(state, arrays, [arrays[0]])
    state.record({"val_auc": 0.5}, 1.0)
    backup.save(state, [a + 1 for a in arrays], None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-e0001.npz", "state-e0002.npz", "state.json"]
    loaded = backup.load_state()
    assert loaded is not None and loaded.state_file is not None
    assert loaded.epochs_done == 2 and loaded.best_file == "best-e0001.npz"
    restored = backup.load_arrays(loaded.state_file)
    np.testing.assert_array_equal(restored[0], arrays[0] + 1)
    assert restored[1].dtype == np.uint32
    assert json.loads((tmp_path / "state.json").read_text())["history"][1]["val_auc"] == 0.5


def test_uncommitted_arrays_are_ignored(tmp_path) -> None:
    backup = Backup(tmp_path)
    state = TrainingState()
    state.record({"val_auc": 0.6}, 1.0)
    backup.save(state, [np.zeros(2)], [np.zeros(2)])
    (tmp_path / "state-e0002.npz").write_bytes(b"half written")  # killed before the commit
    loaded = backup.load_state()
    assert loaded is not None and loaded.state_file == "state-e0001.npz"


def test_snapshot_and_restore_variables() -> None:
    variables = [keras.Variable(np.zeros((2, 2), "float32")), keras.Variable(np.ones(3, "int32"))]
    saved = snapshot(variables)
    variables[0].assign(np.full((2, 2), 5.0, "float32"))
    restore(variables, saved, "model state")
    np.testing.assert_array_equal(variables[0].numpy(), np.zeros((2, 2)))
    with pytest.raises(MammohybridError, match="does not match this model"):
        restore(variables, saved[:1], "model state")
