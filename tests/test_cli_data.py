"""`mammohybrid synth` and `mammohybrid ingest ...` from the command line, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mammohybrid.data.manifest import check_no_patient_leak, read_manifest

CLI = [sys.executable, "-c", "from mammohybrid.cli import main; main()"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "synthetic"
    done = run("synth", str(out), "--patients", "8", "--seed", "1", "--preview",
               str(out.parent / "preview.png"))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (out.parent / "preview.png").is_file()
    return out


@pytest.mark.slow
def test_synth_then_ingest_cbis_ddsm_end_to_end(synth_dir):
    manifest_path = synth_dir / "manifest.csv"
    done = run("ingest", "cbis-ddsm", str(synth_dir), "--out", str(manifest_path),
               "--val-fraction", "0.25", "--seed", "3", "--set", "data.n_folds=3")
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(manifest_path)
    check_no_patient_leak(manifest)
    rows = sum(len(pd.read_csv(p)) for p in synth_dir.glob("mass_case_description_*.csv"))
    assert len(manifest) == rows
    assert set(manifest["split"]) == {"train", "val", "test"}
    assert manifest["patient_id"].str.fullmatch(r"P_\d{5}").all()
    assert set(manifest["fold"]) <= {-1, 0, 1, 2}
    assert all(Path(p).is_file() for p in manifest["image_path"])
    # the official test split is the test split
    test_csv = pd.read_csv(synth_dir / "mass_case_description_test_set.csv")
    assert set(manifest.loc[manifest["split"] == "test", "patient_id"]) == \
        set(test_csv["patient_id"])
    config = yaml.safe_load((synth_dir / "manifest.config.yaml").read_text())
    assert config["data"]["val_fraction"] == 0.25 and config["data"]["split_seed"] == 3
    assert config["data"]["n_folds"] == 3
    assert pd.read_csv(synth_dir / "manifest.errors.csv").empty
    summary = pd.read_csv(synth_dir / "manifest.summary.csv")
    assert summary.loc[summary["class"] == "all", "images"].sum() == rows
    # the printed summary: the table and the BENIGN_WITHOUT_CALLBACK statement
    assert "images, lesions and patients per split and class" in done.stdout
    assert "BENIGN_WITHOUT_CALLBACK mapped to benign" in done.stdout


@pytest.mark.slow
def test_ingest_errors_are_one_line(tmp_path):
    done = run("ingest", "cbis-ddsm", str(tmp_path / "nowhere"), "--out",
               str(tmp_path / "m.csv"))
    assert done.returncode == 1
    assert "error:" in done.stderr and "nowhere" in done.stderr
    assert "Traceback" not in done.stderr
    done = run("ingest", "mias", str(tmp_path), "--out", str(tmp_path / "m.csv"))
    assert done.returncode == 1 and "Info.txt not found" in done.stderr


@pytest.mark.parametrize("command", [["ingest"], ["ingest", "cbis-ddsm"],
                                     ["ingest", "cbis-ddsm-jpeg"], ["ingest", "mias"],
                                     ["ingest", "folder"], ["synth"]])
def test_help(command):
    from typer.testing import CliRunner

    from mammohybrid.cli import app

    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output
    if command[-1] == "cbis-ddsm":
        for option in ("--out", "--csv-dir", "--abnormality", "--val-fraction", "--seed",
                       "--config", "--set"):
            assert option in result.output
    if command[-1] == "mias":
        assert "--task" in result.output


@pytest.mark.parametrize(("command", "path"), [
    ("cbis-ddsm-jpeg", "ROOT/jpeg/<SeriesInstanceUID>/"),
    ("folder", "ROOT/<split>/<class>/*"),
])
def test_help_prints_placeholders_in_paths(command: str, path: str) -> None:
    # The help is rendered as markdown: a bare <name> would be taken for an HTML tag and dropped.
    from typer.testing import CliRunner

    from mammohybrid.cli import app

    result = CliRunner().invoke(app, ["ingest", command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert path in result.output
