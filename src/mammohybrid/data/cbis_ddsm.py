"""CBIS-DDSM -> manifest rows, from the TCIA DICOM download or the popular JPEG re-export.

The case-description CSVs (``mass_case_description_train_set.csv`` and its three siblings)
name, per ROI, the full mammogram, the ROI crop and the binary ROI mask as old-style TCIA paths
``<case folder>/<study UID>/<series UID>/00000N.dcm``. What is really on disk differs:

- TCIA downloads use either those UID folders or descriptive names
  (``07-20-2016-DDSM-NA-74994/1.000000-ROI mask images-24515/1-1.dcm``); only the case folder
  (``Mass-Training_P_00001_LEFT_CC_1``, ROI folders end in ``_<abnormality id>``) is common to
  both. So every DICOM under the ROI's case folder is a candidate.
- The crop and the mask often share one series, and the CSV's crop/mask columns are sometimes
  swapped. So crop and mask are told apart **by content**: the crop is the smallest candidate
  whose pixels are not binary (it is decoded, which also proves it is readable); the mask is the
  largest other candidate (binary, the full mammogram's size). The CSV columns only say which
  case folder to look in.
- The JPEG re-export (``csv/dicom_info.csv`` + ``jpeg/<SeriesInstanceUID>/1-NNN.jpg``) is
  reached through the series UIDs in the CSV paths; ``SeriesDescription`` (cropped images / ROI
  mask images) tells crop from mask, and where it is missing the image size does: the mask has
  the full mammogram's size, the crop is smaller.

Patients are CBIS-DDSM's ``patient_id`` (``P_00001``), never the DICOM PatientID, which names
one view (``Mass-Training_P_00001_LEFT_CC_1``) and would leak. The official test split is kept.

``lesion_id``: CBIS-DDSM numbers abnormalities per image (``abnormality id`` restarts in every
view) and never states that a CC and an MLO row show the same lesion. Two views are linked
(one ``lesion_id`` for both) only when that is unambiguous: the breast has exactly one
abnormality of the type in its CC view and exactly one in its MLO view, with the same pathology.
Otherwise each row is its own lesion.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from mammohybrid.config import DataConfig
from mammohybrid.data.ingest import (
    BAD_VALUE,
    DUPLICATE_ROW,
    MISSING_COLUMNS,
    MISSING_FILE,
    MISSING_VALUE,
    NO_CROP,
    PATH_OUTSIDE_ROOT,
    UNREADABLE_IMAGE,
    IngestResult,
    RowProblem,
    register_source,
    safe_join,
)
from mammohybrid.errors import DatasetError, ImageReadError
from mammohybrid.imaging import read_image
from mammohybrid.progress import track

DATASET = "cbis-ddsm"
ABNORMALITIES = {"mass": ("mass",), "calc": ("calc",), "all": ("mass", "calc")}
OFFICIAL_SPLITS = ("train", "test")  # as named in the CSV file names


def case_csv_name(abnormality: str, split: str) -> str:
    """``mass_case_description_train_set.csv`` and siblings."""
    return f"{abnormality}_case_description_{split}_set.csv"


# The published headers. The mass CSVs spell ``breast_density`` with an underscore, the calc
# CSVs ``breast density`` with a space.
_COMMON_HEAD = ["patient_id"]
_COMMON_TAIL = ["left or right breast", "image view", "abnormality id", "abnormality type"]
_PATH_COLUMNS = ["image file path", "cropped image file path", "ROI mask file path"]
CSV_COLUMNS = {
    "mass": [*_COMMON_HEAD, "breast_density", *_COMMON_TAIL, "mass shape", "mass margins",
             "assessment", "pathology", "subtlety", *_PATH_COLUMNS],
    "calc": [*_COMMON_HEAD, "breast density", *_COMMON_TAIL, "calc type", "calc distribution",
             "assessment", "pathology", "subtlety", *_PATH_COLUMNS],
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
# Case folders: Mass-Training_P_00001_LEFT_CC (full mammogram) or ..._CC_1 (ROI 1).
CASE_FOLDER = re.compile(r"^(Mass|Calc)-(Training|Test)_P_\d+_(LEFT|RIGHT)_(CC|MLO)(_\d+)?$")


# --------------------------------------------------------------------------- CSVs
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
    where = {"source": csv.path, "row": number}
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
    for column in _PATH_COLUMNS:
        record[column] = row.get(column, "")
    return record


def link_lesions(frame: pd.DataFrame) -> pd.Series:
    """``lesion_id`` of every row (see the module doc for the rule)."""
    breast = ["patient_id", "laterality", "abnormality_type"]
    groups = frame.groupby(breast)
    unambiguous = (groups["view"].agg(lambda views: sorted(views) == ["CC", "MLO"])
                   & (groups["pathology"].nunique() == 1)).rename("linked")
    linked = frame[breast].join(unambiguous, on=breast)["linked"].astype(bool)
    prefix = frame["abnormality_type"].str.capitalize() + "_" + frame["patient_id"] + "_" + \
        frame["laterality"]
    per_view = prefix + "_" + frame["view"] + "_" + frame["abnormality_id"].astype(str)
    return prefix.where(linked, per_view)


# --------------------------------------------------------------------------- resolving images
@dataclass(frozen=True)
class ResolvedROI:
    crop: Path
    mask: Path | None
    full: Path | None
    crop_shape: tuple[int, int]


def _csv_path_parts(row: Mapping[str, str], column: str) -> tuple[str, ...]:
    """The components of a CSV path, refusing absolute paths and ``..``."""
    text = str(row.get(column, "")).strip()
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if not parts or text.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", text):
        raise RowProblem(PATH_OUTSIDE_ROOT, f"{column} '{text}' is not a path inside the dataset",
                         text)
    return parts


def is_binary(image: np.ndarray) -> bool:
    """True when the image holds at most two grey levels (a mask)."""
    low, high = image.min(), image.max()
    return bool(np.all((image == low) | (image == high)))


class TCIAResolver:
    """Finds a CSV row's crop, mask and full mammogram in a TCIA download (either naming)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.case_files = _index_case_folders(root)

    def resolve(self, row: Mapping[str, str]) -> ResolvedROI:
        folders = []
        for column in ("cropped image file path", "ROI mask file path"):
            case = _csv_path_parts(row, column)[0]
            if case not in folders:
                folders.append(case)
        candidates = sorted({f for case in folders for f in self.case_files.get(case, [])})
        if not candidates:
            raise RowProblem(MISSING_FILE, f"ROI folder {' / '.join(folders)} not found (or holds "
                             f"no DICOM file) under {self.root}", folders[0])
        crop, crop_image, mask = pick_crop_and_mask(candidates)
        return ResolvedROI(crop, mask, self._full_image(row), crop_image.shape)

    def _full_image(self, row: Mapping[str, str]) -> Path | None:
        """The full mammogram: recorded when its case folder holds exactly one DICOM."""
        try:
            case = _csv_path_parts(row, "image file path")[0]
        except RowProblem:  # the full image is not needed: a bad path only loses the record
            return None
        files = self.case_files.get(case, [])
        return files[0] if len(files) == 1 else None


