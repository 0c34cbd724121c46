"""The environment TensorFlow reads once, when it is first imported: which CPU kernels it runs
and how much it prints.

TensorFlow's Linux x86 wheels run their oneDNN CPU kernels by default only on CPUs with
AVX-512 VNNI / BF16 or AMX; on every other x86 CPU (AMD EPYC and Ryzen, older Intel) they fall
back to Eigen's kernels, which are slower for the depthwise convolutions of EfficientNet
(``benchmarks/train.py --paper`` measures both). The product therefore asks for oneDNN
everywhere. oneDNN's results differ from Eigen's by floating-point round-off; a training run
records which kernels it ran on (``run.json``: ``runtime.cpu_kernels``).

:func:`configure_tensorflow` must run before the first ``import tensorflow``: the command line
calls it first thing, and so does every Ray task. A variable the user has set is left as it is
(``TF_ENABLE_ONEDNN_OPTS=0`` gives Eigen's kernels back).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


def tensorflow_environment(quiet: bool) -> dict[str, str]:
    """The variables TensorFlow should start with: oneDNN kernels on and, with ``quiet``, its
    C++ log lines below ERROR off; where this process's environment sets one of them, its value
    instead."""
    defaults = {ONEDNN_VARIABLE: "1"}
    if quiet:
        defaults[LOG_LEVEL_VARIABLE] = "2"
    return {name: os.environ.get(name) or value for name, value in defaults.items()}


def configure_tensorflow(quiet: bool) -> None:
    """Set :func:`tensorflow_environment` in this process and, with ``quiet``, import TensorFlow
    (whenever something first does) with the process's standard error discarded. Has no effect
    on a TensorFlow that is already imported."""
    os.environ.update(tensorflow_environment(quiet))
    if quiet and "tensorflow" not in sys.modules and not any(
            isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())


@contextlib.contextmanager
def _standard_error_discarded() -> Iterator[None]:
    """File descriptor 2 to /dev/null: what C++ code writes there, too."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _standard_error_discarded():
            self._loader.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, with a loader that discards standard error while it runs.

    TensorFlow's C++ libraries log lines as they load (``oneDNN custom operations are on``,
    before absl's logging is set up) that ``TF_CPP_MIN_LOG_LEVEL`` does not filter. Errors
    still reach the caller as Python exceptions."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # the real finders take it from here, and only once
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec
