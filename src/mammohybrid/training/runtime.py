"""Where and how training runs: seeds and determinism, the device strategy (one device or
``MirroredStrategy``), mixed precision.

TensorFlow is the training backend; the model code itself is backend-neutral Keras.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf
from tensorflow.python.framework import config as _tf_config

from mammohybrid.config import TrainConfig
from mammohybrid.progress import console
from mammohybrid.training.devices import cpu_kernels, installation_warnings

log = logging.getLogger(__name__)

MIXED_POLICY = "mixed_float16"


@dataclass(frozen=True)
class Runtime:
    """What :func:`training_runtime` set up for one training run."""

    strategy: tf.distribute.Strategy
    mixed_precision: bool
    deterministic: bool
    devices: tuple[str, ...]
    cpu_kernels: str

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def describe(self) -> dict[str, Any]:
        return {"devices": list(self.devices), "replicas": self.replicas,
                "strategy": type(self.strategy).__name__,
                "mixed_precision": self.mixed_precision, "deterministic": self.deterministic,
                "cpu_kernels": self.cpu_kernels,
                "tensorflow": tf.__version__, "keras": keras.__version__}


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def use_mixed_precision(setting: str) -> bool:
    """``auto``: on exactly when a GPU is present (float16 is slow on CPUs)."""
    return {"on": True, "off": False, "auto": has_gpu()}[setting]


def make_strategy(distribute: bool) -> tf.distribute.Strategy:
    """``MirroredStrategy`` over all GPUs (else all logical CPUs) when ``distribute``; the
    default single-device strategy otherwise."""
    if not distribute:
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        log.warning("--distribute: only one device (%s); training on it alone", devices[0].name)
    return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])


def strategy_devices(strategy: tf.distribute.Strategy) -> tuple[str, ...]:
    """The devices a strategy trains on (the default strategy: TensorFlow's placement)."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return tuple(strategy.extended.worker_devices)
    gpus = tf.config.list_logical_devices("GPU")
    return (gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name,)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; with ``deterministic``, also make every
    TensorFlow op deterministic, which exact resumption after an interruption relies on."""
    keras.utils.set_random_seed(seed)
    set_op_determinism(deterministic)


def set_op_determinism(enabled: bool) -> None:
    # TensorFlow's public API can only switch determinism on; the functions to query and
    # undo it (so that a run leaves the process as it found it) live in its config module.
    if enabled:
        _tf_config.enable_op_determinism()
    else:
        _tf_config.disable_op_determinism()


@contextlib.contextmanager
def training_runtime(config: TrainConfig, seed: int) -> Iterator[Runtime]:
    """Seed, pick the strategy and the dtype policy for one run; restore the process-wide
    settings (policy, op determinism) after. A TensorFlow that cannot use the machine's NVIDIA
    GPU is reported first, with its fix (:mod:`mammohybrid.training.devices`)."""
    for warning in installation_warnings():
        # Not markup: the fix holds brackets (tensorflow[and-cuda]).
        console.print(f"warning: {warning}", style="bold yellow", markup=False, highlight=False,
                      soft_wrap=True)
    was_deterministic = _tf_config.is_op_determinism_enabled()
    seed_everything(seed, config.deterministic)
    strategy = make_strategy(config.distribute)
    mixed = use_mixed_precision(config.mixed_precision)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(MIXED_POLICY if mixed else "float32")
    try:
        yield Runtime(strategy=strategy, mixed_precision=mixed,
                      deterministic=config.deterministic, devices=strategy_devices(strategy),
                      cpu_kernels=cpu_kernels())
    finally:
        keras.config.set_dtype_policy(previous_policy)
        set_op_determinism(was_deterministic)
