"""Test of the Table 3 compile."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammohybrid.models import build_hybrid
from mammohybrid.models.compile import compile_hybrid


def test_compile_is_table_3_with_a_probability_loss() -> None:
    model = build_hybrid(["tinycnn"], input_size=32, weights=None, augment="none")
    compile_hybrid(model, learning_rate=1e-3)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)
    assert optimizer.momentum == 0.9 and optimizer.nesterov
    assert model.loss.get_config()["from_logits"] is False
    # On probabilities the loss is the plain cross-entropy: -log(0.8) for (1, 0.8).
    loss = float(model.loss(np.array([[1.0]]), np.array([[0.8]])))
    assert loss == pytest.approx(-np.log(0.8), rel=1e-5)  # from_logits=True would give 0.371
    x = np.zeros((4, 32, 32, 3), "float32")
    logs = model.evaluate(x, np.array([0, 1, 0, 1], "float32"), verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy", "auc"}
