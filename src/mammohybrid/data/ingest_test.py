"""The registry as ingest sees it (every source registered) and output naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammohybrid.data.ingest import IngestOutputs
from mammohybrid.data.sources import get_source, ingest_sources
from mammohybrid.errors import DatasetError


def test_every_source_is_registered():
    sources = ingest_sources()
    assert set(sources) == {"cbis-ddsm", "cbis-ddsm-jpeg", "mias", "folder"}
    assert get_source("mias").function.__name__ == "ingest_mias"
    with pytest.raises(DatasetError, match=r"unknown dataset source 'inbreast'.*cbis-ddsm"):
        get_source("inbreast")


def test_outputs_sit_beside_the_manifest():
    outputs = IngestOutputs.for_manifest(Path("out/train.csv"))
    assert outputs.errors == Path("out/train.errors.csv")
    assert outputs.summary_md == Path("out/train.summary.md")
    assert outputs.summary_csv == Path("out/train.summary.csv")
    assert outputs.config == Path("out/train.config.yaml")
