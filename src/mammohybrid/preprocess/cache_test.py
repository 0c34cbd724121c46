"""Tests of the pre-processed-dataset cache: a config's pre-processing is never ignored."""

from __future__ import annotations

import numpy as np
import pytest

from mammohybrid.config import Config, with_overrides
from mammohybrid.data.manifest import read_manifest
from mammohybrid.errors import ConfigError, ManifestError
from mammohybrid.imaging import read_image
from mammohybrid.preprocess.batch import RECORDS_NAME
from mammohybrid.preprocess.batch_test import make_dataset
from mammohybrid.preprocess.cache import default_cache_root, ensure_preprocessed
from mammohybrid.preprocess.chain import preprocess_image
from mammohybrid.preprocess.settings import dataset_key, manifest_preprocess


def _config(*overrides: str) -> Config:
    return with_overrides(Config(), ["preprocess.output_size=48", *overrides])


def test_a_raw_manifest_gets_the_configs_preprocessing_cached_by_its_settings(tmp_path):
    raw = make_dataset(tmp_path, count=2, bad=False, dark=False)
    median = ensure_preprocessed(raw, _config(), workers=1)
    none = ensure_preprocessed(raw, _config("preprocess.strategy=none"), workers=1)
    cache = default_cache_root(raw)
    assert median.parent.parent == cache and none.parent.parent == cache
    assert median.parent.name == dataset_key(_config().preprocess) != none.parent.name
    # The images are the chain's output for each setting, not the raw crops.
    for manifest, config in ((median, _config()), (none, _config("preprocess.strategy=none"))):
        row = read_manifest(manifest).iloc[0]
        expected = preprocess_image(read_image(row["source_path"]), config.preprocess).image
        np.testing.assert_array_equal(read_image(row["image_path"]), expected)
        assert manifest_preprocess(manifest) == config.preprocess
    assert manifest_preprocess(raw) is None


def test_a_second_call_reuses_the_finished_images(tmp_path):
    raw = make_dataset(tmp_path, count=2, bad=False, dark=False)
    first = ensure_preprocessed(raw, _config(), workers=1)
    stamps = {p: p.stat().st_mtime_ns for p in first.parent.glob("images/*.png")}
    journal = (first.parent / RECORDS_NAME).read_text()
    assert ensure_preprocessed(raw, _config(), workers=1) == first
    assert {p: p.stat().st_mtime_ns for p in first.parent.glob("images/*.png")} == stamps
    assert (first.parent / RECORDS_NAME).read_text() == journal


def test_a_preprocessed_manifest_is_used_only_with_its_own_settings(tmp_path):
    raw = make_dataset(tmp_path, count=2, bad=False, dark=False)
    done = ensure_preprocessed(raw, _config(), workers=1)
    assert ensure_preprocessed(done, _config(), workers=1) == done
    with pytest.raises(ConfigError, match=r"preprocess\.roi\.threshold differ"):
        ensure_preprocessed(done, _config("preprocess.roi.threshold=100"), workers=1)


def test_a_preprocessed_manifest_without_its_settings_is_refused(tmp_path):
    raw = make_dataset(tmp_path, count=2, bad=False, dark=False)
    done = ensure_preprocessed(raw, _config(), workers=1)
    (done.parent / "config.yaml").unlink()
    with pytest.raises(ManifestError, match=r"config\.yaml that says how is not beside it"):
        ensure_preprocessed(done, _config(), workers=1)


def test_missing_manifest_is_one_clear_error(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        ensure_preprocessed(tmp_path / "nope.csv", _config())
