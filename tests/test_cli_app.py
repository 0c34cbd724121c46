"""The command-line shell: help everywhere, errors as one line, --debug for the traceback,
config display with overrides."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app

runner = CliRunner()
COMMANDS = ["demo", "synth", "preprocess", "summary", "train", "evaluate", "grid", "cv",
            "features", "predict", "config"]


def test_every_command_has_help() -> None:
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for command in [*COMMANDS, "ingest"]:
        assert command in top.output
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, command
        assert "Usage" in result.output
    for source in ("cbis-ddsm", "cbis-ddsm-jpeg", "mias", "folder"):
        assert runner.invoke(app, ["ingest", source, "--help"]).exit_code == 0


def test_config_show_applies_overrides() -> None:
    result = runner.invoke(app, ["config", "show", "-c", "cpu-quick", "-s", "train.epochs=3"])
    assert result.exit_code == 0
    assert "epochs: 3" in result.output and "efficientnetlite0" in result.output


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from mammohybrid.cli import main; main()",
                           *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["config", "show", "-s", "train.epoch=3"], "train.epoch: unknown key"),
    (["preprocess", "/no/such/manifest.csv", "--out", "/tmp/x"], "manifest not found"),
])
def test_errors_are_one_line_and_debug_shows_the_traceback(args, message) -> None:
    result = _run(*args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1
    debug = _run("--debug", *args)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
