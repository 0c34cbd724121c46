"""Config YAML and threshold.json are read strictly (no meaning-changing coercions, no
aliases, no unsafe tags, thresholds within [0, 1]), and every error names the file and the key,
so a hand-edited or damaged file fails loudly instead of silently changing a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mammohybrid.config import load_config, save_config
from mammohybrid.errors import ConfigError, MammohybridError
from mammohybrid.run_dir import RunDir


def _config_file(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "config.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_a_good_config_and_on_off_overrides_still_work(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "train:\n  epochs: 3\n  feature_cache: off\n"
                                  "  learning_rate: 1e-3\nevaluate:\n  bootstrap_samples: 10\n")
    config = load_config(path, ["train.mixed_precision=on", "seed=7", "data.manifest=a/b.csv"])
    assert (config.train.epochs, config.train.feature_cache, config.train.mixed_precision) == \
        (3, "off", "on")
    assert config.train.learning_rate == 0.001 and config.seed == 7
    assert str(config.data.manifest) == "a/b.csv"
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config  # what we write, we read


def test_non_utf8_names_the_file(tmp_path: Path) -> None:
    path = _config_file(tmp_path, b"seed: 1\nname: \xff\xfe\n")
    with pytest.raises(ConfigError, match=rf"{path}: not UTF-8 text \(byte 14"):
        load_config(path)


def test_over_deep_nesting_is_a_clean_error(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "seed: " + "[" * 10000 + "]" * 10000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


@pytest.mark.parametrize("content", ["[]\n", "- 1\n- 2\n", "7\n", "text\n"])
def test_a_non_mapping_top_level_is_refused(tmp_path: Path, content: str) -> None:
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(_config_file(tmp_path, content))


@pytest.mark.parametrize("text,key", [
    ("evaluate:\n  bootstrap_samples: true\n", "evaluate.bootstrap_samples"),
    ("data:\n  split_seed: 0.9999999999999999999\n", "data.split_seed"),
    ("train:\n  nesterov: 0.9999999999999999999\n", "train.nesterov"),
    ("preprocess:\n  roi:\n    threshold: 0x1F\n", "preprocess.roi.threshold"),
    ("train:\n  distribute: 0\n", "train.distribute"),
    ("preprocess:\n  wiener:\n    noise: .inf\n", "preprocess.wiener.noise"),
    ("evaluate:\n  fixed_threshold: .nan\n", "evaluate.fixed_threshold"),
])
def test_coercions_that_change_meaning_are_refused(tmp_path: Path, text: str, key: str) -> None:
    path = _config_file(tmp_path, text)
    with pytest.raises(ConfigError, match=rf"\({path}\): {key}: "):
        load_config(path)


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    with pytest.raises(ConfigError, match="aliases"):
        load_config(_config_file(tmp_path, bomb))


def _run_with_threshold(tmp_path: Path, text: str) -> RunDir:
    run = RunDir.at(tmp_path)
    run.threshold.write_text(text)
    return run


def test_a_good_threshold_is_read(tmp_path: Path) -> None:
    run = _run_with_threshold(tmp_path, json.dumps({"value": 0.37, "method": "youden",
                                                    "split": "val", "detail": "x"}))
    assert run.load_threshold().value == 0.37


@pytest.mark.parametrize("value", ["-0.1", "2.0", "1.2e28", "Infinity", "NaN", "true", "7",
                                   "\"0.5\"", "null"])
def test_out_of_range_thresholds_are_refused(tmp_path: Path, value: str) -> None:
    run = _run_with_threshold(tmp_path, f'{{"value": {value}, "method": "fixed", '
                                        '"split": "none"}')
    with pytest.raises(MammohybridError, match=r"threshold.json: not a valid threshold file"):
        run.load_threshold()


@pytest.mark.parametrize("text", ["[" * 100000 + "]" * 100000, "[]", "\xff", ""])
def test_malformed_threshold_files_are_one_line_errors(tmp_path: Path, text: str) -> None:
    run = RunDir.at(tmp_path)
    run.threshold.write_bytes(text.encode("latin-1"))
    with pytest.raises(MammohybridError, match=r"threshold\.json"):
        run.load_threshold()


def test_unsafe_yaml_tags_are_refused_and_run_nothing(tmp_path: Path, monkeypatch) -> None:
    """A python/object tag is refused before anything runs: loading YAML must never execute code."""
    import os

    calls: list[str] = []
    monkeypatch.setattr(os, "system", calls.append)
    path = _config_file(tmp_path, "seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)
    assert calls == []


@pytest.mark.parametrize("text,problem", [
    ("preprocess:\n  output_size: 0229\n", "preprocess.output_size: "),  # octal-looking
    ("seed: 2001-02-30\n", "is not valid YAML: day is out of range"),  # a bad date
])
def test_fuzzer_findings_in_yaml_are_one_line_errors(tmp_path: Path, text: str,
                                                     problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        load_config(_config_file(tmp_path, text))
