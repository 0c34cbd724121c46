"""Synthetic CBIS-DDSM: mass ROI crops (:func:`render_roi_crop`), a small dataset written in
CBIS-DDSM's real on-disk format (:func:`generate_cbis_ddsm`) so that demos and tests run
through the real ingest code, and an 8-bit preview of the crops (:func:`sample_grid`).

The crops come from :mod:`~mammohybrid.data.lesion_renderer`; the on-disk format is written by
:mod:`~mammohybrid.data.cbis_ddsm_writer`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammohybrid.data.cbis_ddsm_writer import (
    PlannedLesion,
    RenderedROI,
    write_case_csv,
    write_patient_views,
)
from mammohybrid.data.lesion_renderer import (
    FAINT_FRACTION,
    LesionParams,
    render_lesion,
    sample_lesion_params,
    to_uint16,
)
from mammohybrid.fileio import atomic_write_json
from mammohybrid.progress import track

_MIN_CROP, _MAX_CROP = 100, 520  # ROI crop side in pixels (log-uniform)


def render_roi_crop(rng: np.random.Generator, size: int, malignant: bool,
                    **params: Any) -> np.ndarray:
    """A synthetic uint16 mass ROI crop of about ``size`` x ``size`` pixels.

    Breast-tissue-like power-law background; benign = circumscribed round/oval mass,
    malignant = irregular spiculated mass; contrast, size and noise drawn from ranges shared by
    both classes. Keyword arguments override fields of :class:`LesionParams` (e.g.
    ``aspect=1.0`` for an exactly square crop, ``faint=True`` for a lesion the fixed 193
    threshold removes, ``mass_level=0.9``). The height is ``size``; the width is
    ``round(size * aspect)``.
    """
    faint = params.pop("faint", None)
    unknown = set(params) - {f.name for f in fields(LesionParams)}
    if unknown:
        raise TypeError(f"render_roi_crop: unknown parameter(s) {', '.join(sorted(unknown))}")
    lesion = replace(sample_lesion_params(rng, malignant, faint), **params)
    height, width = int(size), max(round(size * lesion.aspect), 8)
    image, _ = render_lesion(rng, height, width, lesion)
    return to_uint16(image)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_cbis_ddsm` wrote."""

    root: Path
    patients: int
    rois: int
    files: int
    bytes: int


