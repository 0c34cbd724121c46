import textwrap

import pandas as pd
import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.preprocess.dataset import dataset_key
from mammohybrid.workflows.grid import (
    CellResult,
    grid_names,
    load_grid,
    select_best,
    write_summary,
)


def _write(tmp_path, text: str):
    path = tmp_path / "grid.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_table5_grid():
    assert "table5" in grid_names()
    spec = load_grid("table5")
    assert len(spec.cells) == 3 * 2 * 2 * 3 + 2
    assert spec.keys == ["preprocess.strategy", "model.pooling", "train.learning_rate",
                         "model.head_dropout", "model.backbones"]
    assert {c.config.preprocess.strategy for c in spec.cells} == {"gaussian", "median", "wiener"}
    ablations = {c.name: c.config.model.backbones for c in spec.cells[-2:]}
    assert sorted(ablations.values()) == [["efficientnetb7"], ["resnet50v2"]]
    assert all(c.config.train.epochs == 100 for c in spec.cells)
    # Every published row matches exactly one cell.
    for row in spec.reference:
        assert sum(row.matches(c.config) for c in spec.cells) == 1, row.match
    headline = next(c for c in spec.cells if c.name == "median-avg-0.0001-0.2")
    assert next(r for r in spec.reference if r.matches(headline.config)).metrics[
        "accuracy"] == 0.9813
    # Three filters -> three pre-processed datasets shared by the cells.
    assert len({dataset_key(c.config.preprocess) for c in spec.cells}) == 3


def test_overrides_axes_and_runs(tmp_path):
    path = _write(tmp_path, """
        name: small
        set: {train.epochs: 3}
        manifest: data/m.csv
        axes:
          model.pooling: [avg, max]
          train.learning_rate: [1.0e-3]
        runs:
          - name: single
            set: {model.backbones: [resnet50v2], train.epochs: 1}
    """)
    spec = load_grid(path, overrides=["train.batch_size=4", "model.pooling=max"])
    assert [c.name for c in spec.cells] == ["avg-0.001", "max-0.001", "single"]
    assert [c.config.model.pooling for c in spec.cells] == ["avg", "max", "max"]  # axis wins
    assert [c.config.train.epochs for c in spec.cells] == [3, 3, 1]
    assert all(c.config.train.batch_size == 4 for c in spec.cells)
    assert spec.manifest == tmp_path / "data" / "m.csv"  # relative to the grid file
    assert load_grid(path, manifest=tmp_path / "x.csv").manifest == tmp_path / "x.csv"


@pytest.mark.parametrize("text, message", [
    ("axes: {model.pooling: [avg]}\nbogus: 1\n", "unknown key"),
    ("axes: {model.pooling: [mean]}\n", "model.pooling"),
    ("axes: {model.nonsense: [1]}\n", "unknown key"),
    ("axes: {model.pooling: []}\n", "non-empty lists"),
    ("runs: [{set: {model.pooling: avg}}]\n", "needs a 'name'"),
    ("runs: [{name: a}, {name: a}]\n", "duplicate cell name"),
    ("name: empty\n", "no cells"),
    ("axes: {model.pooling: [avg]}\nselect_by: test_auc\n", "select_by"),
])
def test_invalid_grids_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_grid(_write(tmp_path, text))


def test_unknown_grid_name():
    with pytest.raises(ConfigError, match="shipped: .*table5"):
        load_grid("no-such-grid")


def _results(spec, val_aucs, test_aucs):
    return [CellResult(cell, cell.name, "finished",
                       {"auc": v, "accuracy": 0.5}, {"auc": t, "accuracy": 0.6,
                                                     "auc_ci95": [t - .1, t + .05]})
            for cell, v, t in zip(spec.cells, val_aucs, test_aucs)]


def test_best_is_chosen_on_validation_only(tmp_path):
    spec = load_grid(_write(tmp_path, "axes: {model.pooling: [avg, max]}\n"))
    results = _results(spec, val_aucs=[0.80, 0.70], test_aucs=[0.60, 0.95])
    assert select_best(results, "auc") == "avg"  # despite the better test AUC of "max"
    results[0].status = "failed"
    assert select_best(results, "auc") == "max"


def test_summary_layout(tmp_path):
    spec = load_grid("table5")
    results = _results(spec, [0.7] * len(spec.cells), [0.65] * len(spec.cells))
    results[1].val["auc"] = 0.9
    results[2] = CellResult(spec.cells[2], "x", "failed", error="out of memory")
    csv_path, md_path = write_summary(spec, results, "gaussian-avg-0.0001-0.35", tmp_path)
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


def test_summary_without_reference_has_no_paper_columns(tmp_path):
    spec = load_grid(_write(tmp_path, "axes: {model.pooling: [avg, max]}\n"))
    csv_path, md_path = write_summary(spec, _results(spec, [0.8, 0.7], [0.6, 0.9]), "avg",
                                      tmp_path)
    assert not [c for c in pd.read_csv(csv_path).columns if c.startswith("paper_")]
    assert "Paper" not in md_path.read_text()
