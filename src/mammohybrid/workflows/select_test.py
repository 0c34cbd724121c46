"""Nested selection: the one-standard-error rule on paired inner scores, and a nested run whose
outer predictions are the chosen candidates' own cross-validation predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.workflows.grid import load_grid
from mammohybrid.workflows.select import SelectSettings, choose, run_select


def _inner(probabilities: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    n = len(labels)
    return pd.DataFrame({"repeat": 0, "fold": np.arange(n) % 4,
                         "image": [f"i{k}" for k in range(n)],
                         "patient": [f"p{k // 2}" for k in range(n)], "label": labels,
                         "probability": probabilities})


def test_one_se_keeps_the_simpler_candidate_unless_clearly_beaten():
    rng = np.random.default_rng(0)
    labels = np.tile([0, 0, 1, 1], 15)
    signal = labels + rng.normal(0, 1.0, 60)
    simple = _inner(signal, labels)
    slightly = _inner(signal + rng.normal(0, 0.5, 60), labels)  # better here by luck
    clearly = _inner(labels + rng.normal(0, 0.2, 60), labels)

    close = choose({"simple": simple, "slightly": slightly}, "one-se", 300, seed=1)
    assert close.scores["slightly"]["auc"] > close.scores["simple"]["auc"]
    behind = close.scores["simple"]
    assert 0 < behind["behind_best"] <= behind["standard_error"]
    assert close.winner == "simple"
    assert choose({"simple": simple, "slightly": slightly}, "best", 300, 1).winner == "slightly"

    far = choose({"simple": simple, "clearly": clearly}, "one-se", 300, seed=1)
    assert far.scores["simple"]["behind_best"] > far.scores["simple"]["standard_error"]
    assert far.winner == "clearly"
    assert far.scores["clearly"]["behind_best"] == 0


def test_settings_refuse_unknown_rules_and_too_few_folds():
    with pytest.raises(ConfigError, match="--rule"):
        SelectSettings(rule="median")
    with pytest.raises(ConfigError, match="at least 2 folds"):
        SelectSettings(inner_folds=1)


def _candidates(tmp_path, manifest, extra: str = "") -> str:
    grid = tmp_path / "candidates.yaml"
    grid.write_text(f"""
name: toy-candidates
set:
  model.backbones: [tinycnn]
  model.weights: none
  model.input_size: 32
  preprocess.output_size: 32
  model.trainable: none
  model.augment: none
  train.head: logistic
  train.logistic_c: [1.0]
  seed: 3
manifest: {manifest}
runs:
  - name: tiny
    set: {{}}
  - name: small
    set: {{model.backbones: [smallcnn]}}
  - name: both
    set: {{model.backbones: [tinycnn, smallcnn], model.tta: dihedral{extra}}}
""")
    return str(grid)


@pytest.mark.slow
def test_nested_selection_predicts_each_outer_fold_with_its_winners_own_run(toy_dataset,
                                                                          tmp_path):
    manifest = toy_dataset({"train": 30, "val": 8, "test": 8})
    spec = load_grid(_candidates(tmp_path, manifest))
    settings = SelectSettings(folds=3, repeats=1, inner_folds=3, bootstrap=200)
    result = run_select(spec, tmp_path / "select", settings)

    nested = pd.read_csv(result.files["nested_predictions"])
    folds = pd.read_csv(result.files["folds"])
    summary = json.loads(result.files["summary"].read_text())
    assert summary["n_candidates"] == 3 and summary["candidates"] == ["tiny", "small", "both"]
    assert sum(summary["winners"].values()) == 3 == len(folds)
    assert set(folds["winner"]) <= {"tiny", "small", "both"}
    # Every development row (test split left out) predicted once, by its fold's winner, with
    # exactly the probability of that winner's own cross-validation run of the fold.
    assert len(nested) == 38 and nested["image"].is_unique
    for _, fold in folds.iterrows():
        rows = nested[nested["fold"] == fold["fold"]]
        assert set(rows["candidate"]) == {fold["winner"]}
        plain = pd.read_csv(tmp_path / "select" / "candidates" / fold["winner"] /
                            f"r0/f{fold['fold']}" / "predictions.csv")
        assert sorted(plain["probability"]) == pytest.approx(sorted(rows["probability"]))
    # Paired differences: the nested row against each candidate, each against the simplest.
    pairs = {(p["a"], p["b"]) for p in summary["paired_differences"]}
    assert ("selected (nested)", "tiny") in pairs and ("both", "tiny") in pairs
    assert summary["chosen_on_all_rows"]["candidate"] in {"tiny", "small", "both"}
    assert "one-standard-error rule" in result.files["summary_md"].read_text()


def test_candidates_must_share_the_folds(toy_dataset, tmp_path):
    manifest = toy_dataset({"train": 30, "val": 8, "test": 8})
    spec = load_grid(_candidates(tmp_path, manifest, ", data.split_seed: 7"))
    with pytest.raises(ConfigError, match="differ in their data section"):
        run_select(spec, tmp_path / "select", SelectSettings(folds=3, inner_folds=3))


def test_the_recommended_preset_is_one_of_the_declared_candidates():
    """The real-lesions preset is what `select real-lesions` recommends: one of its candidates,
    unchanged (a preset edited by hand would no longer be what was selected)."""
    from mammohybrid.config import load_config

    preset = load_config("real-lesions")
    assert any(cell.config == preset for cell in load_grid("real-lesions").cells)
