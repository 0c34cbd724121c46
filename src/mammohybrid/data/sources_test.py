"""The source contract: pathology mapping, row errors and path safety."""

from __future__ import annotations

import pytest

from mammohybrid.config import DataConfig
from mammohybrid.data.sources import (
    IngestResult,
    RowProblem,
    benign_without_callback_statement,
    safe_join,
)


@pytest.mark.parametrize("value,label", [("BENIGN", 0), ("benign", 0), (" B ", 0), ("0", 0),
                                         ("MALIGNANT", 1), ("m", 1), ("1", 1)])
def test_label_for_known_values(value, label):
    assert IngestResult("x").label_for(value, DataConfig()) == label


@pytest.mark.parametrize("policy,label", [("benign", 0), ("malignant", 1), ("exclude", None)])
def test_benign_without_callback_follows_the_config(policy, label):
    result = IngestResult("x")
    config = DataConfig(benign_without_callback=policy)
    assert result.label_for("BENIGN_WITHOUT_CALLBACK", config) == label
    assert result.counts["BENIGN_WITHOUT_CALLBACK rows"] == 1
    assert result.notes == [benign_without_callback_statement(config)]
    assert f"data.benign_without_callback={policy}" in result.notes[0]


def test_unknown_pathology_is_a_row_error():
    result = IngestResult("x")
    assert result.label_for("UNPROVEN", DataConfig(), source="a.csv", row=3, path="p") is None
    error = result.errors[0]
    assert (error.kind, error.source, error.row, error.path) == ("unknown_pathology", "a.csv",
                                                                 3, "p")
    assert "UNPROVEN" in error.message
    assert result.errors_frame().columns.tolist() == ["kind", "message", "source", "row", "path"]


def test_safe_join_refuses_paths_leaving_root(tmp_path):
    assert safe_join(tmp_path, "a/b.png") == tmp_path / "a" / "b.png"
    assert safe_join(tmp_path, str(tmp_path / "x.png")) == tmp_path / "x.png"
    assert safe_join(tmp_path, "a/../b.png") == tmp_path / "b.png"
    for bad in ("../x.png", "a/../../x.png", "/etc/passwd"):
        with pytest.raises(RowProblem, match="outside") as error:
            safe_join(tmp_path, bad)
        assert error.value.kind == "path_outside_root"
