"""Getting weights into a model: Keras' ImageNet download (failing fast and clearly when it
cannot happen), and local weight files.

``model.weights`` in the config is one of

- ``imagenet``: each backbone gets Keras' ImageNet weights, downloaded once into the Keras
  cache (``~/.keras/models``, or ``$KERAS_HOME/models``). Offline, the build stops at the first
  backbone whose file is not cached, with a :class:`WeightsUnavailableError` that says how to
  go on, instead of a hang or a raw ``urllib`` traceback;
- ``none``: random initialisation (training from scratch; what tests and Fig. 9 use);
- a path to a weights file of the whole model (``.weights.h5`` from ``model.save_weights`` or a
  ``.keras`` model file) built with the same ``model`` section, e.g. a model trained earlier.
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeGuard

import keras

from mammohybrid.errors import WeightsUnavailableError

# Longest wait on one network operation while Keras downloads weights. Without it, urllib
# waits forever on a network that silently drops packets.
DOWNLOAD_TIMEOUT_S = 15.0
WEIGHT_FILE_SUFFIXES = (".weights.h5", ".keras", ".h5")


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded application weights."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def _how_to_proceed() -> str:
    return (f"either copy Keras' weight files for the backbones into {keras_cache_dir()} (from a "
            "machine with internet access, where building the model once downloads them), "
            "or set model.weights to a local weights file of this model (.weights.h5 or "
            ".keras), or set model.weights: none to train from scratch")


def _is_download_failure(error: BaseException) -> bool:
    # keras.utils.get_file turns URLError/HTTPError into a bare Exception("URL fetch failure
    # on ...") and lets socket timeouts through as OSError.
    return (isinstance(error, (OSError, urllib.error.URLError))
            or str(error).startswith("URL fetch failure")
            or "corrupted" in str(error))


@contextlib.contextmanager
def imagenet_download_guard(backbone: str,
                            alternatives: Callable[[], str] | None = None) -> Iterator[None]:
    """Run a Keras application build that may download ImageNet weights: bounded network waits,
    and a :class:`WeightsUnavailableError` saying what to do when the download fails
    (``alternatives()``, called only then, names the choices that need no download)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    except Exception as error:
        if not _is_download_failure(error):
            raise
        raise WeightsUnavailableError(
            f"ImageNet weights for backbone '{backbone}' are not in the Keras cache and cannot "
            f"be downloaded ({error}); {_how_to_proceed()}"
            + (f". {alternatives()}" if alternatives else "")) from None
    finally:
        socket.setdefaulttimeout(previous)


def is_weights_file(value: str | os.PathLike[str] | None) -> TypeGuard[str | os.PathLike[str]]:
    """True when ``model.weights`` names a file rather than ``imagenet`` or none."""
    return value is not None and str(value) != "imagenet"


def load_weights_file(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Load a whole-model weights file into ``model`` (same architecture required)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(
            f"model.weights: weights file {path} not found (expected 'imagenet', 'none' or the "
            "path of a .weights.h5 / .keras file)")
    if not path.name.endswith(WEIGHT_FILE_SUFFIXES):
        raise WeightsUnavailableError(
            f"model.weights: {path} is not a Keras weights file "
            f"({', '.join(WEIGHT_FILE_SUFFIXES)})")
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as error:
        raise WeightsUnavailableError(
            f"model.weights: {path} does not fit this model (was it saved from a model with the "
            f"same model section?): {error}") from None
