"""The synthetic lesion renderer and the synthetic CBIS-DDSM dataset."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mammohybrid.config import DataConfig, PreprocessConfig
from mammohybrid.data.cbis_ddsm import CSV_COLUMNS, ingest_cbis_ddsm, is_binary
from mammohybrid.data.synth import (
    ROI_THRESHOLD_FRACTION,
    generate_cbis_ddsm,
    power_law_noise,
    render_roi_crop,
    sample_grid,
)
from mammohybrid.imaging import read_image

THRESHOLD_16 = ROI_THRESHOLD_FRACTION * 65535


def _solidity(mask: np.ndarray) -> float:
    """Area / convex-hull area of the largest blob (1 for convex shapes, lower for spiculated)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    if not contours:
        return 0.0
    blob = max(contours, key=cv2.contourArea)
    hull = cv2.contourArea(cv2.convexHull(blob))
    return cv2.contourArea(blob) / hull if hull else 0.0


def test_render_roi_crop_shape_dtype_and_determinism():
    crop = render_roi_crop(np.random.default_rng(5), 150, malignant=True, aspect=1.0)
    assert crop.dtype == np.uint16 and crop.shape == (150, 150)
    again = render_roi_crop(np.random.default_rng(5), 150, malignant=True, aspect=1.0)
    np.testing.assert_array_equal(crop, again)
    wide = render_roi_crop(np.random.default_rng(5), 100, malignant=False, aspect=1.5)
    assert wide.shape == (100, 150)
    with pytest.raises(TypeError, match="colour"):
        render_roi_crop(np.random.default_rng(0), 100, False, colour=3)


def test_power_law_noise_has_the_asked_spectrum_slope():
    field = power_law_noise(np.random.default_rng(0), (256, 256), beta=3.0)
    assert abs(field.mean()) < 1e-5 and abs(field.std() - 1) < 1e-4
    power = np.abs(np.fft.fft2(field)) ** 2
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256)))
    bands = [(0.02, 0.04), (0.16, 0.32)]
    mean_power = [power[(freq >= lo) & (freq < hi)].mean() for lo, hi in bands]
    # 1/f^3: a band 8x higher in frequency has about 8^3 = 512x less power
    assert 200 < mean_power[0] / mean_power[1] < 1300


def test_mass_is_above_the_papers_threshold_and_tissue_below():
    rng = np.random.default_rng(1)
    for malignant in (False, True):
        for _ in range(10):
            crop = render_roi_crop(rng, 200, malignant, aspect=1.0, faint=False,
                                   offset=(0.0, 0.0))
            smooth = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2)
            assert np.mean(smooth[90:110, 90:110] > THRESHOLD_16) > 0.95  # the mass centre
            border = np.concatenate([smooth[:12].ravel(), smooth[-12:].ravel()])
            assert np.mean(border > THRESHOLD_16) < 0.2  # tissue mostly below


def test_faint_lesions_stay_below_the_fixed_threshold():
    rng = np.random.default_rng(2)
    for malignant in (False, True):
        crop = render_roi_crop(rng, 200, malignant, faint=True)
        smooth = cv2.GaussianBlur(crop.astype(np.float32), (0, 0), 2)
        assert np.mean(smooth > THRESHOLD_16) < 0.001


def test_margin_shape_separates_the_classes_after_the_papers_chain():
    """The benign/malignant cue survives NLM -> ROI(193) -> median: the solidity of the kept
    region alone separates the classes, while size and contrast overlap."""
    from mammohybrid.preprocess.chain import build_chain

    chain = build_chain(PreprocessConfig(strategy="median"))
    rng = np.random.default_rng(3)
    solidity, labels, kept = [], [], []
    for index in range(40):
        malignant = index % 2 == 1
        size = int(rng.integers(120, 220))
        steps, record = chain.intermediates(render_roi_crop(rng, size, malignant, faint=False))
        after_median = dict(steps)["median"]
        solidity.append(_solidity(after_median > 0))
        labels.append(malignant)
        kept.append(record.kept_fraction)
    assert roc_auc_score(labels, -np.array(solidity)) > 0.95
    kept = np.array(kept)
    labels = np.array(labels)
    # the kept area overlaps between classes: size is not the cue
    assert kept[labels].min() < np.median(kept[~labels]) < kept[labels].max()