def _index_case_folders(root: Path) -> dict[str, list[Path]]:
    """Case folder name -> the DICOM files below it (wherever it sits under ``root``).

    Folder links are followed (a download often sits on another disk, linked into place);
    a folder reached twice, e.g. through a link loop, is read once.
    """
    index: dict[str, list[Path]] = {}
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames.clear()
            continue
        visited.add(real)
        dirnames.sort()
        dicoms = [name for name in filenames if name.lower().endswith(".dcm")]
        if not dicoms:
            continue
        parts = Path(dirpath).relative_to(root).parts
        case = next((p for p in reversed(parts) if CASE_FOLDER.match(p)), None)
        if case is not None:
            index.setdefault(case, []).extend(Path(dirpath) / name for name in sorted(dicoms))
    return index


def pick_crop_and_mask(candidates: list[Path]) -> tuple[Path, np.ndarray, Path | None]:
    """Tell the ROI crop from the mask by content (see the module doc).

    Returns (crop path, crop pixels, mask path or None). Raises :class:`RowProblem` when no
    candidate is a readable non-binary image.
    """
    shapes, problems = {}, []
    for path in candidates:
        try:
            shapes[path] = _dicom_shape(path)
        except ImageReadError as error:
            problems.append(str(error))
    ordered = sorted(shapes, key=lambda p: (shapes[p][0] * shapes[p][1], str(p)))
    for path in ordered:
        try:
            image = read_image(path)
        except ImageReadError as error:
            problems.append(str(error))
            continue
        if not is_binary(image):
            others = [p for p in ordered if p != path]
            return path, image, (others[-1] if others else None)
    if problems:
        raise RowProblem(UNREADABLE_IMAGE, problems[0], candidates[0])
    raise RowProblem(NO_CROP, f"only binary images (masks) found: "
                     f"{', '.join(p.name for p in candidates)}", candidates[0].parent)


