"""The model card: what training records of its data (counts, sources, lesion types, the
synthetic generator's marker) and the card a trained run carries."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from mammohybrid.model_card import data_summary, render_model_card
from mammohybrid.run_dir import RunDir


def _split(folder: Path, patients: list[str], labels: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"image_path": [str(folder / f"{i}.png") for i in range(len(labels))],
                         "source_path": [str(folder / "raw" / f"{i}.dcm")
                                         for i in range(len(labels))],
                         "patient_id": patients, "label": labels, "dataset": "cbis-ddsm",
                         "abnormality_type": "mass"})


def test_data_summary_counts_patients_classes_and_finds_the_synthetic_marker(tmp_path) -> None:
    splits = {"train": _split(tmp_path, ["P1", "P1", "P2"], [0, 1, 1]),
              "val": _split(tmp_path, ["P3"], [0])}
    summary = data_summary(splits, tmp_path / "manifest.csv")
    assert summary["splits"] == {"train": {"images": 3, "patients": 2, "benign": 1,
                                           "malignant": 2},
                                 "val": {"images": 1, "patients": 1, "benign": 1,
                                         "malignant": 0}}
    assert summary["patients"] == 3 and summary["datasets"] == {"cbis-ddsm": 4}
    assert summary["lesion_types"] == {"mass": 4} and summary["synthetic_marker"] is None
    json.dumps(summary)  # recorded in run.json

    # The generator's synth.json above the source images marks them synthetic; another
    # program's file of that name does not.
    (tmp_path / "synth.json").write_text(json.dumps({"generator": "someone else"}))
    assert data_summary(splits, None)["synthetic_marker"] is None
    (tmp_path / "synth.json").write_text(json.dumps({"generator": "mammohybrid synth"}))
    assert data_summary(splits, None)["synthetic_marker"] == str(tmp_path / "synth.json")


def test_a_trained_run_carries_its_card(run_dir: Path) -> None:
    run = RunDir.at(run_dir)
    card = run.model_card.read_text()
    for heading in ("# Model card", "## Intended use", "## Data", "## Pre-processing",
                    "## Model and weights", "## How the epoch and the threshold were chosen",
                    "## Evaluation", "## Known limits", "## Environment (training)"):
        assert f"\n{heading}" in f"\n{card}", heading
    assert "Not a diagnosis" in card and "Not evaluated yet" in card
    info = json.loads(run.info.read_text())
    train = info["data"]["splits"]["train"]
    assert f"| train | {train['images']} | {train['patients']} |" in card
    assert f"epoch {info['best_epoch']}, the one with the highest validation AUC" in card
    threshold = run.load_threshold()
    assert threshold is not None
    assert f"{threshold.value:.4g}, method `youden` on split `val`" in card
    assert f"TensorFlow: {info['runtime']['tensorflow']}" in card
    evaluated = render_model_card(run, "**test split**: 8 images")
    assert "**test split**: 8 images" in evaluated and "Not evaluated yet" not in evaluated
