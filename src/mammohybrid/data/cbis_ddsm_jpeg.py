"""Finding a CBIS-DDSM CSV row's files in the popular JPEG re-export.

The re-export (``csv/dicom_info.csv`` + ``jpeg/<SeriesInstanceUID>/1-NNN.jpg``) is reached
through the series UIDs in the CSV paths; ``SeriesDescription`` (cropped images / ROI mask
images) tells crop from mask, and where it is missing the image size does: the mask has the
full mammogram's size, the crop is smaller.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from mammohybrid.config import LimitsConfig
from mammohybrid.data.cbis_ddsm_csv import ResolvedROI, csv_path_parts
from mammohybrid.data.sources import (
    MISSING_FILE,
    MISSING_VALUE,
    NO_CROP,
    UNREADABLE_IMAGE,
    RowProblem,
    safe_join,
)
from mammohybrid.errors import DatasetError, ImageReadError
from mammohybrid.fileio import not_a_regular_file
from mammohybrid.imaging import read_image

DICOM_INFO_COLUMNS = ["image_path", "SeriesInstanceUID", "SeriesDescription", "Rows", "Columns"]
DICOM_INFO_NAME = "dicom_info.csv"
# The re-export's image files.
JPEG_SUFFIXES = (".jpg", ".jpeg")


def read_dicom_info(path: Path) -> pd.DataFrame:
    """``dicom_info.csv``: the rows with an image path, a series UID and a numeric size."""
    if not path.is_file():
        raise DatasetError(f"{path} not found: the JPEG re-export keeps dicom_info.csv in "
                           "csv/ (or give the folder with --csv-dir)")
    info = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in DICOM_INFO_COLUMNS if c not in info.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
    for column in ("Rows", "Columns"):
        info[column] = pd.to_numeric(info[column], errors="coerce")
    info = info.dropna(subset=["image_path", "SeriesInstanceUID", "Rows", "Columns"])
    return info.astype({"Rows": int, "Columns": int})


class JPEGResolver:
    """Finds a CSV row's crop and mask in the JPEG re-export through ``dicom_info.csv``."""

    def __init__(self, root: Path, dicom_info: pd.DataFrame,
                 limits: LimitsConfig | None = None) -> None:
        self.root = root
        self.limits = limits
        self.by_series = {uid: group for uid, group in dicom_info.groupby("SeriesInstanceUID")}

    def resolve(self, row: Mapping[str, str]) -> ResolvedROI:
        series = []
        for column in ("cropped image file path", "ROI mask file path"):
            parts = csv_path_parts(row, column)
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
            image = read_image(crop, self.limits)
        except ImageReadError as error:
            raise RowProblem(UNREADABLE_IMAGE, str(error), crop) from None
        return ResolvedROI(crop, self._optional_path(mask_entry),
                           self._optional_path(self._full_entry(row)), image.shape)

    def _full_uid(self, row: Mapping[str, str]) -> str | None:
        try:
            parts = csv_path_parts(row, "image file path")
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
        problem = not_a_regular_file(path)
        if problem is not None:
            raise RowProblem(UNREADABLE_IMAGE if path.exists() else MISSING_FILE,
                             f"{path}: {problem}", path)
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
