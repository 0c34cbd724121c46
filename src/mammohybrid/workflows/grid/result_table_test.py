import textwrap

import pandas as pd

from mammohybrid.workflows.grid.result_table import write_result_table
from mammohybrid.workflows.grid.run import select_best
from mammohybrid.workflows.grid.spec import CellResult, load_grid


def _write(tmp_path, text: str):
    path = tmp_path / "grid.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _results(spec, val_aucs, test_aucs):
    return [CellResult(cell, cell.name, "finished",
                       {"auc": v, "accuracy": 0.5}, {"auc": t, "accuracy": 0.6,
                                                     "auc_ci95": [t - .1, t + .05]})
            for cell, v, t in zip(spec.cells, val_aucs, test_aucs, strict=True)]


def test_best_is_chosen_on_validation_only(tmp_path):
    spec = load_grid(_write(tmp_path, "axes: {model.pooling: [avg, max]}\n"))
    results = _results(spec, val_aucs=[0.80, 0.70], test_aucs=[0.60, 0.95])
    assert select_best(results, "auc") == "avg"  # despite the better test AUC of "max"
    results[0].status = "failed"
    assert select_best(results, "auc") == "max"


def test_result_table_layout(tmp_path):
    spec = load_grid("table5")
    results = _results(spec, [0.7] * len(spec.cells), [0.65] * len(spec.cells))
    results[1].val["auc"] = 0.9
    results[2] = CellResult(spec.cells[2], "x", "failed", error="out of memory")
    csv_path, md_path = write_result_table(spec, results, "gaussian-avg-0.0001-0.35", tmp_path)
    frame = pd.read_csv(csv_path)
    assert len(frame) == len(spec.cells)
    assert {"Filter", "Pooling", "LR", "Dropout", "Backbones", "val_auc", "test_auc",
            "test_auc_ci95", "paper_accuracy", "best"} <= set(frame.columns)
    assert frame["best"].sum() == 1 and frame.loc[1, "best"]
    md = md_path.read_text()
    assert "chosen on the validation AUC only" in md
    assert "**gaussian-avg-0.0001-0.35** (best)" in md
    assert "(failed: out of memory)" in md
    assert "| 98.1 | 100.0 | 97.0 | 0.980 |" in md  # the paper's headline row
    assert "claims on its own test set" in md


def test_result_table_without_reference_has_no_paper_columns(tmp_path):
    spec = load_grid(_write(tmp_path, "axes: {model.pooling: [avg, max]}\n"))
    csv_path, md_path = write_result_table(spec, _results(spec, [0.8, 0.7], [0.6, 0.9]), "avg",
                                      tmp_path)
    assert not [c for c in pd.read_csv(csv_path).columns if c.startswith("paper_")]
    assert "Paper" not in md_path.read_text()
