"""Tests of the hybrid: Fig. 9's exact parameter counts, per-branch input scaling, layer names,
freezing, saving and loading."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from mammohybrid.config import ModelConfig
from mammohybrid.errors import ConfigError
from mammohybrid.models import (
    branches,
    build_hybrid,
    build_model,
    feature_extractor,
    load_model,
    parameter_counts,
)
from mammohybrid.models.hybrid import frozen_layer_count, inference_graph

TINY: dict[str, Any] = {"input_size": 32, "weights": None}


@pytest.fixture(scope="module")
def paper_model() -> keras.Model:
    """The paper's hybrid (ResNet50V2 + EfficientNetB7, 229 px) without pretrained weights."""
    return build_hybrid(["resnet50v2", "efficientnetb7"], weights=None)


def _branch_input(model: keras.Model, backbone: str) -> keras.Model:
    """Image -> the tensor the nested backbone actually receives."""
    node = model.get_layer(backbone)._inbound_nodes[0]  # the call in the graph
    return keras.Model(model.input, node.input_tensors[0])


@pytest.mark.slow
def test_fig9_parameter_counts(paper_model: keras.Model) -> None:
    assert parameter_counts(paper_model) == {
        "total": 87_667_096, "trainable": 87_310_929, "non_trainable": 356_167}
    assert paper_model.get_layer("resnet50v2").count_params() == 23_564_800
    assert paper_model.get_layer("efficientnetb7").count_params() == 64_097_687
    assert paper_model.get_layer("prediction").count_params() == 4_609
    assert tuple(paper_model.get_layer("concat").output.shape) == (None, 8, 8, 4608)
    assert tuple(paper_model.get_layer("resnet50v2").output.shape) == (None, 8, 8, 2048)
    assert tuple(paper_model.get_layer("efficientnetb7").output.shape) == (None, 8, 8, 2560)


@pytest.mark.slow
def test_paper_branches_see_their_own_input_scale(paper_model: keras.Model) -> None:
    image = np.random.default_rng(0).uniform(0, 255, (1, 229, 229, 3)).astype("float32")
    image[0, 0, 0] = (0, 255, 128)
    resnet_in = _branch_input(paper_model, "resnet50v2").predict(image, verbose=0)
    effnet_in = _branch_input(paper_model, "efficientnetb7").predict(image, verbose=0)
    reference = keras.applications.resnet_v2.preprocess_input(image.copy())
    np.testing.assert_allclose(resnet_in, reference, atol=1e-5)
    assert resnet_in.min() == pytest.approx(-1) and resnet_in.max() == pytest.approx(1)
    np.testing.assert_allclose(effnet_in, image)  # EfficientNet normalises 0-255 inside


@pytest.mark.slow
def test_three_branches_each_scaled_as_keras_preprocess_input() -> None:
    model = build_hybrid(["mobilenetv2", "densenet121", "mobilenetv3small"], **TINY)
    image = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = {"mobilenetv2": keras.applications.mobilenet_v2.preprocess_input,
                "densenet121": keras.applications.densenet.preprocess_input,
                "mobilenetv3small": keras.applications.mobilenet_v3.preprocess_input}
    for name, reference in expected.items():
        seen = _branch_input(model, name).predict(image, verbose=0)
        np.testing.assert_allclose(seen, np.asarray(reference(image.copy())), rtol=1e-5,
                                   atol=1e-5, err_msg=name)


def test_layer_names_others_rely_on() -> None:
    model = build_hybrid(["tinycnn", "smallcnn"], **TINY)
    names = [layer.name for layer in model.layers]
    for name in ["image", "augment", "tinycnn", "smallcnn", "tinycnn_dropout", "smallcnn_dropout",
                 "concat", "global_pool", "head_dropout", "prediction"]:
        assert name in names
    assert isinstance(model.get_layer("tinycnn"), keras.Model)
    assert model.get_layer("prediction").activation.__name__ == "sigmoid"
    assert model.get_layer("prediction").dtype_policy.compute_dtype == "float32"
    parts = branches(model, ["tinycnn", "smallcnn"])
    assert [p.backbone.name for p in parts] == ["tinycnn", "smallcnn"]
    assert all(p.scaling is not None for p in parts)  # both want [0, 1]


def test_one_backbone_and_max_pooling() -> None:
    model = build_hybrid(["tinycnn"], pooling="max", **TINY)
    assert isinstance(model.get_layer("global_pool"), keras.layers.GlobalMaxPooling2D)
    assert tuple(model.output.shape) == (None, 1)


