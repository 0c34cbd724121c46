"""Finding a CBIS-DDSM CSV row's files in a TCIA DICOM download (either folder naming).

- TCIA downloads use either the CSV's UID folders or descriptive names
  (``07-20-2016-DDSM-NA-74994/1.000000-ROI mask images-24515/1-1.dcm``); only the case folder
  (``Mass-Training_P_00001_LEFT_CC_1``, ROI folders end in ``_<abnormality id>``) is common to
  both. So every DICOM under the ROI's case folder is a candidate.
- The crop and the mask often share one series, and the CSV's crop/mask columns are sometimes
  swapped. So crop and mask are told apart **by content**: the crop is the smallest candidate
  whose pixels are not binary (it is decoded, which also proves it is readable); the mask is the
  largest other candidate (binary, the full mammogram's size). The CSV columns only say which
  case folder to look in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.data.cbis_ddsm_csv import ResolvedROI, csv_path_parts
from mammohybrid.data.sources import MISSING_FILE, NO_CROP, UNREADABLE_IMAGE, RowProblem
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import DecodedImage, decode_image

# Case folders: Mass-Training_P_00001_LEFT_CC (full mammogram) or ..._CC_1 (ROI 1).
CASE_FOLDER = re.compile(r"^(Mass|Calc)-(Training|Test)_P_\d+_(LEFT|RIGHT)_(CC|MLO)(_\d+)?$")


def is_binary(image: np.ndarray) -> bool:
    """True when the image holds at most two grey levels (a mask)."""
    low, high = image.min(), image.max()
    return bool(np.all((image == low) | (image == high)))


class TCIAResolver:
    """Finds a CSV row's crop, mask and full mammogram in a TCIA download (either naming)."""

    def __init__(self, root: Path, limits: LimitsConfig | None = None) -> None:
        self.root = root
        self.limits = limits
        self.case_files = _index_case_folders(root)

    def resolve(self, row: Mapping[str, str]) -> ResolvedROI:
        folders = []
        for column in ("cropped image file path", "ROI mask file path"):
            case = csv_path_parts(row, column)[0]
            if case not in folders:
                folders.append(case)
        candidates = sorted({f for case in folders for f in self.case_files.get(case, [])})
        if not candidates:
            raise RowProblem(MISSING_FILE, f"ROI folder {' / '.join(folders)} not found (or holds "
                             f"no DICOM file) under {self.root}", folders[0])
        crop, decoded, mask = pick_crop_and_mask(candidates, self.limits)
        return ResolvedROI(crop, mask, self._full_image(row), decoded.image.shape[:2],
                           decoded.pixel_spacing_mm)

    def _full_image(self, row: Mapping[str, str]) -> Path | None:
        """The full mammogram: recorded when its case folder holds exactly one DICOM."""
        try:
            case = csv_path_parts(row, "image file path")[0]
        except RowProblem:  # the full image is not needed: a bad path only loses the record
            return None
        files = self.case_files.get(case, [])
        return files[0] if len(files) == 1 else None


def is_dicom_name(name: str) -> bool:
    """True for the file names the download's DICOM files have (``1-1.dcm``)."""
    return name.lower().endswith(".dcm")


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
        dicoms = [name for name in filenames if is_dicom_name(name)]
        if not dicoms:
            continue
        parts = Path(dirpath).relative_to(root).parts
        case = next((p for p in reversed(parts) if CASE_FOLDER.match(p)), None)
        if case is not None:
            index.setdefault(case, []).extend(Path(dirpath) / name for name in sorted(dicoms))
    return index


def pick_crop_and_mask(candidates: list[Path], limits: LimitsConfig | None = None,
                       ) -> tuple[Path, DecodedImage, Path | None]:
    """Tell the ROI crop from the mask by content (see the module doc), reading within
    ``limits``.

    Returns (crop path, the decoded crop, mask path or None). Raises :class:`RowProblem` when
    no candidate is a readable non-binary image.
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
            decoded = decode_image(path, limits)
        except ImageReadError as error:
            problems.append(str(error))
            continue
        if not is_binary(decoded.image):
            others = [p for p in ordered if p != path]
            return path, decoded, (others[-1] if others else None)
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
