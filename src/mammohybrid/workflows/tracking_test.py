import builtins
import json

import numpy as np
import pytest

from mammohybrid.config import Config, flatten, save_config, with_overrides
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.tracking import Tracker, TrackingError, open_tracker

pytest.importorskip("mlflow")


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_logs_params_metrics_artifacts_to_a_file_store(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    run = RunDir.at(tmp_path / "run")
    run.root.mkdir()
    run.history.write_text("epoch,loss\n0,0.5\n")
    run.threshold.write_text(json.dumps({"value": 0.5}))
    save_config(with_overrides(Config(), ["model.pooling=max"]), run.config)
    run.info.write_text(json.dumps({"best_epoch": 3, "seed": 42, "runtime": {"replicas": 1}}))
    with Tracker(uri, run_name="unit", tags={"purpose": "test"}) as tracker:
        tracker.log_metrics({"auc": np.float32(0.75), "n": 10, "note": "text", "ci": None},
                            prefix="test_")
        tracker.log_run(run)
    data = _client(uri).get_run(tracker.run_id)
    assert data.info.status == "FINISHED"
    assert data.data.params["model.pooling"] == "max"
    assert data.data.params["evaluate.bootstrap_samples"] == "2000"
    assert len(data.data.params) == len(flatten(Config().model_dump(mode="json")))
    assert data.data.metrics == {"test_auc": pytest.approx(0.75), "test_n": 10.0,
                                 "run.best_epoch": 3.0, "run.seed": 42.0}
    assert data.data.tags["purpose"] == "test" and data.data.tags["mlflow.runName"] == "unit"
    names = {item.path for item in _client(uri).list_artifacts(tracker.run_id)}
    assert names == {"config.yaml", "history.csv", "threshold.json", "run.json"}


def test_keras_callback_logs_every_epoch_and_failure_status(tmp_path):
    import keras

    uri = str(tmp_path / "plain-folder")  # a plain folder is a file store
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    with pytest.raises(RuntimeError), Tracker(uri, run_name="fit") as tracker:
        model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0,
                  callbacks=[tracker.keras_callback()])
        raise RuntimeError("stop")
    client = _client((tmp_path / "plain-folder").as_uri())
    history = client.get_metric_history(tracker.run_id, "val_loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert client.get_run(tracker.run_id).info.status == "FAILED"


def test_nested_runs_and_off_switch(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    with open_tracker(None) as nothing:
        assert nothing is None
    with (open_tracker(uri, "parent") as parent,
          Tracker(uri, run_name="child", parent_run_id=parent.run_id) as child):
        pass
    tags = _client(uri).get_run(child.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.run_id


def test_clear_error_without_mlflow(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(TrackingError, match=r"pip install 'mammohybrid\[mlflow\]'"):
        Tracker(str(tmp_path))


def test_sqlite_store_needs_sqlalchemy(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        with pytest.raises(TrackingError, match="SQLAlchemy"):
            Tracker(uri)
    else:  # the full mlflow package is installed: the SQLite store must work
        with Tracker(uri, run_name="sqlite") as tracker:
            tracker.log_metrics({"auc": 0.5})
        assert _client(uri).get_run(tracker.run_id).data.metrics == {"auc": 0.5}


def test_a_tracking_server_nobody_answers_at_fails_at_once_naming_it(monkeypatch,
                                                                    closed_port):
    """MLflow would retry it for minutes, silently: no client is made for it."""
    from mlflow import tracking

    def never(**kwargs):
        raise AssertionError(f"MlflowClient made with {kwargs}")

    monkeypatch.setattr(tracking, "MlflowClient", never)
    uri = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(TrackingError, match=f"--mlflow {uri}: cannot reach the tracking "
                                            "server \\(connection refused\\)"):
        Tracker(uri)
