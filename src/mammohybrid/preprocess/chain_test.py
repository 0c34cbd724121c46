import pickle

import cv2
import numpy as np
import pytest

from mammohybrid.config import PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.errors import ConfigError, EmptyROIError, InvalidImageError
from mammohybrid.preprocess import chain as chain_module
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.chain import (
    build_chain,
    preprocess_image,
    preprocess_steps,
    register_strategy,
    strategy_names,
    strategy_steps,
)
from mammohybrid.preprocess.contrast import CLAHE
from mammohybrid.preprocess.denoise import NLMDenoise
from mammohybrid.preprocess.filters import MedianFilter, WienerFilter
from mammohybrid.preprocess.geometry import LimitSize, Resize
from mammohybrid.preprocess.intensity import ToUint8
from mammohybrid.preprocess.roi import ROIThreshold

CROP = render_roi_crop(np.random.default_rng(0), 300, malignant=True, faint=False)


@pytest.fixture
def registry(monkeypatch):
    """Isolate strategy registrations made by a test."""
    monkeypatch.setattr(chain_module, "_STRATEGIES", dict(chain_module._STRATEGIES))


def test_the_papers_strategies_and_the_others_are_registered():
    assert strategy_names() == ["median", "gaussian", "wiener", "none", "nlm-clahe", "custom"]
    for name in ("median", "gaussian", "wiener"):
        assert strategy_steps(PreprocessConfig(strategy=name)) == ["nlm", "roi", name, "clahe"]
    assert strategy_steps(PreprocessConfig(strategy="none")) == []
    custom = PreprocessConfig(strategy="custom", steps=["clahe", "nlm"])
    assert strategy_steps(custom) == ["clahe", "nlm"]


def test_every_chain_converts_first_and_resizes_last():
    assert build_chain(PreprocessConfig()).names == [
        "8-bit", "working size", "nlm", "roi", "median", "clahe", "resize"]
    assert build_chain(PreprocessConfig(strategy="none", working_max_side=None)).names == [
        "8-bit", "resize"]


def test_chain_is_the_composition_of_its_transforms():
    config = PreprocessConfig(strategy="wiener", working_max_side=200)
    record = Record()
    expected = CROP
    for step in (ToUint8(), LimitSize(200), NLMDenoise(), ROIThreshold(), WienerFilter(),
                 CLAHE(), Resize(229)):
        expected = step(expected, record)
    result = preprocess_image(CROP, config)
    np.testing.assert_array_equal(result.image, expected)
    assert result.kept_fraction == record.kept_fraction > 0
    assert result.nlm_h == record.nlm_h and result.roi_threshold == 193.0
    assert result.input_shape == CROP.shape and not result.roi_empty and result.warnings == []


@pytest.mark.parametrize("image", [
    CROP,  # 16-bit
    ToUint8()(CROP),  # 8-bit
    CROP.astype(np.float32) / 65535,  # float in [0, 1]
])
def test_any_input_type_gives_a_uint8_model_sized_image(image):
    result = preprocess_image(image)
    assert result.image.dtype == np.uint8 and result.image.shape == (229, 229)
    assert 0 < result.kept_fraction < 1


def test_16_bit_and_8_bit_inputs_agree():
    from_16 = preprocess_image(CROP).image.astype(int)
    from_8 = preprocess_image(ToUint8()(CROP)).image.astype(int)
    np.testing.assert_array_equal(from_16, from_8)


def test_output_size_is_configurable():
    assert preprocess_image(CROP, PreprocessConfig(output_size=64)).image.shape == (64, 64)


def test_dark_crop_is_recorded_as_empty_roi_under_each_policy():
    dark = np.full((120, 100), 150 * 257, np.uint16)
    kept = preprocess_image(dark)
    assert kept.roi_empty and kept.kept_fraction == 0.0 and kept.warnings
    assert np.ptp(kept.image) == 0  # black image, equalised by CLAHE to one grey level
    config = PreprocessConfig()
    config.roi.empty_policy = "fallback"
    fallback = preprocess_image(dark, config)
    assert fallback.roi_empty and "fallback" in fallback.warnings[0]
    assert fallback.image.min() > kept.image.max()  # the unmasked grey 150, not black
    config.roi.empty_policy = "error"
    with pytest.raises(EmptyROIError, match="ROI empty"):
        preprocess_image(dark, config)


def test_otsu_policy_masks_a_faint_lesion_the_fixed_threshold_blacks_out():
    faint = render_roi_crop(np.random.default_rng(4), 160, malignant=False, faint=True)
    config = PreprocessConfig()
    config.roi.empty_policy = "otsu"
    steps = dict(preprocess_steps(faint, config))
    rescued = preprocess_image(faint, config)
    # Counted as empty (the paper's threshold kept nothing), yet the lesion is kept.
    assert rescued.roi_empty and rescued.kept_fraction == 0.0 and "otsu" in rescued.warnings[0]
    denoised, masked = steps["nlm"], steps["roi"]
    assert denoised.max() <= 193
    _, otsu = cv2.threshold(denoised, 0, 0, cv2.THRESH_TOZERO | cv2.THRESH_OTSU)
    np.testing.assert_array_equal(masked, otsu)
    assert 0.05 < np.mean(masked > 0) < 0.8
    assert np.ptp(rescued.image) > 100  # not the paper's uniform black image
    assert np.ptp(preprocess_image(faint).image) == 0


def test_preprocess_steps_returns_every_intermediate_image():
    config = PreprocessConfig(strategy="gaussian")
    steps = preprocess_steps(CROP, config)
    assert [name for name, _ in steps] == ["8-bit", "working size", "nlm", "roi", "gaussian",
                                           "clahe", "resize"]
    np.testing.assert_array_equal(steps[-1][1], preprocess_image(CROP, config).image)
    assert steps[3][1].shape == steps[2][1].shape  # the ROI step keeps the working size


def test_register_a_new_strategy(registry):
    register_strategy("denoise-only", ["nlm", "median"])
    config = PreprocessConfig(strategy="denoise-only")
    assert build_chain(config).names == ["8-bit", "working size", "nlm", "median", "resize"]
    manual = Resize(229)(MedianFilter()(NLMDenoise()(ToUint8()(CROP))))
    np.testing.assert_array_equal(preprocess_image(CROP, config).image, manual)
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("median", ["nlm"])
    with pytest.raises(ValueError, match="unknown step"):
        register_strategy("bad", ["nlm", "sharpen"])


def test_unknown_strategy_is_a_config_error_listing_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown strategy 'bilateral'.*median, gaussian"):
        build_chain(PreprocessConfig(strategy="bilateral"))


def test_bad_input_gives_a_clear_error():
    with pytest.raises(InvalidImageError, match="2-D greyscale"):
        preprocess_image(np.zeros((50, 50, 3), np.uint8))
    with pytest.raises(InvalidImageError, match="int32"):
        preprocess_image(np.zeros((50, 50), np.int32))


def test_chain_survives_pickling_for_worker_processes():
    chain = build_chain(PreprocessConfig(strategy="wiener"))
    clone = pickle.loads(pickle.dumps(chain))
    np.testing.assert_array_equal(clone(CROP).image, chain(CROP).image)
