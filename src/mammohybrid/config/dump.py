"""A config written out: as a plain dict, as the dotted ``key=value`` names overrides use, as
YAML text, and as the file every command saves beside its outputs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mammohybrid.config.schema import Config
from mammohybrid.fileio import atomic_write_text


def config_to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": value}``, the dotted names ``key=value`` overrides use
    (``prefix``: a first name part for every key)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) and return its path."""
    path = Path(path)
    atomic_write_text(path, config_to_yaml(config))
    return path
