"""The ingest registry, pathology mapping, path safety and output naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammohybrid.config import DataConfig
from mammohybrid.data.ingest import (
    IngestOutputs,
    IngestResult,
    RowProblem,
    benign_without_callback_statement,
    get_source,
    ingest_sources,
    safe_join,
)
from mammohybrid.errors import DatasetError


def test_every_source_is_registered():
    sources = ingest_sources()
    assert set(sources) == {"cbis-ddsm", "cbis-ddsm-jpeg", "mias", "folder"}
    assert get_source("mias").function.__name__ == "ingest_mias"
    with pytest.raises(DatasetError, match=r"unknown dataset source 'inbreast'.*cbis-ddsm"):
        get_source("inbreast")


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


def test_outputs_sit_beside_the_manifest():
    outputs = IngestOutputs.for_manifest(Path("out/train.csv"))
    assert outputs.errors == Path("out/train.errors.csv")
    assert outputs.summary_md == Path("out/train.summary.md")
    assert outputs.summary_csv == Path("out/train.summary.csv")
    assert outputs.config == Path("out/train.config.yaml")
