"""Grad-CAM on the real hybrid structure: the split graph reproduces the model, the weights
match the closed form for this head, the heat-map follows the lesion, overlays are written."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest

from mammohybrid.imaging import read_image
from mammohybrid.inference.gradcam import (
    COMBINED,
    Explanation,
    GradCAM,
    hybrid_backbones,
    overlay,
    upsample,
    write_overlays,
)
from mammohybrid.models import build_hybrid


def _inputs(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def hybrid() -> keras.Model:
    # A Keras application with its own [-1, 1] input scaling next to a plain CNN with [0, 1]
    # scaling, behind the paper's augmentation block: the structure Grad-CAM must see through.
    keras.utils.set_random_seed(0)
    return build_hybrid(["tinycnn", "mobilenetv2"], input_size=64, weights=None, augment="paper")


def test_backbones_are_found_in_the_model(hybrid: keras.Model) -> None:
    assert hybrid_backbones(hybrid) == ["tinycnn", "mobilenetv2"]
    assert GradCAM(hybrid).names == ["tinycnn", "mobilenetv2", COMBINED]


@pytest.mark.slow
def test_split_graph_reproduces_the_model_without_augmentation(hybrid: keras.Model) -> None:
    x = _inputs(4, 64)
    cam = GradCAM(hybrid)
    first, second = cam(x), cam(x)
    expected = np.asarray(hybrid.predict_on_batch(x)).reshape(-1)
    np.testing.assert_allclose(first.probabilities, expected, rtol=1e-5, atol=1e-6)
    # Deterministic: the augmentation block (random layers) plays no part at inference.
    np.testing.assert_array_equal(first.probabilities, second.probabilities)
    maps = cam.feature_maps(x)
    assert [m.shape for m in maps] == [(4, 2, 2, 16), (4, 2, 2, 1280)]
    for name in cam.names:
        assert first.evidence[name].shape == (4, 2, 2)


@pytest.mark.parametrize("pooling", ["avg", "max"])
def test_weights_equal_the_closed_form_for_a_dense_on_pooling_head(pooling: str) -> None:
    # d logit / dA_ij^c averaged over the grid is w_c / (H W) for average pooling, and also for
    # max pooling (the gradient goes to the one maximal cell per channel): Grad-CAM = CAM.
    keras.utils.set_random_seed(1)
    model = build_hybrid(["tinycnn", "smallcnn"], pooling=pooling, input_size=64, weights=None,
                         augment="none")
    cam = GradCAM(model)
    x = _inputs(6, 64, seed=1)
    explanation = cam(x)
    maps = cam.feature_maps(x)
    weights = model.get_layer("prediction").kernel.numpy()[:, 0].astype(np.float64)
    grid = maps[0].shape[1] * maps[0].shape[2]
    offsets = np.cumsum([0] + [m.shape[-1] for m in maps])
    branch_cams = {name: np.einsum("nhwc,c->nhw", m, weights[a:b]) / grid
                   for name, m, a, b in zip(cam.backbones, maps, offsets[:-1], offsets[1:],
                                            strict=True)}
    branch_cams[COMBINED] = sum(branch_cams.values())
    for name, reference in branch_cams.items():
        np.testing.assert_allclose(explanation.evidence[name], reference, rtol=1e-4, atol=1e-7)
    for cls, sign in ((1, 1.0), (0, -1.0)):
        heat = explanation.heatmaps(cls)[COMBINED]
        positive = np.maximum(sign * branch_cams[COMBINED], 0)
        peak = positive.max(axis=(1, 2), keepdims=True)
        expected = np.divide(positive, peak, out=np.zeros_like(positive), where=peak > 0)
        np.testing.assert_allclose(heat, expected, atol=1e-5)
        assert heat.min() >= 0 and heat.max() <= 1


def test_heatmaps_explain_the_predicted_class_by_default() -> None:
    evidence = {COMBINED: np.array([[[2.0, -1.0]], [[2.0, -1.0]]])}
    explanation = Explanation(np.array([0.9, 0.2]), evidence)
    maps = explanation.heatmaps(threshold=0.5)[COMBINED]
    np.testing.assert_allclose(maps[0], [[1.0, 0.0]])  # malignant: the positive evidence
    np.testing.assert_allclose(maps[1], [[0.0, 1.0]])  # benign: the negative evidence
    # A threshold above 0.9 makes both benign.
    np.testing.assert_allclose(explanation.heatmaps(threshold=0.95)[COMBINED][0], [[0.0, 1.0]])


# ----------------------------------------------------------------------------- the lesion
SIZE, RADIUS = 96, 9


def _blob_image(rng: np.random.Generator,
                centre: np.ndarray | tuple[float, float] | None) -> np.ndarray:
    """Smooth textured background; a bright disc (the 'lesion') when ``centre`` is given."""
    image = cv2.GaussianBlur(rng.normal(60, 12, (SIZE, SIZE)).astype(np.float32), (0, 0), 2)
    if centre is not None:
        yy, xx = np.mgrid[:SIZE, :SIZE]
        image[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < RADIUS ** 2] += 150
    return np.repeat(np.clip(image, 0, 255)[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def blob_model() -> keras.Model:
    """A two-branch hybrid trained briefly to say whether a bright disc is present anywhere."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    labels = np.arange(160) % 2
    images = np.stack([_blob_image(rng, rng.uniform(RADIUS + 2, SIZE - RADIUS - 2, 2)
                                   if label else None) for label in labels])
    model = build_hybrid(["tinycnn", "smallcnn"], input_size=SIZE, weights=None, augment="paper")
    # A short run: let BatchNormalization's moving statistics catch up with the batch ones.
    for name in ("tinycnn", "smallcnn"):
        for layer in model.get_layer(name).layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.8
    model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
    model.fit(images.astype(np.float32), labels, batch_size=16, epochs=6, verbose=0)
    return model


