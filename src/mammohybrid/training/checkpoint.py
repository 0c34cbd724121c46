"""Per-epoch backups that let a run killed at any moment (``kill -9`` included) resume and end
with exactly the weights and metrics of an uninterrupted run.

After every epoch, ``backup/`` receives, in this order:

1. ``state-eNNNN.npz``: every model variable (weights, BatchNorm statistics *and* the states
   of the dropout/augmentation random generators) and every optimizer variable (step count,
   momentum);
2. ``best-eNNNN.npz`` when validation AUC improved: the model weights of the best epoch;
3. ``state.json``: the epoch count, the whole history, best epoch, timings, and the names of
   the two files above. Written atomically: it is the commit point.

Files that ``state.json`` no longer names are deleted afterwards. A kill before step 3 leaves
the previous epoch's state intact; ``history.csv`` is rewritten from ``state.json`` on resume,
so a row written for an epoch whose backup never committed disappears. With per-epoch shuffle
seeds (``data.epoch_seed``) and deterministic ops, the resumed epochs replay exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mammohybrid.errors import MammohybridError
from mammohybrid.fileio import atomic_path, atomic_write_json

STATE_FILE = "state.json"


@dataclass
class TrainingState:
    """What a run knows after each finished epoch (everything except the arrays)."""

    epochs_done: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None  # 1-based, as in history.csv
    best_val_auc: float | None = None
    best_val_loss: float | None = None
    state_file: str | None = None
    best_file: str | None = None
    resumed_at: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, logs: dict[str, float], seconds: float) -> bool:
        """Add one finished epoch; True when it is the best so far: the highest validation AUC,
        ties broken by the lower validation loss (small validation splits often reach AUC 1.0
        in several epochs, and the first of them is rarely the best model)."""
        self.epochs_done += 1
        self.history.append({"epoch": self.epochs_done, **logs})
        self.epoch_seconds.append(seconds)
        auc, loss = logs.get("val_auc"), logs.get("val_loss", np.inf)
        if auc is not None and np.isfinite(auc) and (
                self.best_val_auc is None or auc > self.best_val_auc
                or (auc == self.best_val_auc and loss < _or_inf(self.best_val_loss))):
            self.best_epoch = self.epochs_done
            self.best_val_auc, self.best_val_loss = float(auc), float(loss)
            return True
        # No usable AUC yet (e.g. a one-class validation split): the latest epoch stands in.
        if self.best_epoch is None:
            self.best_epoch = self.epochs_done
            return True
        return False


def _or_inf(value: float | None) -> float:
    return np.inf if value is None else value


class Backup:
    """The ``backup/`` folder of a run directory."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def load_state(self) -> TrainingState | None:
        """The last committed state, or None when no epoch has finished yet."""
        path = self.folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            return TrainingState(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as error:
            raise MammohybridError(f"{path}: unreadable backup state ({error})") from None

    def load_arrays(self, name: str) -> list[np.ndarray]:
        with np.load(self.folder / name, allow_pickle=False) as data:
            return [data[f"a{i:05d}"] for i in range(len(data.files))]

    def save(self, state: TrainingState, variables: list[np.ndarray],
             best_weights: list[np.ndarray] | None) -> None:
        """Commit one epoch: arrays first, then ``state.json``, then clean up."""
        tag = f"e{state.epochs_done:04d}"
        state.state_file = self._write_arrays(f"state-{tag}.npz", variables)
        if best_weights is not None:
            state.best_file = self._write_arrays(f"best-{tag}.npz", best_weights)
        atomic_write_json(self.folder / STATE_FILE, asdict(state))
        keep = {STATE_FILE, state.state_file, state.best_file}
        for path in self.folder.glob("*.npz"):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _write_arrays(self, name: str, arrays: list[np.ndarray]) -> str:
        with atomic_path(self.folder / name) as tmp:
            # Any: numpy's stubs type savez's keywords as its allow_pickle flag.
            named: dict[str, Any] = {f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)}
            np.savez(tmp, **named)
        return name


def snapshot(variables: list[Any]) -> list[np.ndarray]:
    """The values of Keras variables as NumPy arrays."""
    return [np.array(v.numpy()) for v in variables]


def restore(variables: list[Any], arrays: list[np.ndarray], what: str) -> None:
    """Assign saved arrays back to variables, checking that they belong to the same model."""
    if len(variables) != len(arrays) or any(
            tuple(v.shape) != a.shape for v, a in zip(variables, arrays, strict=True)):
        raise MammohybridError(f"the backup's {what} does not match this model "
                               f"({len(arrays)} arrays for {len(variables)} variables); "
                               "was the run started with another model section?")
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)
