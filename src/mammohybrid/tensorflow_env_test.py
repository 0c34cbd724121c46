"""Tests of the environment TensorFlow starts with."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from mammohybrid.tensorflow_env import (
    LOG_LEVEL_VARIABLE,
    ONEDNN_VARIABLE,
    configure_tensorflow,
    tensorflow_environment,
)


def test_onednn_on_and_quiet_by_default(monkeypatch) -> None:
    monkeypatch.delenv(ONEDNN_VARIABLE, raising=False)
    monkeypatch.delenv(LOG_LEVEL_VARIABLE, raising=False)
    assert tensorflow_environment(quiet=True) == {ONEDNN_VARIABLE: "1", LOG_LEVEL_VARIABLE: "2"}
    assert tensorflow_environment(quiet=False) == {ONEDNN_VARIABLE: "1"}


def test_what_the_user_set_is_kept(monkeypatch) -> None:
    monkeypatch.setenv(ONEDNN_VARIABLE, "0")
    monkeypatch.setenv(LOG_LEVEL_VARIABLE, "0")
    configure_tensorflow(quiet=True)
    assert os.environ[ONEDNN_VARIABLE] == "0" and os.environ[LOG_LEVEL_VARIABLE] == "0"


def test_configure_sets_the_variables(monkeypatch) -> None:
    monkeypatch.delenv(ONEDNN_VARIABLE, raising=False)
    monkeypatch.delenv(LOG_LEVEL_VARIABLE, raising=False)
    configure_tensorflow(quiet=False)
    assert os.environ[ONEDNN_VARIABLE] == "1" and LOG_LEVEL_VARIABLE not in os.environ


REPORT_KERNELS = ("from mammohybrid.cli.app import main; "
                  "main(['devices', '--json'])")


@pytest.mark.slow
@pytest.mark.skipif(platform.machine().lower() not in {"x86_64", "amd64"},
                    reason="TensorFlow's oneDNN kernels are checked on x86 builds")
@pytest.mark.parametrize(("user_setting", "kernels"), [(None, "onednn"), ("0", "eigen")])
def test_the_command_line_starts_tensorflow_on_the_kernels_asked_for(user_setting,
                                                                      kernels) -> None:
    """TensorFlow itself reports the kernels (on any x86 CPU, AVX-512 or not): the setting is
    made before TensorFlow reads it, and a user's own setting wins."""
    environment = {name: value for name, value in os.environ.items() if name != ONEDNN_VARIABLE}
    if user_setting is not None:
        environment[ONEDNN_VARIABLE] = user_setting
    result = subprocess.run([sys.executable, "-c", REPORT_KERNELS], env=environment,
                            capture_output=True, text=True, timeout=300, check=True)
    assert json.loads(result.stdout)["cpu_kernels"] == kernels
    assert result.stderr == ""  # TensorFlow's start-up lines (oneDNN, CPU features) kept off


def test_an_empty_variable_counts_as_unset(monkeypatch) -> None:
    monkeypatch.setenv(ONEDNN_VARIABLE, "")
    assert tensorflow_environment(quiet=False) == {ONEDNN_VARIABLE: "1"}
