"""The run-directory helpers: finished or not, config and threshold read back."""

from __future__ import annotations

import json

import pytest

from mammohybrid.config import load_config, save_config
from mammohybrid.decision import ThresholdChoice
from mammohybrid.errors import MammohybridError, RunNotFinishedError
from mammohybrid.run_dir import RunDir


def test_unfinished_and_finished_runs(tmp_path) -> None:
    run = RunDir.at(tmp_path)
    with pytest.raises(RunNotFinishedError, match=r"no config\.yaml"):
        run.load_config()
    with pytest.raises(RunNotFinishedError, match="has not finished"):
        run.require_finished()
    config = load_config("cpu-quick")
    save_config(config, run.config)
    run.model.write_bytes(b"model")
    assert not run.is_finished()  # DONE is written last
    run.done.write_text("")
    run.require_finished()
    assert run.load_config() == config


def test_threshold_round_trip_and_malformed_file(tmp_path) -> None:
    run = RunDir.at(tmp_path)
    assert run.load_threshold() is None
    choice = ThresholdChoice(0.42, "youden", "val", "max J")
    run.threshold.write_text(json.dumps(choice.to_dict()))
    assert run.load_threshold() == choice
    run.threshold.write_text('{"value": 0.4}')
    with pytest.raises(MammohybridError, match="not a valid threshold file"):
        run.load_threshold()
