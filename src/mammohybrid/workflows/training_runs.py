"""The trainings of the grid and of cross-validation: each run trained, or resumed where it
exists, with its epochs and the finished run logged to an MLflow tracker when one is given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mammohybrid.config import Config
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.tracking import Tracker, track_training


def ensure_trained(tracker: Tracker | None, config: Config, run: RunDir,
                   callbacks: Sequence[Any] = ()) -> RunDir:
    """Train ``run``, resuming it when it exists, as the grid and cross-validation do for each
    of their runs. ``train``'s resume rules apply: an interrupted run continues from its last
    epoch, a finished one with all its epochs is only logged, one given more epochs trains
    them, and one started with another configuration is refused (never reported as if it had
    been trained with this one)."""
    return track_training(tracker, config, run.root, resume=run.root.exists(),
                          callbacks=callbacks)
