"""Tests of the training runtime (CPU: no GPU, one device)."""

from __future__ import annotations

import keras
import pytest
import tensorflow as tf

from mammohybrid.config import TrainConfig
from mammohybrid.training.devices import cpu_kernels
from mammohybrid.training.runtime import (
    has_gpu,
    make_strategy,
    training_runtime,
    use_mixed_precision,
)


@pytest.mark.skipif(has_gpu(), reason="checks the CPU defaults")
def test_mixed_precision_auto_is_off_on_cpu() -> None:
    assert use_mixed_precision("auto") is False
    assert use_mixed_precision("on") is True and use_mixed_precision("off") is False


def test_runtime_sets_and_restores_the_dtype_policy() -> None:
    before = keras.config.dtype_policy().name
    with training_runtime(TrainConfig(mixed_precision="on"), seed=1) as runtime:
        assert keras.config.dtype_policy().name == "mixed_float16"
        assert runtime.mixed_precision and runtime.replicas == 1
        assert runtime.describe()["tensorflow"] == tf.__version__
        assert runtime.describe()["cpu_kernels"] == cpu_kernels()
    assert keras.config.dtype_policy().name == before


def test_without_distribute_the_default_strategy() -> None:
    assert make_strategy(False) is tf.distribute.get_strategy()


def test_runtime_restores_op_determinism() -> None:
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    with training_runtime(TrainConfig(deterministic=not before), seed=1):
        assert tf_config.is_op_determinism_enabled() is (not before)
    assert tf_config.is_op_determinism_enabled() is before