@pytest.mark.slow
def test_heatmap_follows_the_lesion(blob_model: keras.Model) -> None:
    rng = np.random.default_rng(7)
    quarter = SIZE // 4
    centres = [(quarter, quarter), (quarter, 3 * quarter), (3 * quarter, quarter),
               (3 * quarter, 3 * quarter)]
    x = np.stack([_blob_image(rng, c) for c in centres] + [_blob_image(rng, None)])
    explanation = GradCAM(blob_model)(x.astype(np.float32))
    assert (explanation.probabilities[:4] > 0.5).all() and explanation.probabilities[4] < 0.5
    heatmaps = explanation.heatmaps(1)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    half = SIZE // 2
    for name, maps in heatmaps.items():
        for k, centre in enumerate(centres):
            heat = upsample(maps[k], (SIZE, SIZE))
            quadrants = [heat[:half, :half].sum(), heat[:half, half:].sum(),
                         heat[half:, :half].sum(), heat[half:, half:].sum()]
            assert int(np.argmax(quadrants)) == k, (name, centre, quadrants)
            if name == COMBINED:
                near = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < (2 * RADIUS) ** 2
                assert heat[near].mean() > 2 * heat[~near].mean(), (centre,)


# ----------------------------------------------------------------------------- overlays
def test_upsample_stretches_the_grid_onto_the_image() -> None:
    grid = np.array([[0.0, 1.0], [0.0, 0.0]], np.float32)
    heat = upsample(grid, (40, 60))
    assert heat.shape == (40, 60) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert heat[:20, 30:].mean() > 0.5 > heat[20:, :30].mean()  # the hot cell stays top-right


def test_overlay_leaves_cold_regions_unchanged_and_colours_hot_ones() -> None:
    image = np.full((40, 60), 100, np.uint8)
    grid = np.array([[0.0, 1.0], [0.0, 0.0]], np.float32)
    result = overlay(image, grid)
    assert result.shape == (40, 60, 3) and result.dtype == np.uint8
    assert (result[35, 5] == 100).all()  # zero heat: the grey image itself
    assert result[5, 55, 2] > result[5, 55, 0]  # full heat: jet's red end (BGR)
    with pytest.raises(ValueError, match="2-D uint8"):
        overlay(image.astype(np.float32), grid)


def test_write_overlays_writes_one_png_per_map(tmp_path) -> None:
    image = np.random.default_rng(0).integers(0, 255, (30, 50), dtype=np.uint8)
    maps = {"tinycnn": np.eye(2, dtype=np.float32), COMBINED: np.ones((2, 2), np.float32)}
    written = write_overlays(tmp_path, "crop_1", image, maps)
    assert written == {"tinycnn": tmp_path / "crop_1_tinycnn.png",
                       COMBINED: tmp_path / "crop_1_combined.png"}
    for path in written.values():
        assert read_image(path).shape == (30, 50)