def test_sample_grid_is_an_8_bit_preview():
    grid = sample_grid(seed=0, per_class=3, rows_per_class=1, tile=50)
    assert grid.dtype == np.uint8 and grid.shape == (2 * (28 + 50), 150)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    summary = generate_cbis_ddsm(root, patients=10, seed=4)
    assert summary.patients == 10 and summary.files == len(_digest(root))
    return root


def test_same_seed_same_bytes(synthetic_dataset, tmp_path):
    generate_cbis_ddsm(tmp_path / "again", patients=10, seed=4)
    assert _digest(tmp_path / "again") == _digest(synthetic_dataset)
    generate_cbis_ddsm(tmp_path / "other", patients=10, seed=5)
    assert _digest(tmp_path / "other") != _digest(synthetic_dataset)


def test_csvs_have_the_real_columns_and_value_styles(synthetic_dataset):
    train = synthetic_dataset / "mass_case_description_train_set.csv"
    raw = train.read_bytes()
    assert raw.startswith(",".join(CSV_COLUMNS["mass"]).encode() + b"\r\n")
    assert b'000001.dcm\n"' in raw  # the quoted trailing newline of the real files
    frames = {split: pd.read_csv(synthetic_dataset / f"mass_case_description_{split}_set.csv",
                                 dtype=str) for split in ("train", "test")}
    assert not set(frames["train"]["patient_id"]) & set(frames["test"]["patient_id"])
    rows = pd.concat(frames.values())
    assert rows["patient_id"].str.fullmatch(r"P_\d{5}").all()
    assert set(rows["pathology"]) <= {"MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"}
    assert set(rows["image view"]) == {"CC", "MLO"}
    assert set(rows["left or right breast"]) == {"LEFT", "RIGHT"}
    assert set(rows["abnormality type"]) == {"mass"}
    path = re.compile(r"^Mass-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)(_\d)?/"
                      r"1\.3\.6\.1\.4\.1\.9590\.100\.1\.2\.\d+/1\.3\.6\.1\.4\.1\.9590\.100\.1\.2"
                      r"\.\d+/00000[01]\.dcm\n?$")
    for column in ("image file path", "cropped image file path", "ROI mask file path"):
        assert rows[column].str.match(path).all(), column
    assert rows.groupby("patient_id").size().max() > 1  # several ROIs per patient


@pytest.mark.shared
def test_csv_header_is_the_real_one(synthetic_dataset, cbis_csv_dir):
    for split in ("train", "test"):
        name = f"mass_case_description_{split}_set.csv"
        with open(cbis_csv_dir / name, newline="") as real, \
                open(synthetic_dataset / name, newline="") as ours:
            assert next(csv.reader(ours)) == next(csv.reader(real))


def test_dicom_tree_mixes_the_real_variants(synthetic_dataset):
    import pydicom

    files = sorted((synthetic_dataset / "CBIS-DDSM").rglob("*.dcm"))
    names = {p.name for p in files}
    assert {"000000.dcm", "000001.dcm", "1-1.dcm", "1-2.dcm"} <= names  # both namings
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    crops = [h for h in headers if h.BitsAllocated == 16 and h.Rows * h.Columns < 600 * 600]
    assert sum(h.PhotometricInterpretation == "MONOCHROME1" for h in crops) == 1
    assert {int(h.BitsStored) for h in crops} == {12, 16}
    assert {h.file_meta.TransferSyntaxUID.name for h in crops} >= {
        "RLE Lossless", "Explicit VR Little Endian"}
    assert all(100 <= min(h.Rows, h.Columns) and max(h.Rows, h.Columns) <= 650 for h in crops)
    # PatientID is per view (as in CBIS-DDSM), e.g. Mass-Training_P_00012_LEFT_CC_1
    assert all(re.fullmatch(r"Mass-(Training|Test)_P_\d{5}_(LEFT|RIGHT)_(CC|MLO)(_\d)?",
                            str(h.PatientID)) for h in headers)


def test_the_real_ingest_reads_it_back(synthetic_dataset):
    result = ingest_cbis_ddsm(synthetic_dataset, DataConfig())
    assert result.errors == []
    frame = result.frame
    rows = sum(len(pd.read_csv(p)) for p in synthetic_dataset.glob("mass_case_*.csv"))
    assert len(frame) == rows
    for path, mask in zip(frame["image_path"][:8], frame["mask_path"][:8]):
        assert not is_binary(read_image(path)) and is_binary(read_image(mask))
    assert set(frame["label"]) == {0, 1}
