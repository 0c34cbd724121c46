"""Training: the tf.data pipeline, the training loop with exact resumption, the frozen-backbone
feature cache, logs and curves. Uses TensorFlow (the models themselves are plain Keras)."""

from mammohybrid.training.devices import describe_devices
from mammohybrid.training.finished_run import load_finished_run
from mammohybrid.training.input_pipeline import predict_manifest
from mammohybrid.training.linear_head import PooledFeatureCache, fit_head, read_head
from mammohybrid.training.trainer import train

__all__ = [
    "PooledFeatureCache", "describe_devices", "fit_head", "load_finished_run",
    "predict_manifest", "read_head", "train",
]
