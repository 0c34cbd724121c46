"""Tests of reading back and comparing the settings that made a pre-processed manifest."""

from __future__ import annotations

from mammohybrid.config import Config, save_config, with_overrides
from mammohybrid.preprocess.batch_test import make_dataset
from mammohybrid.preprocess.settings import differing_settings, manifest_preprocess


def _config(*overrides: str) -> Config:
    return with_overrides(Config(), ["preprocess.output_size=48", *overrides])


def test_a_users_config_file_beside_a_raw_manifest_does_not_make_it_preprocessed(tmp_path):
    raw = make_dataset(tmp_path, count=1, bad=False, dark=False)
    save_config(_config("preprocess.strategy=wiener"), tmp_path / "config.yaml")
    assert manifest_preprocess(raw) is None


def test_differing_settings_name_nested_keys():
    assert differing_settings(_config().preprocess, _config().preprocess) == []
    assert differing_settings(_config().preprocess,
                              _config("preprocess.clahe.clip_limit=2.0",
                                      "preprocess.strategy=wiener").preprocess) == [
        "preprocess.clahe.clip_limit", "preprocess.strategy"]
