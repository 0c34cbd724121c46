"""What every section shares: strict types, odd window sizes, and off/on words that YAML reads
as booleans."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mammohybrid.config import MedianConfig, ROIConfig, load_config


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


def test_sections_refuse_unknown_keys_even_windows_and_meaning_changing_coercions() -> None:
    assert MedianConfig(ksize=5).ksize == 5
    for settings in ({"ksize": 4}, {"ksize": True}, {"ksize": 5.0}, {"size": 3}):
        with pytest.raises(ValidationError):
            MedianConfig.model_validate(settings)
    section = ROIConfig()
    with pytest.raises(ValidationError):  # assignments are validated too
        section.threshold = 300
    assert ROIConfig.model_validate({"mode": False}).mode == "off"
