"""Optional experiment tracking with MLflow (``--mlflow URI`` on ``train``, ``grid`` and ``cv``).

MLflow is an optional extra (``pip install 'mammohybrid[mlflow]'``, which installs
``mlflow-skinny``); without it, asking for tracking raises a one-line error saying so. Nothing
else in mammohybrid imports MLflow.

A :class:`Tracker` is one MLflow run, written through ``MlflowClient`` with explicit run ids
(no global "active run"), so grid cells can be nested runs under the grid's run. It logs the
resolved configuration as parameters (dotted keys: ``model.pooling`` = ``avg``), per-epoch
metrics through a Keras callback (:meth:`Tracker.keras_callback`), final metrics, and files.

URIs: ``file:/path/to/mlruns`` (or a plain folder), ``sqlite:///path/to/mlflow.db`` (needs
SQLAlchemy, which ``mlflow-skinny`` does not install), or an ``http(s)://`` tracking server.
MLflow 3 refuses the file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set; asking for a file
URI explicitly is taken as that opt-in.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mammohybrid.config import Config, config_to_dict, flatten, load_config
from mammohybrid.errors import MammohybridError
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.reachable import split_address, unreachable

DEFAULT_EXPERIMENT = "mammohybrid"
# Files of a run directory worth keeping beside the metrics (the model itself is too large).
RUN_DIR_ARTIFACTS = ("config", "history", "curves", "threshold", "info")
_MAX_BATCH = 100  # MLflow accepts at most 100 params per log_batch call


class TrackingError(MammohybridError):
    """MLflow is not installed, or the tracking URI cannot be used."""


def _import_mlflow() -> types.ModuleType:
    try:
        import mlflow
    except ImportError:
        raise TrackingError("--mlflow needs the optional package mlflow-skinny: "
                            "pip install 'mammohybrid[mlflow]'") from None
    return mlflow


def _prepare_uri(uri: str) -> str:
    """Accept plain folders as file stores and check what each scheme needs."""
    if "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    elif uri.startswith("sqlite:"):
        try:
            import sqlalchemy  # noqa: F401
        except ImportError:
            raise TrackingError(f"--mlflow {uri}: an SQLite store needs SQLAlchemy "
                                "(pip install mlflow, or use a file: URI)") from None
    elif uri.startswith(("http://", "https://")):
        # MLflow would retry a server that is not there for minutes, silently.
        where = split_address(uri)
        problem = unreachable(*where) if where else "no host in the URI"
        if problem is not None:
            raise TrackingError(f"--mlflow {uri}: cannot reach the tracking server ({problem}); "
                                "is `mlflow server` running there?")
    return uri


class Tracker:
    """One MLflow run. Use as a context manager: the run ends FINISHED, or FAILED/KILLED when
    the block raises."""

    def __init__(self, uri: str, run_name: str | None = None,
                 experiment: str = DEFAULT_EXPERIMENT, parent_run_id: str | None = None,
                 tags: Mapping[str, str] | None = None):
        mlflow = _import_mlflow()
        from mlflow.tracking import MlflowClient

        self.uri = _prepare_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (found.experiment_id if found is not None
                         else self.client.create_experiment(experiment))
        all_tags = {"mammohybrid.version": _version(), **(tags or {})}
        if parent_run_id is not None:  # a nested run (a grid cell, a fold)
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        self.run_id: str = run.info.run_id
        self._entities = mlflow.entities

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.end("FINISHED")
        else:
            self.end("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [self._entities.Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), _MAX_BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + _MAX_BATCH])

    def log_config(self, config: Config) -> None:
        """Every configuration value as a parameter with its dotted key."""
        self.log_params({name: str(value)
                         for name, value in flatten(config_to_dict(config)).items()})

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None,
                    prefix: str = "") -> None:
        """Numeric entries of ``metrics`` (others, and None, are skipped)."""
        for key, value in metrics.items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                self.client.log_metric(self.run_id, f"{prefix}{key}", float(value),
                                       step=step or 0)

    def log_artifact(self, path: str | os.PathLike[str], folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder)
        elif path.is_file():
            self.client.log_artifact(self.run_id, str(path), folder)

    def log_run(self, run: RunDir) -> None:
        """A run directory: its configuration as parameters, the numbers of ``run.json`` (best
        epoch, best validation AUC, ...) as metrics, and its small files (config, history,
        curves, threshold, run info; not the model)."""
        if run.config.is_file():
            self.log_config(load_config(run.config))
        if run.info.is_file():
            self.log_metrics(json.loads(run.info.read_text(encoding="utf-8")), prefix="run.")
        for name in RUN_DIR_ARTIFACTS:
            self.log_artifact(getattr(run, name))

    def keras_callback(self) -> Any:
        """A Keras callback logging every epoch's ``logs`` (loss, accuracy, val_auc, ...) with
        the epoch as the step."""
        import keras

        tracker = self

        class MlflowEpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                tracker.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch)

        return MlflowEpochLogger()


def track_training(tracker: Tracker | None, config: Config, out_dir: str | os.PathLike[str], *,
                   resume: bool = False, callbacks: Sequence[Any] = ()) -> RunDir:
    """:func:`mammohybrid.training.train` with per-epoch metrics logged to ``tracker`` (when
    given) and the finished run directory logged with :meth:`Tracker.log_run`."""
    from mammohybrid.training import train

    extra = [tracker.keras_callback()] if tracker is not None else []
    run = train(config, out_dir, resume=resume, callbacks=[*callbacks, *extra])
    if tracker is not None:
        tracker.log_run(run)
    return run


def open_tracker(uri: str | None, run_name: str | None = None,
                 **kwargs: Any) -> contextlib.AbstractContextManager[Tracker | None]:
    """``with open_tracker(uri, name) as tracker:`` -- a :class:`Tracker` when ``uri`` is given,
    else None (tracking off), so callers need no branch around the ``with``."""
    return Tracker(uri, run_name=run_name, **kwargs) if uri else contextlib.nullcontext()


def _version() -> str:
    from mammohybrid import __version__

    return __version__
