"""Fixtures shared by the tests beside the modules (src/) and the tests in tests/."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mammohybrid.tensorflow_env import configure_tensorflow

if TYPE_CHECKING:
    from mammohybrid.config import Config

# The tests run TensorFlow as the command line starts it (oneDNN kernels, quiet).
configure_tensorflow(quiet=True)
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHARED_DIR = Path(__file__).resolve().parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (CI has it; a user's fresh clone does not)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: the real CBIS-DDSM CSVs are needed for this test")
    return SHARED_DIR


@pytest.fixture(scope="session")
def cbis_csv_dir(shared_dir: Path) -> Path:
    """The four real CBIS-DDSM case-description CSVs."""
    folder = shared_dir / "data" / "cbis-ddsm"
    if not (folder / "mass_case_description_train_set.csv").is_file():
        pytest.skip(f"{folder} lacks the real CBIS-DDSM CSVs")
    return folder


@pytest.fixture()
def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (just freed): connecting is refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# A model and training small enough for a unit test: one tiny CNN on 32-px images, two epochs
# at a learning rate that learns the toy images in them.
TINY_OVERRIDES = ["model.backbones=[tinycnn]", "model.weights=none", "model.input_size=32",
                  "preprocess.output_size=32", "train.epochs=2", "train.batch_size=8",
                  "train.learning_rate=0.01", "seed=3"]


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., Config]:
    """``tiny_config(manifest, *overrides)``: a :class:`Config` for a tiny training on
    ``manifest`` (see ``TINY_OVERRIDES``), with ``key=value`` overrides applied after."""
    from mammohybrid.config import load_config

    def make(manifest: str | os.PathLike[str], *overrides: str) -> Config:
        return load_config(None, [*TINY_OVERRIDES, f"data.manifest={manifest}", *overrides])

    return make


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Callable[..., Path]:
    """``toy_dataset(counts=None)``: the manifest of a pre-processed toy dataset of 32-px images
    (``mammohybrid.training.toydata``: ``counts`` images per split, default 16 train, 8 val,
    8 test, plus one failed row), its ``config.yaml`` the tiny config's. Written once per
    ``counts`` and test process; tests must not change it."""
    from mammohybrid.config import load_config
    from mammohybrid.training.toydata import make_toy_dataset

    written: dict[tuple[tuple[str, int], ...], Path] = {}

    def make(counts: dict[str, int] | None = None) -> Path:
        key = tuple(sorted((counts or {}).items()))
        if key not in written:
            written[key] = make_toy_dataset(tmp_path_factory.mktemp("toy"), counts, size=32,
                                            config=load_config(None, TINY_OVERRIDES))
        return written[key]

    return make


@pytest.fixture(scope="session")
def toy(toy_dataset) -> Path:
    """The default toy manifest (see ``toy_dataset``)."""
    return toy_dataset()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tiny_config) -> Path:
    """A finished run directory: the tiny hybrid trained one epoch on the toy images
    pre-processed with the gaussian strategy, threshold chosen on validation. Trained once per
    test process; tests copy it before changing anything in it."""
    from mammohybrid.training import train
    from mammohybrid.training.toydata import make_toy_dataset

    folder = tmp_path_factory.mktemp("trained")
    manifest = folder / "data" / "manifest.csv"
    config = tiny_config(manifest, "preprocess.strategy=gaussian", "train.epochs=1",
                         "evaluate.threshold=youden")
    make_toy_dataset(manifest.parent, size=32, config=config)
    return train(config, folder / "run").root


# A sitecustomize that makes every import of TensorFlow or Keras fail: on PYTHONPATH, it runs
# before the command (and in its worker processes, which inherit the environment).
NO_TENSORFLOW = """
import sys


class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ImportError(f"{name} may not be imported here")
        return None


sys.meta_path.insert(0, NoTensorFlow())
"""


@pytest.fixture(scope="session")
def without_tensorflow(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that cannot import TensorFlow or Keras (checked): what
    predicting with an ONNX export must do without."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("no-tensorflow")
    (folder / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}
    for module in ("tensorflow", "keras"):
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "may not be imported here" in probe.stderr
    return env