def _dicom_shape(path: Path) -> tuple[int, int]:
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        return int(header.Rows), int(header.Columns)
    except Exception as error:  # pydicom raises many kinds for truncated or foreign files
        raise ImageReadError(f"{path}: not a readable DICOM header ({error})") from None


class JPEGResolver:
    """Finds a CSV row's crop and mask in the JPEG re-export through ``dicom_info.csv``."""

    def __init__(self, root: Path, dicom_info: pd.DataFrame) -> None:
        self.root = root
        self.by_series = {uid: group for uid, group in dicom_info.groupby("SeriesInstanceUID")}

    def resolve(self, row: Mapping[str, str]) -> ResolvedROI:
        series = []
        for column in ("cropped image file path", "ROI mask file path"):
            parts = _csv_path_parts(row, column)
            if len(parts) < 3:
                raise RowProblem(MISSING_VALUE, f"{column} '{'/'.join(parts)}' has no series UID")
            if parts[2] not in series:
                series.append(parts[2])
        entries = [self.by_series[uid] for uid in series if uid in self.by_series]
        if not entries:
            raise RowProblem(MISSING_FILE, f"series {' / '.join(series)} not in dicom_info.csv",
                             series[0])
        candidates = pd.concat(entries, ignore_index=True)
        full_shape = self._full_shape(row)
        crop_entry, mask_entry = _split_by_description(candidates, full_shape)
        crop = self._image_path(crop_entry)
        try:
            image = read_image(crop)
        except ImageReadError as error:
            raise RowProblem(UNREADABLE_IMAGE, str(error), crop) from None
        return ResolvedROI(crop, self._optional_path(mask_entry),
                           self._optional_path(self._full_entry(row)), image.shape)

    def _full_uid(self, row: Mapping[str, str]) -> str | None:
        try:
            parts = _csv_path_parts(row, "image file path")
        except RowProblem:  # the full image is not needed: a bad path only loses the record
            return None
        return parts[2] if len(parts) >= 3 else None

    def _full_entry(self, row: Mapping[str, str]) -> pd.Series | None:
        uid = self._full_uid(row)
        return self.by_series[uid].iloc[0] if uid in self.by_series else None

    def _full_shape(self, row: Mapping[str, str]) -> tuple[int, int] | None:
        entry = self._full_entry(row)
        return None if entry is None else (entry["Rows"], entry["Columns"])

    def _optional_path(self, entry: pd.Series | None) -> Path | None:
        """The image of an entry that is nice to record but not needed (mask, full image)."""
        if entry is None:
            return None
        try:
            return self._image_path(entry)
        except RowProblem:
            return None

    def _image_path(self, entry: pd.Series) -> Path:
        parts = PurePosixPath(str(entry["image_path"]).replace("\\", "/")).parts
        # dicom_info paths start with the uploader's folder ("CBIS-DDSM/jpeg/<uid>/1-1.jpg"):
        # keep them from the jpeg folder on.
        if "jpeg" in parts:
            parts = parts[parts.index("jpeg"):]
        path = safe_join(self.root, "/".join(parts))
        if not path.is_file():
            raise RowProblem(MISSING_FILE, f"{path}: no such file", path)
        return path


def _split_by_description(candidates: pd.DataFrame, full_shape: tuple[int, int] | None
                          ) -> tuple[pd.Series, pd.Series | None]:
    """(crop entry, mask entry) from dicom_info rows: SeriesDescription first, size second."""
    description = candidates["SeriesDescription"].fillna("").str.strip().str.lower()
    area = candidates["Rows"] * candidates["Columns"]
    undescribed = ~description.isin(["cropped images", "roi mask images"])
    if undescribed.any():
        if full_shape is not None:
            is_full_size = ((candidates["Rows"] == full_shape[0])
                            & (candidates["Columns"] == full_shape[1]))
        else:  # without the full image's size, the larger of two or more images is the mask
            is_full_size = (area == area.max()) & (len(candidates) > 1)
        description = description.where(~undescribed, np.where(is_full_size, "roi mask images",
                                                               "cropped images"))
    crops = candidates[description == "cropped images"]
    masks = candidates[description == "roi mask images"]
    if crops.empty:
        raise RowProblem(NO_CROP, "no cropped image among the series' files: "
                         f"{', '.join(map(str, candidates['image_path']))}")
    crop = crops.loc[area[crops.index].idxmin()]
    mask = masks.loc[area[masks.index].idxmax()] if not masks.empty else None
    return crop, mask


