import numpy as np
import pandas as pd

from mammohybrid.config import Config, with_overrides
from mammohybrid.evaluation.metrics import compute_metrics
from mammohybrid.evaluation.report import (
    DatasetSummary,
    Report,
    format_interval,
    format_metric,
    metric_rows,
    write_report,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "image_path": ["a", "b", "c", "d", "e"],
        "patient_id": ["1", "1", "2", "3", "4"],
        "label": [1, 1, 0, 0, 0],
        "split": ["train", "train", "train", "test", "test"],
        "pathology": ["MALIGNANT", "MALIGNANT", "BENIGN_WITHOUT_CALLBACK", "BENIGN",
                      "BENIGN_WITHOUT_CALLBACK"],
        "roi_empty": ["True", "False", "False", "True", ""],  # as read back from CSV
        "status": ["ok", "ok", "ok", "ok", "error"],
    })


def test_dataset_summary_counts():
    config = with_overrides(Config(), ["preprocess.roi.empty_policy=fallback"])
    summary = DatasetSummary.from_manifest(_frame(), config, "m.csv")
    assert summary.bwc_per_split == {"test": 1, "train": 1}
    assert summary.roi_empty == 2
    assert summary.status_counts == {"ok": 4, "error": 1}
    assert "2 of 5 ROIs (40.0%) came out empty" in summary.preprocessing_sentence()
    assert "replaced by the unmasked image" in summary.preprocessing_sentence()
    assert "The 1 image(s) without status ok were left out" in summary.preprocessing_sentence()
    assert "train 1, test 1" not in summary.bwc_sentence()  # split order as counted
    assert "test 1, train 1" in summary.bwc_sentence()
    table = summary.splits.set_index(["split", "class"])
    assert table.loc[("train", "malignant"), "patients"] == 1
    assert table.loc[("train", "all"), "images"] == 3


def test_dataset_summary_without_preprocessing_columns():
    frame = _frame().drop(columns=["roi_empty", "status", "pathology"])
    summary = DatasetSummary.from_manifest(frame, Config())
    assert summary.roi_empty is None and summary.bwc_per_split is None
    assert "has no roi_empty column" in summary.preprocessing_sentence()
    assert "status" not in summary.preprocessing_sentence()


def test_formatting():
    assert format_metric("auc", 0.81234) == "0.812"
    assert format_metric("accuracy", 0.5) == "50.0 %"
    assert format_metric("f1", None) == "undefined"
    assert format_interval("auc", [0.7, 0.9]) == "0.700 – 0.900"
    assert format_interval("auc", [None, None]) == "n/a"


def test_undefined_metrics_are_explained(tmp_path):
    metrics = compute_metrics(np.zeros(4), np.array([0.1, 0.2, 0.7, 0.3]), 0.5).to_dict()
    rows = {row[0]: row for row in metric_rows(metrics)}
    assert rows["ROC AUC"][1] == "undefined"
    assert rows["ROC AUC"][3] == "undefined: needs both classes"
    assert "no malignant case" in rows["Sensitivity (TPR, recall)"][3]
    assert rows["Sensitivity (TPR, recall)"][1] == "undefined"  # null in metrics.json
    html, md = write_report(Report("Title <x>", "sub", metrics, Config()), tmp_path)
    text = html.read_text()
    assert "Title &lt;x&gt;" in text and "Title <x>" not in text  # escaped
    assert "needs both classes" in md.read_text()
