"""CBIS-DDSM -> manifest rows, from the TCIA DICOM download or the popular JPEG re-export.

The case CSVs are read by :mod:`~mammohybrid.data.cbis_ddsm_csv`; each row's crop, mask and
full mammogram are found by :mod:`~mammohybrid.data.cbis_ddsm_tcia` (DICOM download) or
:mod:`~mammohybrid.data.cbis_ddsm_jpeg` (JPEG re-export).

Patients are CBIS-DDSM's ``patient_id`` (``P_00001``), never the DICOM PatientID, which names
one view (``Mass-Training_P_00001_LEFT_CC_1``) and would leak. The official test split is kept.

``lesion_id``: CBIS-DDSM numbers abnormalities per image (``abnormality id`` restarts in every
view) and never states that a CC and an MLO row show the same lesion. Two views are linked
(one ``lesion_id`` for both) only when that is unambiguous: the breast has exactly one
abnormality of the type in its CC view and exactly one in its MLO view, with the same pathology.
Otherwise each row is its own lesion.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mammohybrid.config import DataConfig, LimitsConfig
from mammohybrid.data.cbis_ddsm_csv import (
    CASE_CSV_NAMES,
    DATASET,
    PATH_COLUMNS,
    find_case_csvs,
    load_case_table,
)
from mammohybrid.data.cbis_ddsm_jpeg import (
    DICOM_INFO_NAME,
    JPEG_SUFFIXES,
    JPEGResolver,
    read_dicom_info,
)
from mammohybrid.data.cbis_ddsm_tcia import TCIAResolver, is_dicom_name
from mammohybrid.data.sources import IngestResult, RowProblem, register_source
from mammohybrid.fileio import InputTree
from mammohybrid.progress import track


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
                     "crop_height": roi.crop_shape[0], "crop_width": roi.crop_shape[1],
                     "pixel_spacing_mm": roi.pixel_spacing_mm})
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return frame
    frame = frame.drop(columns=PATH_COLUMNS)
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


def _reads(root: Path, csv_dir: Path | None, images: Callable[[Path], bool],
           tables: frozenset[str]) -> list[Path | InputTree]:
    """A CBIS-DDSM tree under ``root`` (its ``images`` and the ``tables`` it looks for there)
    and the ``tables`` in ``csv_dir``."""
    trees: list[Path | InputTree] = [
        InputTree(root, lambda path: images(path) or path.name in tables)]
    if csv_dir is not None:
        trees.append(InputTree(csv_dir, lambda path: path.name in tables))
    return trees


def _tcia_reads(root: Path, csv_dir: Path | None = None, **_: object) -> list[Path | InputTree]:
    """The DICOM files under ``root`` and the case CSVs."""
    return _reads(root, csv_dir, lambda path: is_dicom_name(path.name), CASE_CSV_NAMES)


def _jpeg_reads(root: Path, csv_dir: Path | None = None, **_: object) -> list[Path | InputTree]:
    """The JPEG files under ``root``, ``dicom_info.csv`` and the case CSVs."""
    return _reads(root, csv_dir, lambda path: path.suffix.lower() in JPEG_SUFFIXES,
                  CASE_CSV_NAMES | {DICOM_INFO_NAME})


@register_source("cbis-ddsm", "CBIS-DDSM as downloaded from TCIA (DICOM, either folder naming)",
                 reads=_tcia_reads)
def ingest_cbis_ddsm(root: Path, config: DataConfig, *, out_dir: Path | None = None,
                     limits: LimitsConfig | None = None, csv_dir: Path | None = None,
                     abnormality: str = "mass") -> IngestResult:
    """CBIS-DDSM TCIA download under ``root`` -> manifest rows (``split``: official train/test).

    ``out_dir`` is unused (nothing is written); images are read within ``limits`` (default
    :class:`~mammohybrid.config.LimitsConfig`'s); ``abnormality`` is mass, calc or all.
    """
    result = IngestResult(dataset=DATASET)
    table = load_case_table(find_case_csvs(root, csv_dir, abnormality, result), config, result)
    if table.empty:
        return result
    result.frame = _ingest_rows(table, TCIAResolver(root, limits), result)
    return result


@register_source("cbis-ddsm-jpeg",
                 "CBIS-DDSM JPEG re-export (csv/dicom_info.csv + jpeg/<SeriesInstanceUID>/)",
                 reads=_jpeg_reads)
def ingest_cbis_ddsm_jpeg(root: Path, config: DataConfig, *, out_dir: Path | None = None,
                          limits: LimitsConfig | None = None, csv_dir: Path | None = None,
                          abnormality: str = "mass") -> IngestResult:
    """The JPEG re-export under ``root`` (``csv/`` + ``jpeg/``) -> manifest rows, its images
    read within ``limits``."""
    result = IngestResult(dataset=DATASET)
    csv_folder = csv_dir if csv_dir is not None else root / "csv"
    info = read_dicom_info(csv_folder / DICOM_INFO_NAME)
    table = load_case_table(find_case_csvs(root, csv_folder, abnormality, result), config, result)
    if table.empty:
        return result
    result.frame = _ingest_rows(table, JPEGResolver(root, info, limits), result)
    return result
