"""``grid`` and ``cv`` on a local Ray instance (2 CPU workers) give the same rows and metrics as
the serial run, in the same resumable layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mammohybrid.cli import app
from mammohybrid.config import Config, save_config
from mammohybrid.errors import ConfigError
from mammohybrid.run_dir import RunDir
from mammohybrid.workflows.executors import RayResources, SerialExecutor, open_executor

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mammohybrid[ray]')")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]

METRICS = ["val_auc", "val_accuracy", "test_auc", "test_accuracy", "test_sensitivity",
           "test_specificity"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dataset(toy_dataset, tiny_config) -> tuple[Path, Config]:
    """The toy images (24 train, 12 val, 12 test) and the tiny training on them."""
    manifest = toy_dataset({"train": 24, "val": 12, "test": 12})
    return manifest, tiny_config(manifest, "evaluate.bootstrap_samples=100")


def test_grid_on_ray_matches_the_serial_run(local_ray, dataset, tmp_path):
    from mammohybrid.workflows.grid import load_grid, run_grid

    manifest, config = dataset
    save_config(config, tmp_path / "base.yaml")
    grid_file = tmp_path / "grid.yaml"
    grid_file.write_text(yaml.safe_dump({"name": "tiny", "base": "base.yaml",
                                         "manifest": str(manifest),
                                         "axes": {"model.pooling": ["avg", "max"]}}))
    spec = load_grid(grid_file)
    serial = run_grid(spec, tmp_path / "serial", executor=SerialExecutor(), report_best=False)
    with open_executor("ray") as executor:
        assert executor.name == "ray" and (executor.cpus, executor.gpus) == (1, 0)
        on_ray = run_grid(spec, tmp_path / "ray", executor=executor, report_best=False)
    assert ray.is_initialized()  # a Ray this process started before is left running

    rows = {name: pd.read_csv(result.summary_csv) for name, result in
            (("serial", serial), ("ray", on_ray))}
    assert list(rows["ray"]["run"]) == list(rows["serial"]["run"]) == ["avg", "max"]
    assert (rows["ray"]["status"] == "finished").all()
    pd.testing.assert_frame_equal(rows["ray"][METRICS], rows["serial"][METRICS], atol=1e-6)
    assert on_ray.best == serial.best
    for cell in ("avg", "max"):  # the same layout: finished runs and their cached metrics
        run = RunDir.at(tmp_path / "ray" / "runs" / cell)
        assert run.is_finished() and (run.root / "grid_metrics.json").is_file()

    # The command, run again on Ray: every cell is finished, nothing is retrained.
    model_times = {c: (tmp_path / "ray" / "runs" / c / "model.keras").stat().st_mtime_ns
                   for c in ("avg", "max")}
    result = CliRunner().invoke(app, ["grid", str(grid_file), "--out", str(tmp_path / "ray"),
                                      "--executor", "ray", "--task-cpus", "1"])
    assert result.exit_code == 0, result.output
    assert "(done)" in result.output and "| **" in result.output
    assert model_times == {c: (tmp_path / "ray" / "runs" / c / "model.keras").stat().st_mtime_ns
                           for c in ("avg", "max")}


def test_cv_on_ray_matches_the_serial_run(local_ray, dataset, tmp_path):
    from mammohybrid.workflows.cv import run_cv

    manifest, config = dataset
    serial = run_cv(config, tmp_path / "serial", folds=2, manifest=manifest)
    with open_executor("ray") as executor:
        on_ray = run_cv(config, tmp_path / "ray", folds=2, manifest=manifest, executor=executor)
    folds = [pd.read_csv(result.files["folds"]) for result in (serial, on_ray)]
    pd.testing.assert_frame_equal(folds[1], folds[0], atol=1e-6)
    oof = [pd.read_csv(result.files["oof_predictions"]) for result in (serial, on_ray)]
    pd.testing.assert_frame_equal(oof[1], oof[0], atol=1e-6)


def test_ray_refuses_what_the_cluster_cannot_give(local_ray):
    with (pytest.raises(ConfigError, match=r"asks for 1 CPU.* and 1 GPU.*has 2 CPU.* and 0 GPU"),
          open_executor("ray", resources=RayResources(gpus=1))):
        pass


def test_ray_cannot_take_live_callbacks(local_ray, dataset, tmp_path):
    from mammohybrid.workflows.cv import run_cv

    manifest, config = dataset
    with (open_executor("ray") as executor,
          pytest.raises(ConfigError, match="callbacks run in this process only")):
        run_cv(config, tmp_path / "cv", folds=2, manifest=manifest, executor=executor,
               callbacks=[object()])
    assert not (tmp_path / "cv").exists()
