"""A tiny generated pre-processed dataset (PNGs + manifest + config.yaml) for the training
tests and benchmarks: it has the exact layout ``mammohybrid preprocess`` writes, is made in
well under a second, and its classes are easy to tell apart (a malignant image holds a
brighter, spikier blob) so a few epochs of a tiny model learn something. And a run directory
of an untrained model (:func:`write_untrained_run`), for what needs an architecture only.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mammohybrid.config import Config, save_config
from mammohybrid.data import write_manifest
from mammohybrid.decision import ThresholdChoice
from mammohybrid.fileio import atomic_write_json, atomic_write_text
from mammohybrid.imaging import write_png
from mammohybrid.run_dir import RunDir


def toy_image(rng: np.random.Generator, size: int, malignant: bool) -> np.ndarray:
    """A (size, size) uint8 image: textured background and a blob, spiky when malignant."""
    image: np.ndarray = rng.normal(60, 12, (size, size))
    centre = rng.uniform(0.35, 0.65, 2) * size
    radius = rng.uniform(0.12, 0.2) * size
    yy, xx = np.mgrid[:size, :size]
    angle = np.arctan2(yy - centre[0], xx - centre[1])
    spikes = 0.45 * np.maximum(np.cos(7 * angle + rng.uniform(0, 6.3)), 0) ** 4 if malignant else 0
    inside = np.hypot(yy - centre[0], xx - centre[1]) < radius * (1 + spikes)
    image[inside] += 140 if malignant else 90
    image = cv2.GaussianBlur(image, (3, 3), 0.8)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_toy_dataset(folder: str | os.PathLike[str], counts: dict[str, int] | None = None,
                     size: int = 32, seed: int = 0, failed_rows: int = 1,
                     config: Config | None = None) -> Path:
    """Write ``folder/images/*.png``, ``folder/manifest.csv`` and ``folder/config.yaml``;
    return the manifest path. The images are generated, not run through a chain: the
    ``config.yaml`` records ``config`` (default: the defaults), so that a config with the same
    ``preprocess`` section trains on them as on a pre-processed dataset. ``failed_rows`` extra
    train rows get ``status`` ``error`` and no image, as failed pre-processing leaves them. One
    patient per image; classes alternate.
    """
    counts = counts or {"train": 16, "val": 8, "test": 8}
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    rows = []
    for split, count in counts.items():
        for index in range(count):
            label = index % 2
            path = folder / "images" / f"{split}_{index:04d}.png"
            write_png(path, toy_image(rng, size, bool(label)))
            rows.append({"image_path": str(path), "label": label, "patient_id": f"{split}{index}",
                         "split": split, "source_path": str(path), "status": "ok"})
    for index in range(failed_rows):
        rows.append({"image_path": str(folder / "images" / f"failed_{index}.png"), "label": 1,
                     "patient_id": f"failed{index}", "split": "train",
                     "source_path": str(folder / f"failed_{index}.dcm"), "status": "error"})
    write_manifest(pd.DataFrame(rows), folder / "manifest.csv")
    save_config(config or Config(), folder / "config.yaml")
    return folder / "manifest.csv"


def write_untrained_run(folder: str | os.PathLike[str], config: Config,
                        detail: str = "untrained model") -> RunDir:
    """A finished run directory of ``config``'s model as built (its ``model.weights``: random,
    ImageNet or a file), never trained, with a fixed threshold of 0.5: for the tests and
    benchmarks that need a model of some architecture, not a trained one."""
    from mammohybrid.models import build_model

    run = RunDir.at(folder)
    run.root.mkdir(parents=True, exist_ok=True)
    build_model(config.model).save(run.model)
    save_config(config, run.config)
    atomic_write_json(run.threshold, ThresholdChoice(0.5, "fixed", "none", detail).to_dict())
    atomic_write_text(run.done, detail + "\n")
    return run
