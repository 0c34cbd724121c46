"""Synthetic CBIS-DDSM: the ROI crops, their preview, the dataset's determinism and the real
ingest reading it back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mammohybrid.config import DataConfig, PreprocessConfig
from mammohybrid.data.cbis_ddsm import ingest_cbis_ddsm
from mammohybrid.data.cbis_ddsm_tcia import is_binary
from mammohybrid.data.lesion_renderer import ROI_THRESHOLD_FRACTION
from mammohybrid.data.synth import generate_cbis_ddsm, render_roi_crop, sample_grid
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_same_seed_same_bytes(tmp_path):
    summary = generate_cbis_ddsm(tmp_path / "first", patients=3, seed=4)
    first = _digest(tmp_path / "first")
    assert summary.patients == 3 and summary.files == len(first)
    generate_cbis_ddsm(tmp_path / "again", patients=3, seed=4)
    assert _digest(tmp_path / "again") == first
    generate_cbis_ddsm(tmp_path / "other", patients=3, seed=5)
    assert _digest(tmp_path / "other") != first


@pytest.mark.xdist_group("synthetic_cbis_ddsm")
def test_the_real_ingest_reads_it_back(synthetic_cbis_ddsm):
    result = ingest_cbis_ddsm(synthetic_cbis_ddsm, DataConfig())
    assert result.errors == []
    frame = result.frame
    rows = sum(len(pd.read_csv(p)) for p in synthetic_cbis_ddsm.glob("mass_case_*.csv"))
    assert len(frame) == rows
    for path, mask in zip(frame["image_path"][:8], frame["mask_path"][:8], strict=True):
        assert not is_binary(read_image(path)) and is_binary(read_image(mask))
    assert set(frame["label"]) == {0, 1}
