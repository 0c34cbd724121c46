"""The paper's training objective (Table 3) as a Keras ``compile``: keras only, so that the
GPU benchmark (JAX, no TensorFlow) trains exactly what ``mammohybrid train`` trains.

Table 3 says "from logits: True", but the network ends in a sigmoid, so its outputs are
probabilities, not logits: the loss is ``BinaryCrossentropy(from_logits=False)``. (With
``from_logits=True`` Keras would apply a second sigmoid, squeezing every prediction into
[0.5, 0.73] and flattening the gradients.)
"""

from __future__ import annotations

import keras


def compile_hybrid(model: keras.Model,
                   learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = 1e-4,
                   momentum: float = 0.9,
                   nesterov: bool = True, steps_per_execution: int = 1) -> None:
    """SGD with (Nesterov) momentum, binary cross-entropy on probabilities; metrics binary
    accuracy (``accuracy``) and ROC AUC (``auc``). ``steps_per_execution`` > 1 runs several
    steps per call of the compiled step (same updates, less Python overhead: small models)."""
    model.compile(
        steps_per_execution=steps_per_execution,
        optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                       nesterov=nesterov),
        loss=keras.losses.BinaryCrossentropy(from_logits=False),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
    )
