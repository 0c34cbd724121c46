"""A CBIS-DDSM written in the real on-disk format: the TCIA-style DICOM tree and the mass CSVs.

Takes rendered ROI crops and writes them as CBIS-DDSM does: full mammograms, crops and masks
in both TCIA folder namings, crop and mask sometimes sharing a series, the CSV columns
sometimes swapped, every transfer syntax the reader handles, and CSV rows in the value style of
the real files.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammohybrid.data.cbis_ddsm_csv import CSV_COLUMNS, case_csv_name
from mammohybrid.data.lesion_renderer import (
    ROI_THRESHOLD_FRACTION,
    LesionParams,
    power_law_noise,
    to_uint16,
)
from mammohybrid.fileio import atomic_open
from mammohybrid.imaging import write_dicom

_UID_ROOT = "1.3.6.1.4.1.9590.100.1.2."  # the prefix of every CBIS-DDSM UID
_BENIGN_SHAPES = ("OVAL", "ROUND", "LOBULATED")
_MALIGNANT_SHAPES = ("IRREGULAR", "IRREGULAR-ARCHITECTURAL_DISTORTION", "LOBULATED")
_BENIGN_MARGINS = ("CIRCUMSCRIBED", "OBSCURED", "MICROLOBULATED")
_MALIGNANT_MARGINS = ("SPICULATED", "ILL_DEFINED", "ILL_DEFINED-SPICULATED")


@dataclass
class PlannedLesion:
    """One patient's mass as planned before rendering: whose, where, which class."""

    patient: str
    split: str  # official split: train | test
    side: str  # LEFT | RIGHT
    views: tuple[str, ...]
    pathology: str = "BENIGN"
    faint: bool = False  # too dark for the fixed 193 threshold


@dataclass
class RenderedROI:
    """One lesion seen in one view: a row of the CSV."""

    lesion: PlannedLesion
    view: str
    abnormality_id: int
    crop: np.ndarray
    mask: np.ndarray
    params: LesionParams


def write_patient_views(out: Path, rng: np.random.Generator,
                        rois: dict[tuple[str, str], list[RenderedROI]], density: int,
                        monochrome1: bool, descriptive: bool) -> list[list[object]]:
    """Write one patient's views (``rois`` by (side, view)) under ``out/CBIS-DDSM``; return the
    CSV rows. ``monochrome1``: the first crop is stored inverted; ``descriptive``: newer TCIA
    folder names."""
    rows = []
    for (side, view), view_rois in sorted(rois.items()):
        # Abnormality ids are numbered per view, in an order unrelated to the other view.
        for number, index in enumerate(rng.permutation(len(view_rois)), start=1):
            view_rois[index].abnormality_id = number
        lesion = view_rois[0].lesion
        prefix = "Mass-Test" if lesion.split == "test" else "Mass-Training"
        case = f"{prefix}_{lesion.patient}_{side}_{view}"
        full, masks = _compose_full_mammogram(rng, view_rois, side)
        study = _uid(rng)
        date = f"{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}-2016"
        full_csv = _write_series(out, rng, case, study, date, descriptive,
                                 [("full mammogram images", full, {})], shared=False)[0]
        for roi in sorted(view_rois, key=lambda r: r.abnormality_id):
            # Mostly 12 stored bits and compressed (RLE as TCIA, or JPEG 2000 lossless: the
            # smallest files); some 16-bit, some uncompressed: every reading path is exercised.
            twelve_bits = bool(rng.random() < 0.6)
            syntax = (str(rng.choice(["rle", "jpeg2000"])) if twelve_bits
                      else str(rng.choice(["rle", "explicit"])))
            encoding = {"bits_stored": 12 if twelve_bits else 16, "transfer_syntax": syntax,
                        "photometric": "MONOCHROME1" if monochrome1 else "MONOCHROME2"}
            monochrome1 = False
            shared = bool(rng.random() < 0.7)  # crop and mask in one series (as in most ROIs)
            images = [("cropped images", roi.crop, encoding),
                      ("ROI mask images", masks[id(roi)], {})]
            if shared and rng.random() < 0.15:
                images.reverse()  # the CSV's "crop" file is the mask: real data does this
            roi_case = f"{case}_{roi.abnormality_id}"
            crop_csv, mask_csv = _write_series(out, rng, roi_case, _uid(rng), date, descriptive,
                                               images, shared=shared)
            if not shared and rng.random() < 0.1:
                crop_csv, mask_csv = mask_csv, crop_csv  # swapped CSV columns
            rows.append(_csv_row(rng, roi, density, full_csv, crop_csv, mask_csv))
    return rows


