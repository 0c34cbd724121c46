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
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import Progress, TaskID

from mammohybrid.errors import ManifestError
from mammohybrid.fileio import atomic_open, not_a_regular_file
from mammohybrid.progress import in_blocks, progress_bar

REQUIRED_COLUMNS = ["image_path", "label", "patient_id", "split"]
STANDARD_COLUMNS = ["image_path", "label", "pathology", "patient_id", "lesion_id", "split",
                    "dataset"]
PATH_COLUMNS = ["image_path", "mask_path", "source_path", "full_image_path"]
SPLITS = ("train", "val", "test")
# Identifier columns are text even when they look like numbers (MIAS patient 1 vs "0001").
_TEXT_COLUMNS = {"patient_id", "lesion_id", "split", "dataset", "pathology", *PATH_COLUMNS}
# Manifests from this size on show their reading and checking as a progress bar: from here on
# the wait is long enough to notice (docs/preprocessing.md, "Large manifests").
PROGRESS_BYTES = 8 * 2**20


def read_manifest(path: str | os.PathLike[str], require_split: bool = True,
                  data_root: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read and validate a manifest; relative paths become absolute.

    The one validation every command that reads a manifest goes through; a
    :class:`ManifestError` names the file and the rows at fault: required columns, labels 0/1
    (an empty cell included), split values, patient ids, an ``image_path`` on every row that
    pre-processing did not mark failed, no patient in two splits, no image listed twice (paths
    compared with links resolved: ``./0.png`` is ``0.png``), and,
    with ``data_root``, every image inside it once symbolic links are resolved.
    """
    path = Path(path)
    require_manifest_file(path)
    # A large manifest takes a while to read and check: say so as it goes.
    with progress_bar(disable=path.stat().st_size < PROGRESS_BYTES) as bar:
        reading = bar.add_task(f"reading {path.name}", total=None)
        frame = _read_csv(path)
        bar.update(reading, total=len(frame), completed=len(frame))
        _check_columns(path, frame, require_split)
        columns = [c for c in PATH_COLUMNS if c in frame.columns]
        checking = bar.add_task(f"checking {path.name}'s paths",
                                total=len(frame) * (len(columns) + 1))
        resolve = _Resolver(path.resolve().parent)
        for column in columns:
            _refuse_rows(path, frame[column].str.contains("\0", regex=False, na=False),
                         frame[column], f"a NUL character in {column}")
        # Each image once, however it is written: ./0.png, 0.png and a link to it are one.
        listed = frame["image_path"].notna()
        real = _mapped(frame["image_path"], resolve.real, bar, checking)
        _refuse_rows(path, listed & real.duplicated(keep=False), frame["image_path"],
                     "the same image_path on more than one row")
        if data_root is not None:
            root = os.path.realpath(data_root)
            outside = listed & ~real[listed].map(lambda p: _inside(p, root))
            _refuse_rows(path, outside.astype(bool), real,
                         f"image outside the data root {root} (symbolic links resolved)")
        for column in columns:
            frame[column] = _mapped(frame[column], resolve.absolute, bar, checking)
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        # index_col=False: a row with one field too many must not turn a column into the
        # index; pandas then warns that it drops the extra field, which is refused here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS},
                               keep_default_na=False, na_values=[""], index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError,
            UnicodeDecodeError, ValueError, OverflowError) as error:
        raise ManifestError(f"{path}: not a readable CSV ({type(error).__name__}: "
                            f"{str(error).strip()[:200]})") from None


def _check_columns(path: Path, frame: pd.DataFrame, require_split: bool) -> None:
    """Required columns, labels (made integers), splits, patient ids, an image on every row
    not marked failed, no patient in two splits."""
    required = REQUIRED_COLUMNS if require_split else [c for c in REQUIRED_COLUMNS if c != "split"]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    _refuse_rows(path, labels.isna() | ~labels.isin([0, 1]), frame["label"],
                 "label must be 0 or 1")
    frame["label"] = labels.astype(int)
    if "split" in frame.columns:
        _refuse_rows(path, ~frame["split"].isin(SPLITS), frame["split"],
                     f"split must be one of {', '.join(SPLITS)}")
    _refuse_rows(path, frame["patient_id"].isna(), frame["patient_id"], "no patient_id")
    failed = (frame["status"].astype(str) == "error") if "status" in frame.columns else False
    _refuse_rows(path, frame["image_path"].isna() & ~failed, frame["image_path"],
                 "no image_path")
    if "split" in frame.columns:
        check_no_patient_leak(frame, str(path))


class _Resolver:
    """Paths of a manifest made absolute for many rows at a time: each folder is resolved
    once, and only a file that is itself a symbolic link costs a full resolution (resolving
    every row took most of a large manifest's reading time; figures in docs/preprocessing.md)."""

    def __init__(self, base: Path) -> None:
        self.base = str(base)
        self.folders: dict[str, str] = {}

    def absolute(self, value: object) -> object:
        """A relative path as ``str((base / value).resolve())``; an absolute one as written
        (pre-processed outputs are named after it)."""
        if not isinstance(value, str) or os.path.isabs(value):
            return value
        return self.real(value)

    def real(self, value: object) -> object:
        """``os.path.realpath(base / value)``; an empty cell as it is."""
        if not isinstance(value, str) or not value:
            return value
        joined = os.path.join(self.base, value)
        folder, name = os.path.split(joined)
        if name in ("", ".", ".."):
            return os.path.realpath(joined)
        real = self.folders.get(folder)
        if real is None:
            real = self.folders[folder] = os.path.realpath(folder)
        full = os.path.join(real, name)
        return os.path.realpath(full) if os.path.islink(full) else full


def _mapped(values: pd.Series, function: Callable[[Any], Any], bar: Progress,
            task: TaskID) -> pd.Series:
    """``values.map(function)``, advancing ``task`` of ``bar`` a block of rows at a time."""
    mapped = [function(value) for block in in_blocks(values.to_list(), bar, task)
              for value in block]
    return pd.Series(mapped, index=values.index, dtype=values.dtype)


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def require_manifest_file(path: Path) -> None:
    """Raise :class:`ManifestError` unless ``path`` is a regular file (a named pipe or a
    device is said to be one, not "not found")."""
    problem = not_a_regular_file(path)
    if problem is None:
        return
    if problem.startswith("no such file"):
        raise ManifestError(f"{path}: manifest not found")
    raise ManifestError(f"{path}: cannot be read as a manifest: it is {problem}")


def _refuse_rows(path: Path, bad: pd.Series | bool, values: pd.Series, problem: str) -> None:
    """Raise :class:`ManifestError` naming the first bad rows (1-based data rows, header not
    counted) and their values, if ``bad`` marks any."""
    if not isinstance(bad, pd.Series) or not bad.any():
        return
    rows = [int(i) for i in np.flatnonzero(bad.to_numpy())[:5]]
    cells = [values.iloc[i] for i in rows]
    shown = ", ".join(f"row {i + 1} ({'empty' if pd.isna(cell) else repr(str(cell))})"
                      for i, cell in zip(rows, cells, strict=True))
    more = f" and {int(bad.sum()) - len(rows)} more" if bad.sum() > len(rows) else ""
    raise ManifestError(f"{path}: {problem}: {shown}{more}")


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


def check_no_patient_leak(frame: pd.DataFrame, source: str = "") -> None:
    """Raise :class:`ManifestError` if any patient appears in more than one split."""
    splits_per_patient = frame.groupby("patient_id")["split"].nunique()
    leaking = splits_per_patient[splits_per_patient > 1]
    if len(leaking):
        examples = ", ".join(map(str, leaking.index[:5]))
        where = f"{source}: " if source else ""
        raise ManifestError(f"{where}patient leak: {len(leaking)} patient(s) appear in more "
                            f"than one split (e.g. {examples})")


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
