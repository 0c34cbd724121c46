"""The layout of a run directory: what ``train`` writes and ``evaluate``/``predict`` read.

A run directory is a complete, self-describing pipeline: the trained model plus the exact
configuration (pre-processing included) and the decision threshold chosen on validation.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mammohybrid.errors import MammohybridError, RunNotFinishedError

if TYPE_CHECKING:
    from mammohybrid.config import Config
    from mammohybrid.decision import ThresholdChoice


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(path))

    @property
    def config(self) -> Path:
        """The resolved :class:`~mammohybrid.config.Config` (YAML)."""
        return self.root / "config.yaml"

    @property
    def model(self) -> Path:
        """The best model by validation AUC: the complete image -> probability Keras model."""
        return self.root / "model.keras"

    @property
    def onnx_model(self) -> Path:
        """The inference graph exported for ONNX Runtime (``mammohybrid export``), with the
        run's configuration and threshold in its metadata."""
        return self.root / "model.onnx"

    @property
    def saved_model(self) -> Path:
        """The inference graph exported as a TensorFlow SavedModel (a folder)."""
        return self.root / "saved_model"

    @property
    def model_card(self) -> Path:
        """What the model is, what it was trained and measured on, and what it is for
        (Markdown)."""
        return self.root / "model_card.md"

    @property
    def last_model(self) -> Path:
        """The model after the last finished epoch."""
        return self.root / "last.keras"

    @property
    def backup(self) -> Path:
        """Per-epoch training state for ``--resume`` (weights, optimizer, epoch, RNG)."""
        return self.root / "backup"

    @property
    def history(self) -> Path:
        """Per-epoch loss, accuracy and AUC, train and val (CSV)."""
        return self.root / "history.csv"

    @property
    def curves(self) -> Path:
        """Training curves like the paper's Figs. 11-13 (PNG); not written for a logistic head,
        which is fitted once, not in epochs."""
        return self.root / "training_curves.png"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def threshold(self) -> Path:
        """The decision threshold and how it was chosen on validation (JSON)."""
        return self.root / "threshold.json"

    @property
    def info(self) -> Path:
        """Package version, seed, timings, best epoch, manifest used (JSON)."""
        return self.root / "run.json"

    @property
    def done(self) -> Path:
        """Written last: its presence means the run finished."""
        return self.root / "DONE"

    def is_finished(self) -> bool:
        return self.done.is_file() and self.model.is_file()

    def require_finished(self) -> None:
        """Raise :class:`RunNotFinishedError` unless training has finished."""
        if not self.is_finished():
            raise RunNotFinishedError(f"{self.root}: the run has not finished (no DONE or "
                                      "model.keras); finish or resume training first")

    def load_config(self) -> Config:
        """The run's resolved configuration (pre-processing included)."""
        from mammohybrid.config import load_config

        if not self.config.is_file():
            raise RunNotFinishedError(f"{self.root}: not a run directory (no config.yaml)")
        return load_config(self.config)

    def load_threshold(self) -> ThresholdChoice | None:
        """The threshold chosen on validation when training ended (None if not written).

        Strict (see :func:`parse_threshold`); anything else is a one-line
        :class:`MammohybridError` naming the file and the key."""
        from mammohybrid.config import read_text_file

        if not self.threshold.is_file():
            return None
        return parse_threshold(read_text_file(self.threshold), str(self.threshold),
                               "; evaluate the run again to rewrite it")


def parse_threshold(text: str, where: str, advice: str = "") -> ThresholdChoice:
    """A threshold written as ``threshold.json`` is: a JSON object whose ``value`` is a finite
    number in [0, 1] (not a boolean, not NaN) and whose ``method`` and ``split`` are text.
    Anything else is a one-line :class:`MammohybridError` naming ``where`` and the key, ending
    in ``advice``."""
    from mammohybrid.decision import ThresholdChoice

    where = f"{where}: not a valid threshold file"
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise MammohybridError(f"{where} ({type(error).__name__}: {error}){advice}") from None
    if not isinstance(data, dict):
        raise MammohybridError(f"{where} (expected a JSON object, found "
                               f"{type(data).__name__}){advice}")
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 <= value <= 1:
        raise MammohybridError(f"{where} (key 'value': {value!r:.40} is not a number in "
                               f"[0, 1]){advice}")
    text_keys = {key: data.get(key, "") for key in ("method", "split", "detail")}
    wrong = [key for key, item in text_keys.items() if not isinstance(item, str)
             or (key != "detail" and not item)]
    if wrong:
        raise MammohybridError(f"{where} (key '{wrong[0]}' must be text){advice}")
    return ThresholdChoice(value=float(value), method=text_keys["method"],
                           split=text_keys["split"], detail=text_keys["detail"])


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")
