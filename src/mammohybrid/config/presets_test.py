"""The presets shipped as package data: every one is found and validates."""

from __future__ import annotations

import pytest

from mammohybrid.config import PRESET_ALIASES, Config, load_config, preset_names
from mammohybrid.config.presets import preset_file


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


def test_an_alias_reads_the_file_of_its_preset() -> None:
    for alias, name in PRESET_ALIASES.items():
        assert preset_file(alias).read_text(encoding="utf-8") == \
            preset_file(name).read_text(encoding="utf-8")
        assert load_config(alias) == load_config(name)
    assert not preset_file("no-such-preset").is_file()
