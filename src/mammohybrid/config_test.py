"""The configuration: defaults, YAML files and presets, key=value overrides, validation with
the key named, and the saved copy that reloads to the same config."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammohybrid.config import (
    Config,
    apply_overrides,
    flatten,
    load_config,
    parse_override,
    preset_names,
    save_config,
    with_overrides,
)
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


def test_yaml_file_then_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\nmodel:\n  pooling: max\n")
    config = load_config(path, ["train.epochs=3", "model.weights=none",
                                "model.backbones=[smallcnn, tinycnn]"])
    assert config.train.epochs == 3  # the override wins over the file
    assert config.model.pooling == "max"  # the file wins over the default
    assert config.model.weights is None
    assert config.model.backbones == ["smallcnn", "tinycnn"]


@pytest.mark.parametrize("name", ["paper", "paper-median", "paper-gaussian", "paper-wiener",
                                  "cpu-quick", "demo", "light", "scratch-cnn"])
def test_every_shipped_preset_validates(name: str) -> None:
    assert name in preset_names()
    assert isinstance(load_config(name), Config)


def test_paper_presets_hold_their_table5_rows() -> None:
    gaussian, wiener = load_config("paper-gaussian"), load_config("paper-wiener")
    assert (gaussian.preprocess.strategy, gaussian.model.pooling,
            gaussian.train.learning_rate, gaussian.model.head_dropout) == ("gaussian", "avg",
                                                                           1e-4, 0.2)
    assert (wiener.preprocess.strategy, wiener.model.pooling) == ("wiener", "max")


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "train.epoch: unknown key"),
    ("model.head_dropout=1.5", "model.head_dropout: Input should be less than 1"),
    ("preprocess.roi.threshold=300", "preprocess.roi.threshold"),
    ("preprocess.median.ksize=4", "preprocess.median.ksize: Value error, must be odd"),
    ("preprocess.roi.empty_policy=ignore", "preprocess.roi.empty_policy"),
    ("model.trainable=some", "model.trainable"),
    ("preprocess.strategy=custom", "needs preprocess.steps"),
])
def test_bad_values_are_refused_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, [override])


def test_custom_strategy_takes_a_list_of_known_steps() -> None:
    config = load_config(None, ["preprocess.strategy=custom",
                                "preprocess.steps=[nlm, roi, wiener, median, clahe]"])
    assert config.preprocess.steps == ["nlm", "roi", "wiener", "median", "clahe"]
    with pytest.raises(ConfigError, match=r"preprocess\.steps"):
        load_config(None, ["preprocess.strategy=custom", "preprocess.steps=[nlm, sharpen]"])


def test_unknown_source_and_bad_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_config("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listing)


def test_override_syntax() -> None:
    assert parse_override("a.b=0.5") == (["a", "b"], 0.5)
    # YAML reads 1e-3 as text; the float field still takes it.
    assert load_config(None, ["train.learning_rate=1e-3"]).train.learning_rate == 1e-3
    assert parse_override("a=") == (["a"], None)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("just-a-key")
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])


def test_flatten_gives_the_dotted_names_overrides_use() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2]}) == {
        "a.b": 1, "a.c.d": None, "e": [1, 2]}
    assert flatten({"x": {"y": 2}}, "top") == {"top.x.y": 2}
    dotted = flatten(Config().model_dump(mode="json"))
    assert with_overrides(Config(), ["model.pooling=max"]).model.pooling == "max"
    assert "model.pooling" in dotted and "preprocess.strategy" in dotted


def test_saved_config_reloads_identically(tmp_path) -> None:
    config = with_overrides(load_config("cpu-quick"), ["train.epochs=2", "seed=7"])
    path = save_config(config, tmp_path / "out" / "config.yaml")
    assert load_config(path) == config


@pytest.mark.parametrize("source", ["override", "yaml"])
def test_off_and_on_choices_survive_yamls_booleans(source: str, tmp_path: Path) -> None:
    # YAML 1.1 reads a bare off/on as a boolean; every choice offering the word must take it.
    settings = {"preprocess.roi.mode": "off", "train.feature_cache": "off",
                "train.mixed_precision": "on"}
    if source == "override":
        config = load_config(None, [f"{key}={value}" for key, value in settings.items()])
    else:
        path = tmp_path / "config.yaml"
        path.write_text("preprocess:\n  roi:\n    mode: off\n"
                        "train:\n  feature_cache: off\n  mixed_precision: on\n")
        config = load_config(path)
    assert config.preprocess.roi.mode == "off"
    assert config.train.feature_cache == "off"
    assert config.train.mixed_precision == "on"