def generate_cbis_ddsm(out: str | Path, patients: int = 80, seed: int = 0,
                       test_fraction: float = 0.22) -> SynthSummary:
    """Write a synthetic CBIS-DDSM mass dataset under ``out`` (see ``docs/datasets.md``).

    ``out/mass_case_description_{train,test}_set.csv`` with the real columns and value styles,
    and ``out/CBIS-DDSM/<case folders>`` with 16-bit DICOMs in both TCIA folder namings. Each
    patient has one to three masses, mostly seen in both CC and MLO views, in one or both
    breasts; the official train/test split is by patient and each split holds about as many
    malignant as benign lesions. The same ``seed`` writes the same bytes.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    out = Path(out)
    master = np.random.default_rng(seed)
    numbers = np.sort(master.choice(np.arange(1, max(10 * patients, 100)), patients,
                                    replace=False))
    n_test = round(test_fraction * patients) if patients > 1 else 0
    test_numbers = set(master.choice(numbers, n_test, replace=False).tolist())
    lesions = _plan_lesions(master, numbers, test_numbers)
    monochrome1_patient = int(master.choice(numbers))  # one MONOCHROME1 crop, as in the wild

    rows: dict[str, list[list[object]]] = {"train": [], "test": []}
    for index, number in enumerate(track(numbers.tolist(), "writing synthetic CBIS-DDSM patients")):
        rng = np.random.default_rng([seed, number])
        patient_lesions = [lesion for lesion in lesions if lesion.patient == f"P_{number:05d}"]
        # Every other patient as in a newer download (descriptive folder names).
        for row in _write_patient(out, rng, patient_lesions, number == monochrome1_patient,
                                  descriptive=index % 2 == 1):
            rows[patient_lesions[0].split].append(row)
    for split, split_rows in rows.items():
        write_case_csv(out, split, split_rows)
    atomic_write_json(out / "synth.json", {"generator": "mammohybrid synth", "patients": patients,
                                           "seed": seed, "test_fraction": test_fraction})
    files = [p for p in out.rglob("*") if p.is_file()]
    return SynthSummary(out, patients, sum(len(r) for r in rows.values()), len(files),
                        sum(p.stat().st_size for p in files))


def _plan_lesions(rng: np.random.Generator, numbers: np.ndarray,
                  test_numbers: set[int]) -> list[PlannedLesion]:
    """Who has which lesion where; pathology balanced within each official split, and
    :data:`FAINT_FRACTION` of the lesions of each split (at least one) faint."""
    lesions = []
    for number in numbers.tolist():
        split = "test" if number in test_numbers else "train"
        for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
            views = ("CC", "MLO") if rng.random() < 0.8 else (str(rng.choice(["CC", "MLO"])),)
            side = str(rng.choice(["LEFT", "RIGHT"]))
            lesions.append(PlannedLesion(f"P_{number:05d}", split, side, views))
    for split in ("train", "test"):
        members = [lesion for lesion in lesions if lesion.split == split]
        malignant = rng.permutation(len(members)) < len(members) / 2
        faint = rng.permutation(len(members)) < max(1, round(FAINT_FRACTION * len(members)))
        for lesion, is_malignant, is_faint in zip(members, malignant, faint, strict=True):
            lesion.faint = bool(is_faint)
            if is_malignant:
                lesion.pathology = "MALIGNANT"
            elif rng.random() < 0.15:
                lesion.pathology = "BENIGN_WITHOUT_CALLBACK"
    return lesions


def _write_patient(out: Path, rng: np.random.Generator, lesions: list[PlannedLesion],
                   monochrome1: bool, descriptive: bool) -> list[list[object]]:
    """Render and write one patient's images (``descriptive``: newer TCIA folder names);
    return its CSV rows."""
    density = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.45, 0.25, 0.1]))
    rois: dict[tuple[str, str], list[RenderedROI]] = {}
    for lesion in lesions:
        base = sample_lesion_params(rng, lesion.pathology == "MALIGNANT", faint=lesion.faint)
        base_size = float(np.exp(rng.uniform(np.log(_MIN_CROP), np.log(_MAX_CROP))))
        for view in lesion.views:
            # The same mass seen from another angle: same margin, new pose and tissue.
            params = replace(base, orientation=float(rng.uniform(0, np.pi)),
                             radius=base.radius * float(rng.uniform(0.9, 1.1)),
                             offset=(float(rng.uniform(-0.05, 0.05)),
                                     float(rng.uniform(-0.05, 0.05))))
            size = int(np.clip(base_size * rng.uniform(0.85, 1.15), _MIN_CROP, _MAX_CROP))
            height, width = size, int(np.clip(round(size * params.aspect), _MIN_CROP, 600))
            image, mask = render_lesion(rng, height, width, params)
            rois.setdefault((lesion.side, view), []).append(
                RenderedROI(lesion, view, 0, to_uint16(image), mask, params))
    return write_patient_views(out, rng, rois, density, monochrome1, descriptive)


def sample_grid(seed: int = 0, per_class: int = 8, rows_per_class: int = 2,
                tile: int = 160) -> np.ndarray:
    """An 8-bit preview: ``rows_per_class`` rows of benign crops, then of malignant crops, each
    crop shown on the 8-bit full-range scale (value * 255 / 65535) with a label strip."""
    rng = np.random.default_rng(seed)
    bands = []
    for malignant, name in ((False, "benign: circumscribed round / oval"),
                            (True, "malignant: irregular, spiculated")):
        label = np.full((28, per_class * tile), 255, np.uint8)
        cv2.putText(label, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 1, cv2.LINE_AA)
        bands.append(label)
        for _ in range(rows_per_class):
            row = []
            for _ in range(per_class):
                size = int(np.exp(rng.uniform(np.log(_MIN_CROP), np.log(_MAX_CROP))))
                crop = render_roi_crop(rng, size, malignant, faint=False)
                eight_bit = np.round(crop / 65535.0 * 255).astype(np.uint8)
                row.append(cv2.resize(eight_bit, (tile, tile), interpolation=cv2.INTER_AREA))
            bands.append(np.hstack(row))
    return np.vstack(bands)
