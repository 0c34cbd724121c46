"""Loading a finished run: the run's config or the one given, the model, the stored threshold;
folders that are no finished run refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mammohybrid.config import with_overrides
from mammohybrid.errors import RunNotFinishedError
from mammohybrid.run_dir import RunDir
from mammohybrid.training.finished_run import load_finished_run


def test_a_finished_run_loads_its_config_model_and_threshold(run_dir: Path) -> None:
    finished = load_finished_run(run_dir)
    assert finished.config == RunDir.at(run_dir).load_config()
    assert finished.model.input_shape == (None, 32, 32, 3)
    stored = json.loads((run_dir / "threshold.json").read_text())
    assert finished.threshold().value == stored["value"]
    assert finished.scoring_model() is finished.model  # model.tta none: the model itself


def test_a_given_config_is_the_one_used(run_dir: Path) -> None:
    config = with_overrides(RunDir.at(run_dir).load_config(), ["model.tta=dihedral"])
    finished = load_finished_run(RunDir.at(run_dir), config)
    assert finished.config is config
    assert finished.scoring_model() is not finished.model


def test_without_a_stored_threshold_the_configs_fixed_one_applies(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("threshold.json"))
    finished = load_finished_run(copy)
    assert finished.threshold().value == finished.config.evaluate.fixed_threshold


def test_folders_that_are_no_finished_run_are_refused(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RunNotFinishedError, match=r"no config\.yaml"):
        load_finished_run(tmp_path)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished, ignore=shutil.ignore_patterns("DONE"))
    with pytest.raises(RunNotFinishedError, match="has not finished"):
        load_finished_run(unfinished)
