"""Plain folders or a user CSV -> manifest rows.

Accepted layouts (class and split folder names are case-insensitive):

- ``ROOT/benign/*``, ``ROOT/malignant/*`` (also ``benign_without_callback/``);
- ``ROOT/<split>/<class>/*`` with split ``train``, ``val`` (``valid``, ``validation``) or
  ``test``: splits given this way are kept, missing ones are carved from train;
- a CSV file given as ROOT, with a path column (``image_path``, ``path``, ``file``,
  ``filename`` or ``image``), a label column (``label``, ``class`` or ``pathology``: 0/1,
  benign/malignant, B/M) and a patient column (``patient_id`` or ``patient``); optional
  ``split`` (a blank cell: train, from which val/test are carved when no row names them),
  ``lesion_id`` and ``pixel_spacing_mm`` (millimetres per pixel; a blank cell: unknown).
  Paths are relative to the CSV's folder; an image that is a symbolic link to a file outside
  the CSV's folder (or ROOT) is refused unless ``follow_links``.

Patients: in the folder layouts, images in a sub-folder of a class folder
(``ROOT/benign/<patient>/x.png``) belong to that patient; an image directly in a class folder
is its own patient (the summary says how many), which is only right if every image comes from
a different woman. Such a patient is named by the image's path under ROOT without suffix
(``benign/001``), never by the file name alone: datasets that number their files per class or
per split (``train/benign/1.png``, ``test/benign/1.png``) would otherwise merge unrelated images
into one patient, or into one that crosses splits. ``lesion_id`` is that path too.

Pixel spacing (``pixel_spacing_mm``, what ``preprocess.field_of_view_mm`` needs): the CSV's
column when it gives one, else a DICOM header's; otherwise the cell stays empty (unknown).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from mammohybrid.config import DataConfig, LimitsConfig
from mammohybrid.data.sources import (
    BAD_VALUE,
    DUPLICATE_ROW,
    MISSING_FILE,
    MISSING_VALUE,
    UNREADABLE_IMAGE,
    IngestResult,
    RowProblem,
    RowSource,
    register_source,
    safe_join,
)
from mammohybrid.errors import DatasetError, ImageReadError
from mammohybrid.fileio import InputTree
from mammohybrid.imaging import IMAGE_SUFFIXES, decode_image
from mammohybrid.progress import track

DATASET = "folder"
CLASS_FOLDERS = {"benign": "BENIGN", "malignant": "MALIGNANT",
                 "benign_without_callback": "BENIGN_WITHOUT_CALLBACK"}
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "test": "test", "testing": "test"}
# Accepted names of the user CSV's columns, in order of preference.
CSV_ALIASES = {
    "image_path": ("image_path", "path", "file", "filename", "image"),
    "label": ("label", "class", "pathology"),
    "patient_id": ("patient_id", "patient"),
    "split": ("split",),
    "lesion_id": ("lesion_id", "lesion"),
    "pixel_spacing_mm": ("pixel_spacing_mm", "spacing_mm", "pixel_spacing"),
}
REQUIRED = ("image_path", "label", "patient_id")


def _reads(root: Path, **_: object) -> list[Path | InputTree]:
    """The images under ``root``, or a CSV and the images in its folder (its rows name them;
    one with another suffix is refused once the rows are read)."""
    if root.is_file():
        return [root, InputTree(root.parent, _is_image_name)]
    return [InputTree(root, _is_image_name)]


def _is_image_name(path: Path) -> bool:
    """The files the class folders contribute: not hidden, an image suffix."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


@register_source("folder", "class folders (ROOT/benign, ROOT/malignant, optionally under "
                           "ROOT/<split>/) or a CSV with path, label and patient columns",
                 reads=_reads)
def ingest_folder(root: Path, config: DataConfig, *, out_dir: Path | None = None,
                  limits: LimitsConfig | None = None, follow_links: bool = False) -> IngestResult:
    """A folder layout or a user CSV (see the module doc) -> manifest rows, each image read
    within ``limits``. An image that is a symbolic link to a file outside ROOT is refused
    unless ``follow_links``."""
    result = IngestResult(dataset=DATASET)
    if root.is_file():
        entries = _entries_from_csv(root, result)
    else:
        entries = _entries_from_folders(root, result)
    rows = []
    # Each file once, however its path is written (./0.png and 0.png, a link to it): a second
    # mention with another label or split would put one image in two places.
    first_seen: dict[str, str] = {}
    for entry in track(entries, "checking images"):
        where: RowSource = {"source": entry.pop("source"), "row": entry.pop("row")}
        written = str(entry.pop("path"))
        try:
            path = safe_join(entry.pop("root"), written, follow_links)
            first = first_seen.setdefault(os.path.realpath(path), _mention(written, where))
            if first != _mention(written, where):
                # Said this way because the first row may itself be rejected later.
                raise RowProblem(DUPLICATE_ROW, f"duplicate path {written} (the same file as "
                                 f"{first}; only that one is considered)", written)
            decoded = decode_image(path, limits)
            spacing = _spacing(entry.pop("pixel_spacing_mm", ""), path) \
                or decoded.pixel_spacing_mm
        except RowProblem as problem:
            result.error(problem.kind, problem.message, path=problem.path, **where)
            continue
        except ImageReadError as error:
            kind = UNREADABLE_IMAGE if path.exists() else MISSING_FILE
            result.error(kind, str(error), path=path, **where)
            continue
        label = result.label_for(entry["pathology"], config, path=path, **where)
        if label is None:
            continue
        rows.append({"image_path": str(path), "label": label, **entry, "dataset": DATASET,
                     "height": decoded.image.shape[0], "width": decoded.image.shape[1],
                     "pixel_spacing_mm": spacing})
    result.count("images ingested", len(rows))
    result.frame = pd.DataFrame.from_records(rows)
    return result


