"""The layers of docs/architecture.md, enforced: no module imports from a layer above its own.

Every import is read from the source (``ast``), lazy imports inside functions included, so an
upward import cannot hide behind a function-level ``import``. Modules beside each other in one
layer (``inference`` and ``evaluation``; ``workflows`` and ``serve``) do not import each other;
a package imports itself freely.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "mammohybrid"

# Lowest first. A name is a top-level module or sub-package of mammohybrid.
LAYERS: list[set[str]] = [
    {"__init__", "config", "errors", "fileio", "imaging", "progress", "run_dir", "workers",
     "decision", "tensorflow_env", "model_card"},
    {"data"},
    {"preprocess"},
    {"models"},
    {"training"},
    {"inference", "evaluation"},
    {"workflows", "serve"},
    {"cli"},
]
CORE = LAYERS[0]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _top_level(path: Path) -> str:
    """The top-level module or sub-package a source file belongs to."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level name) of every mammohybrid module the file imports."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    return _imports_in(path.read_text(encoding="utf-8"), package)


def _imports_in(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, top-level name) of every mammohybrid module ``source`` (a module of ``package``)
    imports."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the file's package
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, *filter(None, [base])])
            # `from mammohybrid import x` imports the module x.
            modules = ([f"{base}.{alias.name}" for alias in node.names]
                       if base == "mammohybrid" else [base])
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "mammohybrid" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def _library_files() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if not path.name.endswith("_test.py") and path.name != "conftest.py")


def test_every_module_has_a_layer() -> None:
    names = {_top_level(path) for path in _library_files()}
    assert names <= set(RANK), f"place these in LAYERS (and docs/architecture.md): " \
                               f"{sorted(names - set(RANK))}"


@pytest.mark.parametrize("path", _library_files(),
                         ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_no_module_imports_from_a_layer_above_or_beside_it(path: Path) -> None:
    own = _top_level(path)
    wrong = [f"line {line}: {own} imports {name}" for line, name in _imported(path)
             if name != own and name in RANK and own in RANK
             and not (RANK[name] < RANK[own] or (own in CORE and name in CORE))]
    assert not wrong, "; ".join(wrong)


def test_the_check_sees_lazy_and_relative_imports() -> None:
    source = ("def f():\n    from mammohybrid.evaluation import metrics\n"
              "from ..workflows import cv\nfrom mammohybrid import cli\nimport numpy\n")
    found = sorted(_imports_in(source, ("mammohybrid", "training")))
    assert [name for _, name in found] == ["evaluation", "workflows", "cli"]
