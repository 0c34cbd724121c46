"""Test of the generated toy dataset used by the training tests and benchmarks."""

from __future__ import annotations

from mammohybrid.config import Config, load_config
from mammohybrid.data.manifest import read_manifest
from mammohybrid.imaging import read_image
from mammohybrid.training.toydata import make_toy_dataset


def test_toy_dataset_has_the_preprocessed_layout(tmp_path) -> None:
    manifest = make_toy_dataset(tmp_path, {"train": 4, "val": 2}, size=40, failed_rows=1)
    frame = read_manifest(manifest)
    assert frame["split"].tolist() == ["train"] * 4 + ["val"] * 2 + ["train"]
    assert frame["status"].tolist() == ["ok"] * 6 + ["error"]
    assert frame["label"].tolist()[:6] == [0, 1, 0, 1, 0, 1]
    image = read_image(frame["image_path"][1])
    assert image.shape == (40, 40) and image.dtype.name == "uint8"
    malignant, benign = read_image(frame["image_path"][1]), read_image(frame["image_path"][0])
    assert malignant.max() > benign.max()  # the malignant blob is brighter
    assert load_config(tmp_path / "config.yaml").preprocess == Config().preprocess
