"""Throughput of the full paper model (ResNet50V2 + EfficientNetB7, 229 px, random weights) on
whatever accelerator Keras' backend finds: forward and training-step images/s at a few batch
sizes, with and without mixed precision, and the time of one CBIS-DDSM-size epoch.

Runs with Keras alone (``mammohybrid.models`` imports no TensorFlow), e.g. on a GPU machine
with JAX and CUDA but no TensorFlow, Keras carried as a wheel:

    KERAS_BACKEND=jax PYTHONPATH=src python benchmarks/gpu_paper_model.py
    KERAS_BACKEND=jax PYTHONPATH=src python benchmarks/gpu_paper_model.py --batch-sizes 32 64
    python benchmarks/gpu_paper_model.py --tiny       # a small model, to check the script on CPU

Each configuration is warmed up (compilation) and then timed over ``--steps`` steps on one
in-memory batch; a step returns host values (metrics, probabilities), so asynchronous dispatch
cannot flatter the timing. One JSON line per configuration is printed as soon as it is
measured (a killed run keeps what it measured), then a summary JSON object with the epoch time
of ``--epoch-images`` (1,318: the CBIS-DDSM mass training set) at the best train throughput.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runs from a checkout

import keras

from mammohybrid.models import build_hybrid, compile_hybrid, parameter_counts

PAPER = {"backbones": ["resnet50v2", "efficientnetb7"], "input_size": 229}
TINY = {"backbones": ["mobilenetv3small", "tinycnn"], "input_size": 64}


def device_description() -> str:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return ", ".join(g.name for g in gpus) or f"cpu ({os.cpu_count()} threads)"
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return "unknown"


def timed(step, steps: int) -> float:  # a zero-argument callable
    """Seconds per call of ``step`` after two warm-up calls (compilation)."""
    step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(architecture: dict, policy: str, batch_size: int, steps: int) -> dict:
    """Forward and train-step images/s of one (policy, batch size)."""
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_hybrid(**architecture, weights=None, augment="paper")
    compile_hybrid(model)
    size = architecture["input_size"]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
    y = (np.arange(batch_size) % 2).astype("float32")[:, None]
    start = time.perf_counter()
    forward = timed(lambda: np.asarray(model.predict_on_batch(x)), steps)
    train = timed(lambda: model.train_on_batch(x, y, return_dict=True), steps)
    result = {"policy": policy, "batch_size": batch_size,
              "forward_images_per_s": round(batch_size / forward, 2),
              "train_images_per_s": round(batch_size / train, 2),
              "seconds_with_compilation": round(time.perf_counter() - start, 1)}
    keras.backend.clear_session()
    gc.collect()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_float16"],
                        help="Keras dtype policies (mixed_bfloat16 too)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    parser.add_argument("--epoch-images", type=int, default=1318)
    parser.add_argument("--tiny", action="store_true",
                        help=f"measure {TINY} instead of the paper model (CPU check)")
    args = parser.parse_args()
    architecture = TINY if args.tiny else PAPER
    keras.config.set_dtype_policy("float32")
    counts = parameter_counts(build_hybrid(**architecture, weights=None))
    keras.backend.clear_session()
    header = {"backend": keras.backend.backend(), "keras": keras.__version__,
              "device": device_description(), "python": platform.python_version(),
              "model": {**architecture, "parameters": counts}}
    print(json.dumps(header), flush=True)
    results = []
    for policy in args.policies:
        for batch_size in args.batch_sizes:
            try:
                result = measure(architecture, policy, batch_size, args.steps)
            except Exception as error:  # e.g. out of memory: record, go on
                result = {"policy": policy, "batch_size": batch_size,
                          "error": f"{type(error).__name__}: {str(error)[:300]}"}
                keras.backend.clear_session()
                gc.collect()
            results.append(result)
            print(json.dumps(result), flush=True)
    measured = [r for r in results if "train_images_per_s" in r]
    best = max(measured, key=lambda r: r["train_images_per_s"], default=None)
    summary = {**header, "results": results, "best_train": best,
               "epoch_images": args.epoch_images,
               "epoch_seconds_at_best": (round(args.epoch_images / best["train_images_per_s"], 1)
                                         if best else None)}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
