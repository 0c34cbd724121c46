"""Tests of the default worker count (the crash-safe pool is tested through its users)."""

from __future__ import annotations

import os

from mammohybrid import workers
from mammohybrid.workers import usable_cores


def test_usable_cores_follow_the_affinity_mask(monkeypatch) -> None:
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 16)
    assert usable_cores() == 3


def test_usable_cores_without_affinity_masks_are_all_cores(monkeypatch) -> None:
    monkeypatch.delattr(workers.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 16)
    assert usable_cores() == 16
    monkeypatch.setattr(workers.os, "cpu_count", lambda: None)
    assert usable_cores() == 1


def test_predict_and_preprocess_default_to_every_usable_core() -> None:
    import typer.main
    from typer.core import TyperGroup

    from mammohybrid.cli import app
    from mammohybrid.preprocess.cache import default_workers

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    commands = {command.name: command for command in group.commands.values()}
    for name in ("predict", "preprocess"):
        (option,) = [param for param in commands[name].params if param.name == "workers"]
        assert option.default == expected, name
    assert default_workers() == expected
