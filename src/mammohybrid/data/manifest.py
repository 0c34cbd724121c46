"""The manifest: one CSV row per lesion image, the contract between ingest, pre-processing,
training, evaluation and prediction.

Required columns: ``image_path``, ``label`` (0 benign, 1 malignant), ``patient_id``, ``split``
(train/val/test). Standard columns every ingest writes: ``pathology`` (the source's value),
``lesion_id``, ``dataset``. Other columns carry what the source knows (view, laterality,
shape, margins, mask path, crop geometry, fold, pre-processing statistics).

Paths are stored relative to the manifest's folder where possible and resolved to absolute
paths when read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mammohybrid.errors import ManifestError
from mammohybrid.fileio import atomic_open

REQUIRED_COLUMNS = ["image_path", "label", "patient_id", "split"]
STANDARD_COLUMNS = ["image_path", "label", "pathology", "patient_id", "lesion_id", "split",
                    "dataset"]
PATH_COLUMNS = ["image_path", "mask_path", "source_path", "full_image_path"]
SPLITS = ("train", "val", "test")
# Identifier columns are text even when they look like numbers (MIAS patient 1 vs "0001").
_TEXT_COLUMNS = {"patient_id", "lesion_id", "split", "dataset", "pathology", *PATH_COLUMNS}


def read_manifest(path: str | os.PathLike[str], require_split: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; relative paths become absolute."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    try:
        frame = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS}, keep_default_na=False,
                            na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a readable CSV ({error})") from None
    required = REQUIRED_COLUMNS if require_split else [c for c in REQUIRED_COLUMNS if c != "split"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        bad = frame.loc[labels.isna() | ~labels.isin([0, 1]), "label"].astype(str).unique()[:5]
        raise ManifestError(f"{path}: column label must be 0 or 1, found {', '.join(bad)}")
    frame["label"] = labels.astype(int)
    if "split" in frame.columns:
        bad_splits = sorted(set(frame["split"].dropna()) - set(SPLITS))
        if bad_splits or frame["split"].isna().any():
            raise ManifestError(f"{path}: column split must be one of {', '.join(SPLITS)}, "
                                f"found {', '.join(map(str, bad_splits)) or 'empty values'}")
    if frame["patient_id"].isna().any():
        raise ManifestError(f"{path}: {int(frame['patient_id'].isna().sum())} row(s) have no "
                            "patient_id")
    base = path.resolve().parent
    for column in PATH_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].map(lambda p: _absolute(p, base))
    return frame


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a manifest atomically: standard columns first, paths relative to its folder.

    Paths in ``frame`` are absolute or relative to the working directory."""
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"cannot write manifest {path}: missing column(s) {', '.join(missing)}")
    out = frame.copy()
    base = path.resolve().parent
    for column in PATH_COLUMNS:
        if column in out.columns:
            out[column] = out[column].map(lambda p: _relative(p, base))
    ordered = [c for c in STANDARD_COLUMNS if c in out.columns]
    out = out[ordered + [c for c in out.columns if c not in ordered]]
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        out.to_csv(handle, index=False)
    return path


def check_no_patient_leak(frame: pd.DataFrame) -> None:
    """Raise :class:`ManifestError` if any patient appears in more than one split."""
    splits_per_patient = frame.groupby("patient_id")["split"].nunique()
    leaking = splits_per_patient[splits_per_patient > 1]
    if len(leaking):
        examples = ", ".join(map(str, leaking.index[:5]))
        raise ManifestError(f"patient leak: {len(leaking)} patient(s) appear in more than one "
                            f"split (e.g. {examples})")


def usable_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a pre-processed manifest that training, evaluation and prediction may use
    (``status`` = ``ok``: pre-processing succeeded); a manifest without a ``status`` column is
    returned whole."""
    if "status" not in frame.columns:
        return frame
    return frame[frame["status"].astype(str) == "ok"].reset_index(drop=True)


def split_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Images, lesions and patients per split and class (rows: split x class, plus totals)."""
    lesion_key = "lesion_id" if "lesion_id" in frame.columns else "image_path"
    data = frame.assign(**{"class": frame["label"].map({0: "benign", 1: "malignant"})})
    rows = []
    for (split, cls), group in data.groupby(["split", "class"], sort=False):
        rows.append({"split": split, "class": cls, "images": len(group),
                     "lesions": group[lesion_key].nunique(),
                     "patients": group["patient_id"].nunique()})
    for split, group in data.groupby("split", sort=False):
        rows.append({"split": split, "class": "all", "images": len(group),
                     "lesions": group[lesion_key].nunique(),
                     "patients": group["patient_id"].nunique()})
    table = pd.DataFrame(rows, columns=["split", "class", "images", "lesions", "patients"])
    order = {s: i for i, s in enumerate(SPLITS)}
    table["_order"] = table["split"].map(lambda s: order.get(s, len(order)))
    table["_class_order"] = table["class"].map({"benign": 0, "malignant": 1, "all": 2})
    return (table.sort_values(["_order", "_class_order"])
            .drop(columns=["_order", "_class_order"]).reset_index(drop=True))


def _absolute(value: object, base: Path) -> object:
    if not isinstance(value, str) or not value:
        return value
    candidate = Path(value)
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _relative(value: object, base: Path) -> object:
    """A path of an in-memory frame (absolute, or relative to the working directory, as Python
    opens it) made relative to the manifest's folder ``base``."""
    if not isinstance(value, str) or not value:
        return value
    candidate = Path(value).absolute()
    value = str(candidate)
    try:
        relative = Path(os.path.relpath(candidate, base))
    except ValueError:  # another drive on Windows
        return value
    # A path that climbs far out of the manifest's folder is clearer (and as portable) absolute.
    if relative.parts[:3] == ("..", "..", ".."):
        return value
    return relative.as_posix()
