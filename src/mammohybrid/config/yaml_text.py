"""Strict YAML reading for configs, overrides and run files: small UTF-8 files only, no YAML 1.1
surprises (octal and sexagesimal integers, aliases), every problem a :class:`ConfigError` that
names its source."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mammohybrid.errors import ConfigError

# A config is a few kilobytes; anything much larger is not one.
MAX_CONFIG_BYTES = 1 << 20


def read_text_file(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A small UTF-8 text file (config, run file); :class:`ConfigError` naming it otherwise."""
    try:
        if path.stat().st_size > max_bytes:
            raise ConfigError(f"{path}: larger than {max_bytes} bytes; not a config file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: "
                          f"{error.object[error.start:error.start + 1]!r})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None


class _StrictYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the YAML 1.1 readings that surprise: integers are decimal
    only (``0x1F``, ``0o17``, ``017``, ``1_000`` and ``1:30`` stay text, which an integer key
    then refuses), and aliases (``*name``, the way to a billion-laughs bomb) are refused."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # PyYAML's API
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted",
                                              mark)
        return super().compose_node(parent, index)


_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_StrictYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# No leading zero: PyYAML would read 0229 as octal (and fail on its 9).
_StrictYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:int",
                                        re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                                        list("-+0123456789"))
# YAML 1.2 floats (1e-3 included, which YAML 1.1 leaves as text); .inf and .nan are read, and
# then refused by every numeric key.
_StrictYAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def load_yaml(text: str, label: str) -> Any:  # any YAML value
    """Parse YAML with :class:`_StrictYAMLLoader`; :class:`ConfigError` naming ``label``."""
    try:
        return yaml.load(text, Loader=_StrictYAMLLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        raise ConfigError(f"{label} is not valid YAML: {_yaml_problem(error)}") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply to be a config") from None
    except (ValueError, OverflowError) as error:  # a constructor's, e.g. the date 2001-02-30
        raise ConfigError(f"{label} is not valid YAML: {error}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error)
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def parse_yaml_mapping(text: str, label: str) -> dict[str, Any]:
    """YAML text that must hold a mapping (empty text: an empty one); ``label`` names it in
    errors."""
    data = load_yaml(text, label)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, found "
                          f"{type(data).__name__}")
    return data
