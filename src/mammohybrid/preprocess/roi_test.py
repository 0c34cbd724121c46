import cv2
import numpy as np
import pytest

from mammohybrid.config import ROIConfig
from mammohybrid.errors import EmptyROIError, InvalidImageError
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.roi import ROIThreshold


def test_fixed_threshold_is_the_papers_mask_times_image():
    image = np.array([[0, 193], [194, 255]], np.uint8)
    record = Record()
    out = ROIThreshold()(image, record)
    np.testing.assert_array_equal(out, [[0, 0], [194, 255]])
    assert record.kept_fraction == 0.5 and not record.roi_empty
    assert record.roi_threshold == 193.0


def test_fixed_threshold_matches_opencv_tozero_on_random_images():
    image = np.random.default_rng(0).integers(0, 256, (64, 80), dtype=np.uint8)
    record = Record()
    out = ROIThreshold(ROIConfig(threshold=120))(image, record)
    _, reference = cv2.threshold(image, 120, 0, cv2.THRESH_TOZERO)
    np.testing.assert_array_equal(out, reference)
    np.testing.assert_array_equal(out, (image > 120) * image)
    assert record.kept_fraction == pytest.approx(np.mean(image > 120))


def test_percentile_keeps_the_brightest_part():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    record = Record()
    out = ROIThreshold(mode="percentile", percentile=50)(image, record)
    assert record.roi_threshold == pytest.approx(49.5)
    assert record.kept_fraction == 0.5
    np.testing.assert_array_equal(out, np.where(image >= 50, image, 0))


def test_otsu_splits_a_bimodal_image():
    rng = np.random.default_rng(1)
    image = np.concatenate([rng.normal(60, 5, 600), rng.normal(180, 5, 400)])
    image = np.clip(image, 0, 255).astype(np.uint8).reshape(50, 20).T.copy()
    record = Record()
    out = ROIThreshold(mode="otsu")(image, record)
    # Any level between the two modes separates them; OpenCV returns the lowest such level.
    assert image[:, :30].max() <= record.roi_threshold < image[:, 30:].min()
    assert record.kept_fraction == pytest.approx(0.4)
    np.testing.assert_array_equal(out > 0, image > record.roi_threshold)


def test_off_passes_through():
    image = np.array([[0, 10], [20, 30]], np.uint8)
    record = Record()
    np.testing.assert_array_equal(ROIThreshold(mode="off")(image, record), image)
    assert record.kept_fraction == 1.0 and record.roi_threshold is None and not record.roi_empty


_DARK = np.full((8, 8), 150, np.uint8)


def test_empty_mask_keep_gives_the_papers_black_image():
    record = Record()
    out = ROIThreshold()(_DARK, record)
    np.testing.assert_array_equal(out, np.zeros_like(_DARK))
    assert record.roi_empty and record.kept_fraction == 0.0
    assert "ROI empty" in record.warnings[0] and "keep" in record.warnings[0]


def test_empty_mask_fallback_gives_the_unmasked_image():
    record = Record()
    out = ROIThreshold(empty_policy="fallback")(_DARK, record)
    np.testing.assert_array_equal(out, _DARK)
    assert record.roi_empty and record.kept_fraction == 0.0
    assert "fallback" in record.warnings[0]


def test_empty_mask_otsu_rethresholds_the_dark_lesion():
    # A dark lesion (120) on darker tissue (40): nothing above 193, Otsu's threshold splits them.
    image = np.full((10, 10), 40, np.uint8)
    image[3:7, 3:7] = 120
    record = Record()
    out = ROIThreshold(empty_policy="otsu")(image, record)
    np.testing.assert_array_equal(out, np.where(image > 40, image, 0))
    assert record.roi_empty and record.kept_fraction == 0.0  # counted as the paper's mask
    assert "otsu" in record.warnings[0] and "kept 16.0%" in record.warnings[0]


def test_empty_mask_otsu_on_a_flat_image_stays_black():
    record = Record()
    out = ROIThreshold(empty_policy="otsu")(_DARK, record)
    np.testing.assert_array_equal(out, np.zeros_like(_DARK))
    assert "separates nothing" in record.warnings[0]


def test_empty_mask_error_policy_raises():
    with pytest.raises(EmptyROIError, match="no pixel above 193"):
        ROIThreshold(empty_policy="error")(_DARK)


def test_works_without_a_record_and_needs_uint8():
    assert ROIThreshold()(np.full((2, 2), 200, np.uint8)).sum() == 800
    with pytest.raises(InvalidImageError, match="roi"):
        ROIThreshold()(np.full((2, 2), 200, np.uint16))
