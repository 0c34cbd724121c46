"""Building a :class:`Config`: defaults <- a YAML file or a shipped preset <- ``key=value``
overrides, validated at every step with the offending key named in the :class:`ConfigError`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mammohybrid.config.dump import config_to_dict
from mammohybrid.config.presets import preset_file, preset_names
from mammohybrid.config.schema import Config
from mammohybrid.config.yaml_text import load_yaml, parse_yaml_mapping, read_text_file
from mammohybrid.errors import ConfigError


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return f"invalid configuration ({source}): " + "; ".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a nested dict into a :class:`Config`."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration ({source}): expected a mapping at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None
    except RecursionError:
        raise ConfigError(f"invalid configuration ({source}): nested too deeply") from None


def _read_yaml(source: str | Path) -> tuple[dict[str, Any], str]:
    """Read a YAML mapping from a file path or a preset name."""
    path = Path(source)
    if path.is_file():
        text, label = read_text_file(path), str(path)
    else:
        preset = preset_file(str(source))
        if not preset.is_file():
            raise ConfigError(
                f"config '{source}' is neither a file nor a preset "
                f"(presets: {', '.join(preset_names())})")
        text, label = preset.read_text(encoding="utf-8"), f"preset {source}"
    return parse_yaml_mapping(text, label), label


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, booleans, lists, null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    try:
        value = load_yaml(raw, f"override '{text}'") if raw.strip() else None
    except ConfigError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key=value`` overrides applied (nested keys by dots)."""
    merged = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = merged
        for part in keys[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = child
        node[keys[-1]] = value
    return merged


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file or preset ``source`` <- ``overrides`` (``key=value`` strings)."""
    data, label = _read_yaml(source) if source is not None else ({}, "defaults")
    if overrides:
        data = apply_overrides(data, overrides)
        label += " with overrides " + ", ".join(overrides)
    return config_from_dict(data, label)


def with_overrides(config: Config, overrides: list[str]) -> Config:
    """A new config: ``config`` with ``key=value`` overrides applied and validated."""
    return config_from_dict(apply_overrides(config_to_dict(config), overrides), "overrides")
