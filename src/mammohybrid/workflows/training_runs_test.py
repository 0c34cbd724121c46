import json

import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.training_runs import ensure_trained


@pytest.mark.slow
def test_ensure_trained_follows_the_resume_rules_of_train(tmp_path, toy, tiny_config):
    def config(*extra):
        return tiny_config(toy, "train.epochs=1", *extra)

    run = RunDir.at(tmp_path / "run")
    ensure_trained(None, config(), run)
    model_time = run.model.stat().st_mtime_ns
    ensure_trained(None, config(), run)  # finished: nothing retrained
    assert run.model.stat().st_mtime_ns == model_time
    ensure_trained(None, config("train.epochs=2"), run)  # more epochs: trained, not skipped
    assert json.loads(run.info.read_text())["epochs"] == 2
    with pytest.raises(ConfigError, match="another configuration"):
        ensure_trained(None, config("train.epochs=2", "model.pooling=max"), run)
