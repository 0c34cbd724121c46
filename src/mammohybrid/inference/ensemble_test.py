"""The test-time filter ensemble: strategy parsing, configs, shared steps computed once give
exactly what separate chains give, and the average."""

from __future__ import annotations

import numpy as np
import pytest

from mammohybrid.config import PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.errors import ConfigError
from mammohybrid.inference.ensemble import (
    StrategyEnsemble,
    average_probabilities,
    parse_strategies,
    strategy_config,
)
from mammohybrid.preprocess import preprocess_image


def test_parse_strategies_keeps_order_and_drops_duplicates() -> None:
    assert parse_strategies("median, wiener,median") == ["median", "wiener"]
    assert parse_strategies(["gaussian"]) == ["gaussian"]
    assert parse_strategies(None) == [] and parse_strategies(" , ") == []
    with pytest.raises(ConfigError, match=r"unknown strategy bilateral .*known: .*median"):
        parse_strategies("median,bilateral")


def test_strategy_config_changes_only_the_strategy() -> None:
    base = PreprocessConfig.model_validate({"output_size": 64, "median": {"ksize": 5}})
    wiener = strategy_config(base, "wiener")
    assert wiener.strategy == "wiener"
    assert wiener.model_dump(exclude={"strategy"}) == base.model_dump(exclude={"strategy"})
    assert strategy_config(base, "median") is base
    with pytest.raises(ConfigError, match="custom"):
        strategy_config(base, "custom")
    custom = PreprocessConfig(strategy="custom", steps=["roi", "median"])
    assert strategy_config(custom, "custom") is custom
    assert strategy_config(custom, "gaussian").steps is None


@pytest.mark.parametrize("strategies, shared", [
    (["median", "wiener", "gaussian"], 4),  # 8-bit, working size, NLM, ROI
    (["wiener", "none"], 2),  # 8-bit, working size
    (None, 7),  # the training strategy alone: its whole chain
])
def test_shared_steps_give_exactly_what_separate_chains_give(strategies, shared) -> None:
    base = PreprocessConfig(output_size=64, working_max_side=96)
    ensemble = StrategyEnsemble(base, strategies)
    assert ensemble.shared_steps == shared
    image = render_roi_crop(np.random.default_rng(3), 120, malignant=True)
    results = ensemble(image)
    assert list(results) == (strategies or ["median"])
    for name, result in results.items():
        expected = preprocess_image(image, strategy_config(base, name))
        np.testing.assert_array_equal(result.image, expected.image)
        assert result.kept_fraction == expected.kept_fraction
        assert result.roi_empty == expected.roi_empty
        assert result.warnings == expected.warnings
        assert result.input_shape == image.shape


def test_empty_roi_is_reported_by_every_strategy() -> None:
    image = render_roi_crop(np.random.default_rng(0), 80, malignant=False, faint=True)
    results = StrategyEnsemble(PreprocessConfig(output_size=64), ["median", "wiener"])(image)
    for result in results.values():
        assert result.roi_empty and result.kept_fraction == 0.0
        assert len(result.warnings) == 1 and "ROI empty" in result.warnings[0]


def test_training_strategy_flag() -> None:
    base = PreprocessConfig(strategy="gaussian")
    assert StrategyEnsemble(base).is_training_strategy
    assert StrategyEnsemble(base, ["gaussian"]).is_training_strategy
    assert not StrategyEnsemble(base, ["median"]).is_training_strategy
    assert not StrategyEnsemble(base, ["gaussian", "median"]).is_training_strategy
    assert StrategyEnsemble(base, ["median", "gaussian"]).primary == "median"


def test_average_probabilities_is_the_plain_mean() -> None:
    mean = average_probabilities({"median": np.array([0.2, 0.9]), "wiener": np.array([0.4, 0.5])})
    np.testing.assert_allclose(mean, [0.3, 0.7])
    with pytest.raises(ValueError):
        average_probabilities({})