# --------------------------------------------------------------------------- ingest
def _ingest_rows(table: pd.DataFrame, resolver: TCIAResolver | JPEGResolver,
                 result: IngestResult) -> pd.DataFrame:
    """Resolve every row's images; rows whose images cannot be found or read become errors."""
    rows = []
    for row in track(table.to_dict("records"), "resolving ROI crops"):
        try:
            roi = resolver.resolve(row)
        except RowProblem as problem:
            result.error(problem.kind, problem.message, source=row["source_file"],
                         row=row["source_row"], path=problem.path)
            continue
        rows.append({**row, "image_path": str(roi.crop),
                     "mask_path": str(roi.mask) if roi.mask else "",
                     "full_image_path": str(roi.full) if roi.full else "",
                     "crop_height": roi.crop_shape[0], "crop_width": roi.crop_shape[1]})
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return frame
    frame = frame.drop(columns=_PATH_COLUMNS)
    frame["case_id"] = (frame["abnormality_type"].str.capitalize() + "-"
                        + frame["official_split"].map({"train": "Training", "test": "Test"}) + "_"
                        + frame["patient_id"] + "_" + frame["laterality"] + "_" + frame["view"]
                        + "_" + frame["abnormality_id"].astype(str))
    frame["lesion_id"] = link_lesions(frame)
    linked = frame["lesion_id"].duplicated(keep=False)
    result.count("ROIs ingested", len(frame))
    result.note(f"lesion_id: {int(linked.sum())} of {len(frame)} ROIs are the two views of one "
                "lesion (linked only when unambiguous: one abnormality per view of the breast, "
                "same pathology); the others are one lesion per view")
    return frame


@register_source("cbis-ddsm", "CBIS-DDSM as downloaded from TCIA (DICOM, either folder naming)")
def ingest_cbis_ddsm(root: Path, config: DataConfig, *, out_dir: Path | None = None,
                     csv_dir: Path | None = None, abnormality: str = "mass") -> IngestResult:
    """CBIS-DDSM TCIA download under ``root`` -> manifest rows (``split``: official train/test).

    ``out_dir`` is unused (nothing is written); ``abnormality`` is mass, calc or all.
    """
    result = IngestResult(dataset=DATASET)
    table = load_case_table(find_case_csvs(root, csv_dir, abnormality, result), config, result)
    if table.empty:
        return result
    result.frame = _ingest_rows(table, TCIAResolver(root), result)
    return result


DICOM_INFO_COLUMNS = ["image_path", "SeriesInstanceUID", "SeriesDescription", "Rows", "Columns"]


@register_source("cbis-ddsm-jpeg",
                 "CBIS-DDSM JPEG re-export (csv/dicom_info.csv + jpeg/<SeriesInstanceUID>/)")
def ingest_cbis_ddsm_jpeg(root: Path, config: DataConfig, *, out_dir: Path | None = None,
                          csv_dir: Path | None = None, abnormality: str = "mass") -> IngestResult:
    """The JPEG re-export under ``root`` (``csv/`` + ``jpeg/``) -> manifest rows."""
    result = IngestResult(dataset=DATASET)
    csv_folder = csv_dir if csv_dir is not None else root / "csv"
    info_path = csv_folder / "dicom_info.csv"
    if not info_path.is_file():
        raise DatasetError(f"{info_path} not found: the JPEG re-export keeps dicom_info.csv in "
                           "csv/ (or give the folder with --csv-dir)")
    info = pd.read_csv(info_path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in DICOM_INFO_COLUMNS if c not in info.columns]
    if missing:
        raise DatasetError(f"{info_path}: missing column(s) {', '.join(missing)}")
    for column in ("Rows", "Columns"):
        info[column] = pd.to_numeric(info[column], errors="coerce")
    info = info.dropna(subset=["image_path", "SeriesInstanceUID", "Rows", "Columns"])
    info = info.astype({"Rows": int, "Columns": int})
    table = load_case_table(find_case_csvs(root, csv_folder, abnormality, result), config, result)
    if table.empty:
        return result
    result.frame = _ingest_rows(table, JPEGResolver(root, info), result)
    return result
