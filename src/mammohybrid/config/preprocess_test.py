"""The pre-processing sections: a custom chain names its steps, and only a custom chain does."""

from __future__ import annotations

import pytest

from mammohybrid.config import PreprocessConfig, load_config
from mammohybrid.errors import ConfigError


def test_custom_strategy_takes_a_list_of_known_steps() -> None:
    config = load_config(None, ["preprocess.strategy=custom",
                                "preprocess.steps=[nlm, roi, wiener, median, clahe]"])
    assert config.preprocess.steps == ["nlm", "roi", "wiener", "median", "clahe"]
    with pytest.raises(ConfigError, match=r"preprocess\.steps"):
        load_config(None, ["preprocess.strategy=custom", "preprocess.steps=[nlm, sharpen]"])


def test_steps_belong_to_the_custom_strategy_only() -> None:
    with pytest.raises(ValueError, match="only used with strategy 'custom'"):
        PreprocessConfig(strategy="median", steps=["nlm"])
