"""QA figures like the paper's Figs. 3-6: one image after every step of the chain, side by side,
and the grey-level histograms before and after NLM denoising."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mammohybrid.fileio import atomic_path
from mammohybrid.imaging import read_image
from mammohybrid.preprocess.chain import Chain
from mammohybrid.progress import track

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_CLASS_NAMES = {0: "benign", 1: "malignant"}


def _histogram_pair(steps: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """(label, image) before and after NLM; first and last step when the chain has no NLM."""
    names = [name for name, _ in steps]
    if "nlm" not in names[1:]:
        return [(f"after {names[0]}", steps[0][1]), (f"after {names[-1]}", steps[-1][1])]
    index = names.index("nlm")
    return [(f"before NLM (after {names[index - 1]})", steps[index - 1][1]),
            ("after NLM", steps[index][1])]


def qa_figure(image: np.ndarray, chain: Chain, title: str = "") -> Figure:
    """A figure of ``image`` after every step of ``chain`` (top) and the grey-level histograms
    before and after denoising (bottom)."""
    from matplotlib.figure import Figure

    steps, record = chain.intermediates(image)
    columns = len(steps)
    figure = Figure(figsize=(2.6 * max(columns, 4), 6.2), layout="constrained")
    grid = figure.add_gridspec(2, 2 * columns, height_ratios=[1.15, 1])
    for index, (name, step_image) in enumerate(steps):
        axis = figure.add_subplot(grid[0, 2 * index:2 * index + 2])
        axis.imshow(step_image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        label = f"{index + 1}. {name}\n{step_image.shape[1]}x{step_image.shape[0]}"
        if name == "roi":
            label += f", kept {record.kept_fraction:.1%}"
        if name == "nlm" and record.nlm_h is not None:
            label += f", h={record.nlm_h:.2f}"
        axis.set_title(label, fontsize=9)
        axis.set_axis_off()
    for half, (label, hist_image) in enumerate(_histogram_pair(steps)):
        axis = figure.add_subplot(grid[1, half * columns:(half + 1) * columns])
        counts = np.bincount(hist_image.ravel(), minlength=256)[:256]
        axis.bar(np.arange(256), counts, width=1.0, color="0.25")
        if record.roi_threshold is not None:
            axis.axvline(record.roi_threshold, color="tab:red", linestyle="--", linewidth=1,
                         label=f"ROI threshold {record.roi_threshold:g}")
            axis.legend(loc="upper left", fontsize=8)
        axis.set_xlim(-1, 256)
        axis.set_title(f"grey-level histogram {label}", fontsize=9)
        axis.set_xlabel("grey level")
        axis.set_ylabel("pixels")
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def save_qa_figure(path: str | os.PathLike[str], image: np.ndarray, chain: Chain,
                   title: str = "") -> Path:
    """Write :func:`qa_figure` as a PNG, atomically."""
    path = Path(path)
    figure = qa_figure(image, chain, title)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    return path


def _pick_rows(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """``count`` rows alternating between the classes, in manifest order within each."""
    groups = [group.index for _, group in frame.groupby("label", sort=True)]
    order = [i for i in itertools.chain.from_iterable(itertools.zip_longest(*groups))
             if i is not None]
    return frame.loc[order[:count]]


def write_qa_figures(frame: pd.DataFrame, chain: Chain, qa_dir: str | os.PathLike[str],
                     count: int) -> list[Path]:
    """QA figures for ``count`` rows of a pre-processed manifest (benign and malignant in
    turn), read from ``source_path``; figures that exist already are kept."""
    qa_dir = Path(qa_dir)
    rows = _pick_rows(frame, count)
    paths = []
    for _, row in track(list(rows.iterrows()), "QA figures"):
        path = qa_dir / Path(row["image_path"]).name
        if not path.is_file():
            label = _CLASS_NAMES.get(int(row["label"]), str(row["label"]))
            title = f"{Path(row['source_path']).name} ({label}, patient {row['patient_id']})"
            save_qa_figure(path, read_image(row["source_path"]), chain, title)
        paths.append(path)
    return paths