def _spacing(text: object, path: Path) -> float | None:
    """A CSV cell's pixel spacing in mm (blank: None); anything but a positive number is
    refused."""
    if not str(text).strip():
        return None
    try:
        value = float(str(text))
    except ValueError:
        value = float("nan")
    if not 0 < value <= 10:
        raise RowProblem(BAD_VALUE, f"pixel_spacing_mm '{text}' is not a spacing in mm "
                         "(a number above 0 and at most 10)", path)
    return value


def _mention(path: str, where: RowSource) -> str:
    """How an entry names its file, for a duplicate's message: the path, and its CSV row."""
    return f"{path} on row {where['row']}" if where["row"] is not None else path


def _entries_from_folders(root: Path, result: IngestResult) -> list[dict[str, Any]]:
    """One entry per image file in the class folders (directly under ROOT or under splits)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if any(name in CLASS_FOLDERS for name in children):
        layout: list[tuple[str | None, Path]] = [(None, root)]
    else:
        layout = [(SPLIT_NAMES[name], path) for name, path in sorted(children.items())
                  if name in SPLIT_NAMES]
    if not layout:
        raise DatasetError(f"{root}: expected class folders ({', '.join(CLASS_FOLDERS)}), "
                           f"optionally inside split folders (train, val, test), or a CSV file")
    entries = []
    loose = 0
    for split, base in layout:
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            pathology = CLASS_FOLDERS.get(class_dir.name.lower())
            if pathology is None:
                result.note(f"ignored folder {class_dir} (not a class name)")
                continue
            for file in sorted(class_dir.rglob("*")):
                if not file.is_file() or file.name.startswith("."):
                    continue
                if not _is_image_name(file):
                    result.count("skipped: files that are not images")
                    continue
                image_id = file.relative_to(root).with_suffix("").as_posix()
                relative = file.relative_to(class_dir)
                if len(relative.parts) > 1:
                    patient = relative.parts[0]
                else:
                    patient, loose = image_id, loose + 1
                entries.append({"root": root, "path": str(file.relative_to(root)),
                                "source": class_dir, "row": None, "pathology": pathology,
                                "patient_id": patient, "split": split, "lesion_id": image_id})
    if loose:
        result.note(f"{loose} image(s) lie directly in a class folder: each is counted as its "
                    "own patient (put one patient's images in a sub-folder to group them)")
    if all(entry["split"] is None for entry in entries):
        for entry in entries:
            del entry["split"]
    return entries


def _entries_from_csv(path: Path, result: IngestResult) -> list[dict[str, Any]]:
    """One entry per row of a user CSV (see the module doc for its columns)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: not a readable CSV ({error})") from None
    lower = {c.strip().lower(): c for c in table.columns}
    columns = {}
    for name, aliases in CSV_ALIASES.items():
        found = next((lower[a] for a in aliases if a in lower), None)
        if found is not None:
            columns[name] = found
    missing = [f"{name} (one of {', '.join(CSV_ALIASES[name])})" for name in REQUIRED
               if name not in columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {'; '.join(missing)}")
    entries = []
    for number, row in enumerate(table.to_dict("records"), start=1):
        where: RowSource = {"source": path, "row": number}
        values = {name: str(row[column]).strip() for name, column in columns.items()}
        empty = [name for name in REQUIRED if not values[name]]
        if empty:
            result.error(MISSING_VALUE, f"empty value(s) in {', '.join(empty)}", **where)
            continue
        entry: dict[str, Any] = {"root": path.parent, "path": values["image_path"], **where,
                                    "pathology": values["label"],
                                    "patient_id": values["patient_id"],
                                    "lesion_id": values.get("lesion_id") or
                                    Path(values["image_path"]).with_suffix("").as_posix()}
        if "pixel_spacing_mm" in values:
            entry["pixel_spacing_mm"] = values["pixel_spacing_mm"]
        if "split" in values:
            # A blank cell leaves the row unassigned: it joins train, from which val and test
            # are carved when no row names them (as when the column is absent).
            split = SPLIT_NAMES.get(values["split"].lower()) if values["split"] else "train"
            if split is None:
                result.error(BAD_VALUE, f"unknown split '{values['split']}' (expected train, "
                             "val, test or blank)", **where)
                continue
            if not values["split"]:
                result.count("rows without a split (taken as train)")
            entry["split"] = split
        entries.append(entry)
    return entries