def test_augmentation_and_dropout_only_in_training() -> None:
    keras.utils.set_random_seed(0)
    model = build_hybrid(["tinycnn"], branch_dropout=0.5, head_dropout=0.5, **TINY)
    plain = build_hybrid(["tinycnn"], augment="none", **TINY)
    assert "augment" not in [layer.name for layer in plain.layers]
    plain.set_weights(model.get_weights())  # the augmentation block holds no weights
    image = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    inference = keras.ops.convert_to_numpy(model(image, training=False))
    np.testing.assert_allclose(inference, keras.ops.convert_to_numpy(plain(image)), rtol=1e-6)
    training = keras.ops.convert_to_numpy(model(image, training=True))
    assert not np.allclose(training, inference)


def test_trainable_modes() -> None:
    frozen = build_hybrid(["tinycnn"], trainable="none", **TINY)
    assert [w.path for w in frozen.trainable_weights] == ["prediction/kernel", "prediction/bias"]
    last = build_hybrid(["tinycnn"], trainable="last:3", **TINY)
    backbone = last.get_layer("tinycnn")
    assert [layer.trainable for layer in backbone.layers[-3:]] == [True, True, True]
    assert not any(layer.trainable for layer in backbone.layers[:-3])
    assert frozen_layer_count(10, "last:30") == 0
    with pytest.raises(ConfigError, match=r"model\.trainable"):
        build_hybrid(["tinycnn"], trainable="first:3", **TINY)


@pytest.mark.slow
def test_a_frozen_backbone_is_a_fixed_feature_extractor_in_training() -> None:
    # EfficientNet's stochastic depth is a Dropout per block, which Keras' trainable=False
    # leaves active in training: frozen, the backbone must give its inference output.
    model = build_hybrid(["efficientnetb0"], trainable="none", branch_dropout=0.0,
                         head_dropout=0.0, augment="none", **TINY)
    image = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(image, training=True)),
                                  keras.ops.convert_to_numpy(model(image, training=False)))
    trainable = build_hybrid(["efficientnetb0"], augment="none", **TINY)
    rates = {layer.rate for layer in trainable.get_layer("efficientnetb0").layers
             if isinstance(layer, keras.layers.Dropout)}
    assert rates and max(rates) > 0  # unfrozen, stochastic depth stays as Keras builds it


@pytest.mark.slow
def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="appears twice"):
        build_hybrid(["tinycnn", "tinycnn"], **TINY)
    with pytest.raises(ConfigError, match=r"model\.pooling"):
        build_hybrid(["tinycnn"], pooling="median", **TINY)
    with pytest.raises(ConfigError, match=r"grids differ.*tinycnn 8x8.*densenet121 7x7"):
        build_hybrid(["tinycnn", "densenet121"], input_size=229, weights=None)


def test_inference_graph_has_no_random_op_and_no_captured_constant() -> None:
    """What export converts: the same weights and inference output, no random op (Keras'
    export traces without a ``training`` argument, which Keras' random layers take as training:
    the full model's trace augments, with StatelessRandomUniformV2, which ONNX has no kernel
    for) and no captured eager constant (tf2onnx makes each one a graph input: EfficientNet's
    Normalization mean and variance)."""
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = build_hybrid(["mobilenetv2", "efficientnetb0"], **TINY)
    graph = inference_graph(model)
    for copied, weight in zip(graph.weights, model.weights, strict=True):
        np.testing.assert_array_equal(copied, weight)
    image = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(graph.predict_on_batch(image), model.predict_on_batch(image))

    def traced(function: keras.Model) -> tuple[set[str], set[tf.DType]]:
        """The op types of the function as export traces it, and its captures' types."""
        concrete = tf.function(lambda x: function(x)).get_concrete_function(
            tf.TensorSpec((None, 32, 32, 3), tf.float32))
        graph_def = concrete.graph.as_graph_def()
        ops = {node.op for node in graph_def.node} | {
            node.op for inner in graph_def.library.function for node in inner.node_def}
        return ops, {tensor.dtype for tensor in concrete.captured_inputs}

    ops, captured = traced(model)
    assert any("Random" in op for op in ops) and captured != {tf.resource}
    ops, captured = traced(graph)
    assert not any("Random" in op for op in ops) and captured == {tf.resource}  # variables


def test_feature_extractor_gives_the_pooled_vector() -> None:
    model = build_hybrid(["tinycnn", "smallcnn"], **TINY)
    extractor = feature_extractor(model)
    image = np.zeros((3, 32, 32, 3), "float32")
    assert extractor.predict(image, verbose=0).shape == (3, 16 + 256)


@pytest.mark.slow
def test_build_model_from_config_and_load_round_trip(tmp_path) -> None:
    config = ModelConfig(backbones=["tinycnn"], input_size=32, weights="none", pooling="max",
                         head_dropout=0.3, trainable="none")
    model = build_model(config)
    assert model.get_layer("head_dropout").rate == 0.3
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    image = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(image, verbose=0), model.predict(image, verbose=0),
                               rtol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
