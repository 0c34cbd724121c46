"""Loading a finished run directory for prediction: the one way evaluation
(:class:`~mammohybrid.evaluation.evaluate.RunPredictor`) and inference
(:meth:`~mammohybrid.inference.Predictor.from_run`) do it.

Training writes the run; here it is read back: the configuration (what the images went
through), the Keras model (safe mode: nothing in the file is unpickled) and, when asked, the
decision threshold chosen on validation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mammohybrid.config import Config
from mammohybrid.decision import ThresholdChoice, select_threshold
from mammohybrid.run_dir import RunDir

if TYPE_CHECKING:
    import keras


@dataclass
class FinishedRun:
    """A finished run's directory, configuration and model, loaded once."""

    run: RunDir
    config: Config
    model: keras.Model

    def scoring_model(self) -> keras.Model:
        """The model whose output is the probability: the plain model, or with ``model.tta``
        its pooled features averaged over the dihedral views."""
        from mammohybrid.models import with_test_time_augmentation

        return with_test_time_augmentation(self.model, self.config.model.tta)

    def threshold(self) -> ThresholdChoice:
        """The threshold chosen on validation (``threshold.json``, which a run always writes);
        without it, the configuration's fixed threshold."""
        return self.run.load_threshold() or select_threshold(np.empty(0), np.empty(0),
                                                             self.config.evaluate)


def load_finished_run(run_dir: str | os.PathLike[str] | RunDir,
                      config: Config | None = None) -> FinishedRun:
    """Load the run at ``run_dir`` with ``config`` (default: the run's own ``config.yaml``).

    Raises :class:`~mammohybrid.errors.RunNotFinishedError` for a folder that is no run, or a
    run whose training has not finished."""
    from mammohybrid.models import load_model

    run = run_dir if isinstance(run_dir, RunDir) else RunDir.at(run_dir)
    if config is None:
        config = run.load_config()
    run.require_finished()
    return FinishedRun(run, config, load_model(run.model))
