"""CBIS-DDSM's case-description CSVs: finding them, reading their rows, the paths they name.

``mass_case_description_train_set.csv`` and its three siblings name, per ROI, the full
mammogram, the ROI crop and the binary ROI mask as old-style TCIA paths
``<case folder>/<study UID>/<series UID>/00000N.dcm``. What is really on disk differs: the
resolvers (:mod:`~mammohybrid.data.cbis_ddsm_tcia`, :mod:`~mammohybrid.data.cbis_ddsm_jpeg`)
find it from these paths and return a :class:`ResolvedROI`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from mammohybrid.config import DataConfig
from mammohybrid.data.sources import (
    BAD_VALUE,
    DUPLICATE_ROW,
    MISSING_COLUMNS,
    MISSING_VALUE,
    PATH_OUTSIDE_ROOT,
    IngestResult,
    RowProblem,
    RowSource,
)
from mammohybrid.errors import DatasetError

DATASET = "cbis-ddsm"
ABNORMALITIES = {"mass": ("mass",), "calc": ("calc",), "all": ("mass", "calc")}
OFFICIAL_SPLITS = ("train", "test")  # as named in the CSV file names


def case_csv_name(abnormality: str, split: str) -> str:
    """``mass_case_description_train_set.csv`` and siblings."""
    return f"{abnormality}_case_description_{split}_set.csv"


# Every case CSV's name, whichever abnormality is ingested: files a CBIS-DDSM ingest may read.
CASE_CSV_NAMES = frozenset(case_csv_name(kind, split) for kinds in ABNORMALITIES.values()
                           for kind in kinds for split in OFFICIAL_SPLITS)


# The published headers. The mass CSVs spell ``breast_density`` with an underscore, the calc
# CSVs ``breast density`` with a space.
_COMMON_HEAD = ["patient_id"]
_COMMON_TAIL = ["left or right breast", "image view", "abnormality id", "abnormality type"]
PATH_COLUMNS = ["image file path", "cropped image file path", "ROI mask file path"]
CSV_COLUMNS = {
    "mass": [*_COMMON_HEAD, "breast_density", *_COMMON_TAIL, "mass shape", "mass margins",
             "assessment", "pathology", "subtlety", *PATH_COLUMNS],
    "calc": [*_COMMON_HEAD, "breast density", *_COMMON_TAIL, "calc type", "calc distribution",
             "assessment", "pathology", "subtlety", *PATH_COLUMNS],
}
REQUIRED_COLUMNS = ["patient_id", "left or right breast", "image view", "abnormality id",
                    "pathology", "cropped image file path", "ROI mask file path"]
# CSV column -> manifest column for what the CSV knows about each ROI.
_MANIFEST_NAMES = {
    "left or right breast": "laterality", "image view": "view",
    "abnormality id": "abnormality_id",
    "breast_density": "breast_density", "breast density": "breast_density",
    "mass shape": "mass_shape", "mass margins": "mass_margins", "calc type": "calc_type",
    "calc distribution": "calc_distribution", "assessment": "assessment",
    "subtlety": "subtlety",
}


@dataclass(frozen=True)
class CaseCSV:
    abnormality: str  # mass | calc
    split: str  # official split: train | test
    path: Path


def find_case_csvs(root: Path, csv_dir: Path | None, abnormality: str,
                   result: IngestResult) -> list[CaseCSV]:
    """Locate the case CSVs in ``csv_dir``, else in ``root``, ``root/csv`` or one folder down."""
    if abnormality not in ABNORMALITIES:
        raise DatasetError(f"unknown abnormality '{abnormality}' (expected "
                           f"{', '.join(ABNORMALITIES)})")
    folders = [csv_dir] if csv_dir is not None else _csv_search_folders(root)
    found = []
    for kind in ABNORMALITIES[abnormality]:
        for split in OFFICIAL_SPLITS:
            name = case_csv_name(kind, split)
            path = next((f / name for f in folders if (f / name).is_file()), None)
            if path is None:
                result.note(f"{name} not found: no {kind} {split} rows")
            else:
                found.append(CaseCSV(kind, split, path))
    if not found:
        where = ", ".join(str(f) for f in folders)
        raise DatasetError(f"no CBIS-DDSM case CSV ({case_csv_name('mass', 'train')} etc.) found "
                           f"in {where}; give the folder with --csv-dir")
    return found


def _csv_search_folders(root: Path) -> list[Path]:
    if root.is_file():
        return [root.parent]
    children = sorted(p for p in root.iterdir() if p.is_dir())
    return [root, root / "csv", *children]


def load_case_table(csvs: list[CaseCSV], config: DataConfig, result: IngestResult) -> pd.DataFrame:
    """All usable CSV rows, labelled, with their official split; bad rows become errors.

    Checks: required columns (else the whole CSV is reported and skipped), empty values,
    unknown pathology, duplicate ROIs (same patient, breast, view, abnormality type and id:
    the first is kept). A patient who is in a test CSV has all rows in test (this only matters
    for ``--abnormality all``: the mass and calc CSVs share some patients across splits).
    """
    records = []
    seen: set[tuple[str, ...]] = set()
    for csv in csvs:
        try:
            table = pd.read_csv(csv.path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            result.error(BAD_VALUE, f"{csv.path.name}: not a readable CSV ({error}); file "
                         "skipped", source=csv.path)
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
        if missing:
            result.error(MISSING_COLUMNS, f"{csv.path.name}: missing column(s) "
                         f"{', '.join(missing)}; file skipped", source=csv.path)
            continue
        table = table.apply(lambda column: column.str.strip())  # paths end in a quoted newline
        result.count(f"rows read ({csv.path.name})", len(table))
        for number, row in enumerate(table.to_dict("records"), start=1):
            record = _case_record(row, csv, number, config, result, seen)
            if record is not None:
                records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    test_patients = set(frame.loc[frame["official_split"] == "test", "patient_id"])
    moved = (frame["official_split"] == "train") & frame["patient_id"].isin(test_patients)
    if moved.any():
        result.note(f"{int(moved.sum())} train-CSV row(s) of "
                    f"{frame.loc[moved, 'patient_id'].nunique()} patient(s) who also appear in a "
                    "test CSV were put in test (one patient, one split)")
    frame["split"] = np.where(moved | (frame["official_split"] == "test"), "test", "train")
    result.note("test: the official CBIS-DDSM test split (kept as published)")
    return frame


def _case_record(row: Mapping[str, str], csv: CaseCSV, number: int, config: DataConfig,
                 result: IngestResult, seen: set[tuple[str, ...]]) -> dict[str, object] | None:
    where: RowSource = {"source": csv.path, "row": number}
    empty = [c for c in REQUIRED_COLUMNS if not row.get(c)]
    if empty:
        result.error(MISSING_VALUE, f"empty value(s) in {', '.join(empty)}", **where)
        return None
    key = (csv.abnormality, row["patient_id"], row["left or right breast"], row["image view"],
           row["abnormality id"])
    if key in seen:
        result.error(DUPLICATE_ROW, f"duplicate ROI {' '.join(key)} (first occurrence kept)",
                     **where)
        return None
    label = result.label_for(row["pathology"], config, **where)
    if label is None:
        return None
    seen.add(key)
    record: dict[str, object] = {
        "label": label, "pathology": row["pathology"], "patient_id": row["patient_id"],
        "dataset": DATASET, "abnormality_type": csv.abnormality,
        **{name: row[column] for column, name in _MANIFEST_NAMES.items() if column in row},
        "official_split": csv.split, "source_file": csv.path.name, "source_row": number,
    }
    for column in PATH_COLUMNS:
        record[column] = row.get(column, "")
    return record


@dataclass(frozen=True)
class ResolvedROI:
    """The files of one CSV row as found on disk (crop pixels decoded: ``crop_shape``)."""

    crop: Path
    mask: Path | None
    full: Path | None
    crop_shape: tuple[int, int]
    pixel_spacing_mm: float | None = None  # from the crop's DICOM header, when it has one


def csv_path_parts(row: Mapping[str, str], column: str) -> tuple[str, ...]:
    """The components of a CSV path, refusing absolute paths and ``..``."""
    text = str(row.get(column, "")).strip()
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if not parts or text.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", text):
        raise RowProblem(PATH_OUTSIDE_ROOT, f"{column} '{text}' is not a path inside the dataset",
                         text)
    return parts
