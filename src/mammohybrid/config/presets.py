"""The configuration presets shipped as package data in ``mammohybrid/presets``."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

# Other names of shipped presets: the paper's headline row is also its best median-filter row.
PRESET_ALIASES = {"paper-median": "paper"}


def _presets_folder() -> Traversable:
    return resources.files("mammohybrid") / "presets"


def preset_names() -> list[str]:
    """Names of the configuration presets shipped with the package (aliases included)."""
    files = [p.name[: -len(".yaml")] for p in _presets_folder().iterdir()
             if p.name.endswith(".yaml")]
    return sorted(files + list(PRESET_ALIASES))


def preset_file(name: str) -> Traversable:
    """The shipped YAML file of preset ``name`` (an alias resolved), which need not exist."""
    return _presets_folder() / f"{PRESET_ALIASES.get(name, name)}.yaml"