def _compose_full_mammogram(rng: np.random.Generator, rois: list[RenderedROI], side: str
                            ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """A coarse full-field image holding the crops, and one full-size binary mask per ROI.

    The full image is never analysed (the paper works on the crops), so it is kept cheap: the
    tissue is smooth, and each crop is pasted at its place smoothed and quantised to 32 grey
    steps, which RLE compresses to a few tens of kilobytes.
    """
    tallest = max(r.crop.shape[0] for r in rois)
    widest = max(r.crop.shape[1] for r in rois)
    height = max(int(rng.integers(1000, 1300)), tallest + 40)
    width = max(int(height * 0.62), widest + 40)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Breast silhouette: half an ellipse against the chest wall (left edge for LEFT).
    chest = xx if side == "LEFT" else (width - 1 - xx)
    inside = (chest / (0.95 * width)) ** 2 + ((yy - height / 2) / (0.48 * height)) ** 2 < 1
    texture = cv2.resize(power_law_noise(rng, (height // 16, width // 16), 3.0), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    full = _coarse(np.where(inside, 0.45 + 0.06 * texture, 0.02))
    masks = {}
    for roi in rois:
        h, w = roi.crop.shape
        y0, x0 = int(rng.integers(20, height - h - 19)), int(rng.integers(20, width - w - 19))
        full[y0:y0 + h, x0:x0 + w] = _coarse(cv2.GaussianBlur(roi.crop / 65535.0, (0, 0), 3))
        mask = np.zeros((height, width), np.uint8)
        mask[y0:y0 + h, x0:x0 + w][roi.mask] = 255
        masks[id(roi)] = mask
    return full, masks


def _coarse(image: np.ndarray) -> np.ndarray:
    """Fractions of full scale -> uint16 in 32 grey steps (long runs for RLE)."""
    return to_uint16(np.round(image * 32) / 32)


def _uid(rng: np.random.Generator) -> str:
    """A CBIS-DDSM-looking UID (prefix + up to 39 digits)."""
    digits = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(30, 40))))
    return _UID_ROOT + str(int(rng.integers(1, 10))) + digits.lstrip("0")[:38]


def _write_series(out: Path, rng: np.random.Generator, case: str, study: str, date: str,
                  descriptive: bool, images: list[tuple[str, np.ndarray, dict[str, Any]]],
                  shared: bool) -> list[str]:
    """Write images into one series (``shared``) or one series each; return the CSV paths.

    The CSV always uses the old naming ``case/study UID/series UID/00000N.dcm``; on disk the
    newer descriptive naming ``MM-DD-YYYY-DDSM-NA-<study>/1.000000-<description>-<series>/1-N.dcm``
    is used when ``descriptive``.
    """
    csv_paths = []
    series = _uid(rng)
    for index, (description, image, encoding) in enumerate(images):
        if not shared and index > 0:
            series = _uid(rng)
        number = index if shared else 0
        series_description = images[-1][0] if shared else description
        csv_path = f"{case}/{study}/{series}/{number:06d}.dcm"
        if descriptive:
            disk = (f"{case}/{date}-DDSM-NA-{study[-5:]}/"
                    f"1.000000-{series_description}-{series[-5:]}/1-{number + 1}.dcm")
        else:
            disk = csv_path
        attributes = {"PatientID": case, "StudyInstanceUID": study, "SeriesInstanceUID": series,
                      "SOPInstanceUID": _uid(rng), "SeriesDescription": series_description,
                      "SeriesNumber": 1, "InstanceNumber": number + 1,
                      "StudyDate": date[6:] + date[:2] + date[3:5], "BodyPartExamined": "BREAST"}
        write_dicom(out / "CBIS-DDSM" / disk, image, attributes=attributes,
                    **({"transfer_syntax": "rle"} | encoding))
        csv_paths.append(csv_path)
    return csv_paths


def _csv_row(rng: np.random.Generator, roi: RenderedROI, density: int, full: str, crop: str,
             mask: str) -> list[object]:
    """One row in the value style of the real mass CSVs."""
    malignant = roi.lesion.pathology == "MALIGNANT"
    if malignant:
        shape = str(rng.choice(_MALIGNANT_SHAPES, p=[0.7, 0.15, 0.15]))
        margins = str(rng.choice(_MALIGNANT_MARGINS, p=[0.6, 0.25, 0.15]))
        assessment = int(rng.choice([4, 5, 3, 0], p=[0.45, 0.4, 0.1, 0.05]))
    else:
        lobulated = any(amplitude > 0.03 for _, amplitude, _ in roi.params.margin_harmonics)
        shape = "LOBULATED" if lobulated else ("OVAL" if roi.params.elongation > 1.2 else "ROUND")
        margins = str(rng.choice(_BENIGN_MARGINS, p=[0.6, 0.3, 0.1]))
        assessment = int(rng.choice([2, 3, 4, 0], p=[0.15, 0.45, 0.3, 0.1]))
    faint = roi.params.mass_level < ROI_THRESHOLD_FRACTION
    subtlety = int(rng.integers(1, 3)) if faint else int(rng.choice([3, 4, 5], p=[0.25, 0.35, 0.4]))
    # As in the real files, the path of the second file of a series ends in a quoted newline.
    paths = [p + "\n" if p.endswith("000001.dcm") else p for p in (full, crop, mask)]
    return [roi.lesion.patient, density, roi.lesion.side, roi.view, roi.abnormality_id, "mass",
            shape, margins, assessment, roi.lesion.pathology, subtlety, *paths]


def write_case_csv(out: Path, split: str, rows: list[list[object]]) -> None:
    """``out/mass_case_description_<split>_set.csv``, rows sorted as in the real files."""
    rows = sorted(rows, key=lambda r: (r[0], r[2], r[3], r[4]))
    with atomic_open(out / case_csv_name("mass", split), "w", newline="",
                     encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")  # the real files end lines in CRLF
        writer.writerow(CSV_COLUMNS["mass"])
        writer.writerows(rows)
