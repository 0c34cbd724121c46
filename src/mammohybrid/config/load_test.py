"""Building a config: defaults, then a YAML file or preset, then key=value overrides, validated
with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammohybrid.config import apply_overrides, load_config, parse_override, with_overrides
from mammohybrid.errors import ConfigError


def test_yaml_file_then_overrides(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\nmodel:\n  pooling: max\n")
    config = load_config(path, ["train.epochs=3", "model.weights=none",
                                "model.backbones=[smallcnn, tinycnn]"])
    assert config.train.epochs == 3  # the override wins over the file
    assert config.model.pooling == "max"  # the file wins over the default
    assert config.model.weights is None
    assert config.model.backbones == ["smallcnn", "tinycnn"]


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


def test_with_overrides_validates_a_new_config(tmp_path: Path) -> None:
    base = load_config()
    changed = with_overrides(base, ["model.pooling=max"])
    assert changed.model.pooling == "max" and base.model.pooling == "avg"
    with pytest.raises(ConfigError, match=r"invalid configuration \(overrides\): seed"):
        with_overrides(base, ["seed=x"])
