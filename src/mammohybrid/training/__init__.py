"""Training: the tf.data pipeline, the training loop with exact resumption, the frozen-backbone
feature cache, logs and curves. Uses TensorFlow (the models themselves are plain Keras)."""

from mammohybrid.training.input_pipeline import predict_manifest
from mammohybrid.training.trainer import train

__all__ = ["predict_manifest", "train"]
