"""The whole configuration's defaults and the rules that span its sections."""

from __future__ import annotations

import pytest

from mammohybrid.config import Config, load_config
from mammohybrid.errors import ConfigError


def test_defaults_are_the_papers_settings() -> None:
    config = load_config()
    assert config.preprocess.strategy == "median"
    assert (config.preprocess.roi.mode, config.preprocess.roi.threshold) == ("fixed", 193)
    assert config.preprocess.roi.empty_policy == "keep"
    assert config.preprocess.output_size == config.model.input_size == 229
    assert config.model.backbones == ["resnet50v2", "efficientnetb7"]
    assert (config.train.momentum, config.train.nesterov) == (0.9, True)
    assert config.evaluate.fixed_threshold == 0.5


def test_the_logistic_head_needs_frozen_backbones() -> None:
    with pytest.raises(ConfigError, match=r"set model\.trainable: none"):
        load_config(None, ["train.head=logistic"])
    config = load_config(None, ["train.head=logistic", "model.trainable=none"])
    assert (config.train.head, config.model.trainable) == ("logistic", "none")


def test_limits_give_the_file_budget_in_bytes() -> None:
    assert Config().limits.max_file_bytes == 1024 * 1024 * 1024
    assert load_config(None, ["limits.max_file_mb=0.5"]).limits.max_file_bytes == 512 * 1024
