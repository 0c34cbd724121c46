"""Helpers for the data tests: small CBIS-DDSM trees at the paths real CSV rows name, and a
synthetic CBIS-DDSM."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammohybrid.data.cbis_ddsm_csv import CSV_COLUMNS, case_csv_name
from mammohybrid.imaging import write_dicom

FULL_SHAPE = (260, 180)  # small "full mammograms": the mask has this size, the crop less


def crop_image(seed: int, shape: tuple[int, int] = (64, 48)) -> np.ndarray:
    """A non-binary 16-bit crop."""
    return np.random.default_rng(seed).integers(20000, 60000, shape).astype(np.uint16)


def mask_image(seed: int) -> np.ndarray:
    """A binary 8-bit full-size mask."""
    mask = np.zeros(FULL_SHAPE, np.uint8)
    row = 20 + seed % 100
    mask[row:row + 40, 30:70] = 255
    return mask


def disk_path(csv_path: str, descriptive: bool, description: str) -> str:
    """Where a CSV path's file sits in a download with the old or the descriptive naming."""
    case, study, series, name = csv_path.strip().split("/")
    if not descriptive:
        return f"{case}/{study}/{series}/{name}"
    number = int(name.split(".")[0]) + 1
    return (f"{case}/07-20-2016-DDSM-NA-{study[-5:]}/1.000000-{description}-{series[-5:]}/"
            f"1-{number}.dcm")


def write_case_files(root: Path, row: dict[str, str], seed: int, descriptive: bool = False,
                     swap_content: bool = False) -> dict[str, Path]:
    """Write the full mammogram, crop and mask a CSV row names (``swap_content``: the crop's
    CSV path holds the mask and vice versa, as in some real rows)."""
    crop_csv, mask_csv = row["cropped image file path"], row["ROI mask file path"]
    shared = crop_csv.strip().split("/")[2] == mask_csv.strip().split("/")[2]
    crop_target, mask_target = (mask_csv, crop_csv) if swap_content else (crop_csv, mask_csv)
    crop_description = "ROI mask images" if shared else "cropped images"
    paths = {
        "full": root / disk_path(row["image file path"], descriptive, "full mammogram images"),
        "crop": root / disk_path(crop_target, descriptive, crop_description),
        "mask": root / disk_path(mask_target, descriptive, "ROI mask images"),
    }
    write_dicom(paths["full"], crop_image(seed, FULL_SHAPE), transfer_syntax="rle")
    write_dicom(paths["crop"], crop_image(seed), bits_stored=12, transfer_syntax="rle")
    write_dicom(paths["mask"], mask_image(seed), transfer_syntax="rle")
    return paths


def write_case_csv(folder: Path, rows: list[dict[str, str]], abnormality: str = "mass",
                   split: str = "train") -> Path:
    """A case CSV with the real header and the given rows."""
    path = folder / case_csv_name(abnormality, split)
    pd.DataFrame(rows, columns=CSV_COLUMNS[abnormality]).to_csv(path, index=False)
    return path


def real_rows(csv_dir: Path, abnormality: str, split: str, patients: list[str]
              ) -> list[dict[str, str]]:
    """The rows of the real CSV for some patients (read from ../shared, never copied)."""
    table = pd.read_csv(csv_dir / case_csv_name(abnormality, split), dtype=str,
                        keep_default_na=False)
    return table[table["patient_id"].isin(patients)].to_dict("records")


@pytest.fixture(scope="session")
def synthetic_cbis_ddsm(tmp_path_factory) -> Path:
    """A 10-patient synthetic CBIS-DDSM (written once per test process)."""
    from mammohybrid.data.synth import generate_cbis_ddsm

    root = tmp_path_factory.mktemp("synth")
    generate_cbis_ddsm(root, patients=10, seed=4)
    return root


@pytest.fixture
def synthetic_row():
    """A CSV row in the real style for a made-up patient (no ../shared needed)."""

    def make(patient: str = "P_00001", side: str = "LEFT", view: str = "CC",
             abnormality_id: int = 1, pathology: str = "MALIGNANT", split: str = "Training",
             shared: bool = True) -> dict[str, str]:
        case = f"Mass-{split}_{patient}_{side}_{view}"
        uids = [f"1.3.6.1.4.1.9590.100.1.2.{k}{zlib.crc32(case.encode())}"
                for k in range(4)]
        crop_series = uids[2]
        mask_series = uids[2] if shared else uids[3]
        return {"patient_id": patient, "breast_density": "2", "left or right breast": side,
                "image view": view, "abnormality id": str(abnormality_id),
                "abnormality type": "mass", "mass shape": "OVAL", "mass margins": "SPICULATED",
                "assessment": "4", "pathology": pathology, "subtlety": "4",
                "image file path": f"{case}/{uids[0]}/{uids[1]}/000000.dcm",
                "cropped image file path": f"{case}_{abnormality_id}/{uids[0]}9/{crop_series}/"
                                           "000000.dcm",
                "ROI mask file path": f"{case}_{abnormality_id}/{uids[0]}9/{mask_series}/"
                                      f"{'000001' if shared else '000000'}.dcm\n"}

    return make
