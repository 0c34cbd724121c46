"""A config written out: dotted names, YAML, and the saved file that reloads to the same config."""

from __future__ import annotations

from mammohybrid.config import Config, flatten, load_config, save_config, with_overrides


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
