"""A decoder that kills its worker process (segfault, abort) costs that one file, not the batch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mammohybrid.config import load_config
from mammohybrid.imaging import write_png
from mammohybrid.preprocess import batch, pool
from mammohybrid.workers import WORKER_DIED, CrashSafePool

from .conftest import small_crop
from .crashing import AbortingChain, decode_or_abort


@pytest.mark.slow
def test_an_aborting_decoder_costs_one_file_not_the_batch(tmp_path: Path) -> None:
    paths = [str(write_png(tmp_path / f"{name}.png", small_crop(i)))
             for i, name in enumerate(["a", "b", "crash", "c", "d", "e"])]
    with CrashSafePool(2, decode_or_abort, lambda path: (path, -1)) as pool:
        results = dict(pool.map_unordered(paths, max_in_flight=4))
    assert results == {path: (-1 if "crash" in path else 64 * 48) for path in paths}


@pytest.mark.slow
def test_preprocess_goes_on_past_a_worker_that_dies(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rows = []
    for index, height in enumerate([40, 13, 50, 60]):
        path = write_png(tmp_path / "in" / f"c{index}.png", small_crop(index, (height, 40)))
        rows.append({"image_path": str(path), "label": index % 2, "patient_id": f"P{index}",
                     "split": "train"})
    manifest = tmp_path / "in" / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    real_build = pool.build_chain
    monkeypatch.setattr(pool, "build_chain", lambda cfg: AbortingChain(real_build(cfg).steps))
    config = load_config(None, ["preprocess.output_size=64"])
    summary = batch.run_batch(manifest, tmp_path / "out", config, workers=2)
    assert (summary.images, summary.failed) == (4, 1)
    output = pd.read_csv(summary.manifest_path)
    crashed = output[output["status"] == "error"]
    assert list(crashed["source_path"].map(lambda p: Path(p).name)) == ["c1.png"]
    assert WORKER_DIED in crashed["error"].iloc[0]
    assert (output["status"] == "ok").sum() == 3
