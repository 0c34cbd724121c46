import textwrap

import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.preprocess.settings import dataset_key
from mammohybrid.workflows.grid.spec import grid_names, load_grid


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
    with pytest.raises(ConfigError, match=r"shipped: .*table5"):
        load_grid("no-such-grid")
