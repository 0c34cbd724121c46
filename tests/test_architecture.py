"""The layers of docs/architecture.md, enforced: no module imports from a layer above its own.

Every import is read from the source (``ast``), lazy imports inside functions included, so an
upward import cannot hide behind a function-level ``import``. Modules beside each other in one
layer (``inference`` and ``evaluation``; ``workflows`` and ``serve``) do not import each other;
a package imports itself freely. No module imports itself back through others: the import
graph of the library's modules has no cycle.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
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


def _import_statements(source: str, package: Sequence[str],
                       ) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, names imported from it) of every import statement of ``source``
    (a module of ``package``), those inside functions included; relative imports are resolved
    against ``package``. ``import a.b`` gives (line, "a.b", [])."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[:len(package) - node.level + 1]
                base = ".".join([*anchor, *filter(None, [base])])
            yield node.lineno, base, [alias.name for alias in node.names]


def _imports_in(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, top-level name) of every mammohybrid module ``source`` (a module of ``package``)
    imports."""
    found = []
    for line, base, names in _import_statements(source, package):
        # `from mammohybrid import x` imports the module x.
        modules = [f"{base}.{name}" for name in names] if base == "mammohybrid" else [base]
        for module in modules:
            parts = module.split(".")
            if parts[0] == "mammohybrid" and len(parts) > 1:
                found.append((line, parts[1]))
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


# --------------------------------------------------------------------------- cycles
def _module_name(path: Path) -> str:
    """Dotted name of a library file; a package's ``__init__`` is the package itself."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules_imported(source: str, module: str, is_package: bool,
                      modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``source`` (the module ``module``) imports anywhere in
    its body. ``from package import name`` imports the submodule ``name`` where there is one,
    else the package; an import of a module's attribute counts as one of the module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = set()
    for _, base, names in _import_statements(source, package):
        targets = [f"{base}.{name}" if f"{base}.{name}" in modules else base
                   for name in names] or [base]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != module:
                found.add(target)
    return found


def _import_graph(sources: Mapping[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """module -> the modules it imports, for ``sources``: module -> (source, is a package)."""
    modules = set(sources)
    return {module: _modules_imported(source, module, is_package, modules)
            for module, (source, is_package) in sources.items()}


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    work: list[tuple[str, Iterator[str]]] = []  # the depth-first path, each with what is left

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        work.append((module, iter(sorted(graph[module]))))

    for root in sorted(graph):
        if root in index:
            continue
        visit(root)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    visit(target)
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            work.pop()
            if work:
                caller = work[-1][0]
                low[caller] = min(low[caller], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def test_no_import_cycle() -> None:
    graph = _import_graph({_module_name(path): (path.read_text(encoding="utf-8"),
                                                path.name == "__init__.py")
                           for path in _library_files()})
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other (directly or through others): " + \
        "; ".join(" <-> ".join(cycle) for cycle in cycles)


def test_the_cycle_check_sees_a_lazy_two_module_cycle() -> None:
    graph = _import_graph({
        "mammohybrid.data": ("", True),
        "mammohybrid.data.a": ("def f():\n    from mammohybrid.data import b\n", False),
        "mammohybrid.data.b": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                               "    from .a import f\n", False),
        "mammohybrid.data.c": ("from mammohybrid.data.a import f\nimport mammohybrid.data\n",
                               False),
    })
    assert graph["mammohybrid.data.c"] == {"mammohybrid.data.a", "mammohybrid.data"}
    assert _cycles(graph) == [["mammohybrid.data.a", "mammohybrid.data.b"]]


def test_a_package_init_importing_its_own_module_back_is_a_cycle() -> None:
    graph = _import_graph({
        "mammohybrid.grid": ("from mammohybrid.grid.run import run\n", True),
        "mammohybrid.grid.run": ("from mammohybrid.grid import spec\n", False),
        "mammohybrid.grid.spec": ("import mammohybrid.grid\n", False),
    })
    assert _cycles(graph) == [["mammohybrid.grid", "mammohybrid.grid.run",
                               "mammohybrid.grid.spec"]]


# --------------------------------------------------------------------------- package faces
SUBPACKAGES = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}


def _past_the_face(source: str, package: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source`` (a module of ``package``) that reaches into
    another sub-package instead of importing its ``__init__``: ``mammohybrid.data.manifest``,
    or ``from mammohybrid.data import manifest`` (a module)."""
    own = package[1] if len(package) > 1 else ""
    found = []
    for line, base, names in _import_statements(source, package):
        parts = base.split(".")
        modules = [base]
        if len(parts) == 2 and parts[0] == "mammohybrid" and parts[1] in SUBPACKAGES:
            folder = PACKAGE / parts[1]
            modules += [f"{base}.{name}" for name in names
                        if (folder / f"{name}.py").exists() or (folder / name).is_dir()]
        for module in modules:
            parts = module.split(".")
            if (len(parts) > 2 and parts[0] == "mammohybrid" and parts[1] != own
                    and parts[1] in SUBPACKAGES):
                found.append((line, module))
    return sorted(found)


@pytest.mark.parametrize("path", _library_files(),
                         ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_other_packages_are_imported_through_their_init(path: Path) -> None:
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    wrong = [f"line {line}: {module}" for line, module
             in _past_the_face(path.read_text(encoding="utf-8"), package)]
    assert not wrong, ("import these names from the package (add them to its __init__): "
                       + "; ".join(wrong))


def test_the_face_check_sees_inner_modules_lazy_imports_and_module_imports() -> None:
    source = ("from mammohybrid.data import read_manifest\n"
              "def f():\n    from mammohybrid.data.manifest import read_manifest\n"
              "import mammohybrid.preprocess.batch\nfrom mammohybrid.data import manifest\n"
              "from mammohybrid.training.trainer import train\nfrom mammohybrid.errors import "
              "ConfigError\n")
    assert _past_the_face(source, ("mammohybrid", "training")) == [(3, "mammohybrid.data.manifest"),
                                                  (4, "mammohybrid.preprocess.batch"),
                                                  (5, "mammohybrid.data.manifest")]


# --------------------------------------------------------------------------- the documented tree
def test_the_architecture_doc_shows_every_module_and_folder() -> None:
    doc = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = doc[doc.index("## The tree"):doc.index("## Contracts")]
    modules = set(_library_files())
    missing = [path.relative_to(PACKAGE).as_posix() for path in sorted(PACKAGE.rglob("*"))
               if "__pycache__" not in path.parts
               and ((path.is_dir() and f"{path.name}/" not in tree)
                    or (path in modules and path.name != "__init__.py"
                        and path.stem not in tree))]
    assert not missing, f"add these to docs/architecture.md's tree: {missing}"


def test_light_package_faces_import_neither_tensorflow_nor_the_web_app() -> None:
    """The pre-processing workers import ``inference`` (they unpickle the ensemble) and
    ``predict --backend onnxruntime`` runs without TensorFlow: those faces load the names whose
    modules need TensorFlow or FastAPI only when asked for them."""
    script = (
        "import sys\n"
        "import mammohybrid.data, mammohybrid.preprocess, mammohybrid.inference, "
        "mammohybrid.evaluation, mammohybrid.serve\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'fastapi') if m in sys.modules))\n"
        "import mammohybrid.inference as inference, mammohybrid.serve as serve\n"
        "print(callable(inference.export_run), callable(inference.overlay), "
        "callable(serve.app_for_run))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.stdout.splitlines() == ["[]", "True True True"]
