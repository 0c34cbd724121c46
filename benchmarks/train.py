"""Benchmark of training: does the input pipeline keep the model busy, and what does the
frozen-backbone feature cache save?

    .venv/bin/python benchmarks/train.py            # 512 train images, 3 repeats
    .venv/bin/python benchmarks/train.py --quick    # 256 train images, 2 repeats
    .venv/bin/python benchmarks/train.py --paper    # also the full paper model's train step

1. raw: training-step throughput of a model on in-memory tensors (already decoded, batched,
   float32 RGB; ``fit`` over a cached in-memory dataset), images/s of the training phase of
   each epoch;
2. pipeline: the real ``mammohybrid.training.train`` over a pre-processed dataset on disk
   (229-px PNGs + manifest generated in a temporary folder) with the same model, batch size and
   seed; images/s of the training phase of each epoch (validation, backups and logs excluded,
   as in 1). The first epoch of both is left out (graph tracing; for 2 also decoding and
   filling the cache);
3. frozen: per-epoch time (train + validation + backup, from ``run.json``) of ``train`` with
   frozen backbones (``model.trainable: none``) recomputing the backbones every epoch
   (``train.feature_cache: off``) against the cached-feature fast path (``auto``), epochs after
   the first; the one-off cost of computing the cache is printed beside it.

Raw and pipeline runs alternate, so that a change in the machine's load hits both; every
figure is the median over epochs and repeats. The last line is

    train pipeline_efficiency=<(2) / (1)> frozen_cache_speedup=<(3) recompute / cached>
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from mammohybrid.config import Config, load_config  # noqa: E402
from mammohybrid.models import build_model  # noqa: E402
from mammohybrid.training import train  # noqa: E402
from mammohybrid.training.data import ImageSplit, load_splits  # noqa: E402
from mammohybrid.training.runtime import seed_everything, training_runtime  # noqa: E402
from mammohybrid.training.toydata import make_toy_dataset  # noqa: E402
from mammohybrid.training.trainer import compile_for_training  # noqa: E402


class TrainPhaseTimer(keras.callbacks.Callback):
    """Seconds of the training phase of each epoch (epoch start to validation start)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0
        self._open = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start, self._open = time.perf_counter(), True

    def _close(self) -> None:
        if self._open:
            self.seconds.append(time.perf_counter() - self._start)
            self._open = False

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._close()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._close()  # epochs without validation


def config_for(manifest: Path, args: argparse.Namespace, *extra: str) -> Config:
    return load_config("scratch-cnn", [
        f"data.manifest={manifest}", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}", f"model.input_size={args.input_size}",
        f"model.backbones=[{','.join(args.backbones)}]", "train.mixed_precision=off", *extra])


def raw_images_per_second(config: Config, epochs: int) -> list[float]:
    """(1): fit on decoded, batched, in-memory float32 tensors."""
    seed_everything(config.seed, config.train.deterministic)
    split = ImageSplit(load_splits(config)["train"], config.model.input_size,
                       config.train.batch_size)
    images = np.concatenate([x.numpy() for x, _ in split.ordered()])  # decoded beforehand
    dataset = tf.data.Dataset.from_tensor_slices((images, split.labels[:, None]))
    dataset = dataset.batch(config.train.batch_size).cache()
    model = build_model(config.model)
    compile_for_training(model, config.train, steps_per_epoch=len(dataset))
    timer = TrainPhaseTimer()
    model.fit(dataset.prefetch(2), epochs=epochs, shuffle=False, verbose=0, callbacks=[timer])
    return [len(split) / s for s in timer.seconds[1:]]


def pipeline_images_per_second(config: Config, out: Path) -> list[float]:
    """(2): the real train() over PNG files."""
    timer = TrainPhaseTimer()
    train(config, out, callbacks=[timer])
    n = len(load_splits(config)["train"])
    return [n / s for s in timer.seconds[1:]]


def epoch_seconds(config: Config, out: Path) -> tuple[list[float], float]:
    """(3): per-epoch seconds after the first, and the feature-cache computation seconds."""
    train(config, out)
    info = json.loads((out / "run.json").read_text())
    return info["epoch_seconds"][1:], float(info.get("feature_cache_seconds", 0.0))


class ProductPaperStep:
    """The paper model trained through the product's code path: ``training_runtime`` (seed,
    op determinism, dtype policy), ``build_model`` (Table 2 augmentation inside),
    ``compile_for_training`` and ``ImageSplit`` batches decoded from PNG files."""

    def __init__(self, manifest: Path, batch_size: int, overrides: list[str]) -> None:
        self.config = load_config("paper", ["model.weights=none", f"data.manifest={manifest}",
                                            f"train.batch_size={batch_size}", *overrides])
        self.split = ImageSplit(load_splits(self.config)["train"], self.config.model.input_size,
                                batch_size)
        with training_runtime(self.config.train, self.config.seed) as runtime:
            with runtime.strategy.scope():
                self.model = build_model(self.config.model)
                compile_for_training(self.model, self.config.train, self.split.steps)
        self.epoch = 0

    def images_per_second(self) -> float:
        """One epoch over the split (as the trainer runs it); images/s of its training phase."""
        timer = TrainPhaseTimer()
        with training_runtime(self.config.train, self.config.seed):
            self.model.fit(self.split.epoch(self.epoch, self.config.seed), epochs=self.epoch + 1,
                           initial_epoch=self.epoch, shuffle=False, verbose=0, callbacks=[timer])
        self.epoch += 1
        return len(self.split) / timer.seconds[0]


class PlainKerasPaperStep:
    """The same hybrid from ``keras.applications`` alone (ResNet50V2 on [-1, 1] input and
    EfficientNetB7 on 0-255, concatenated, pooled, sigmoid), Keras' default settings, SGD
    (Nesterov) and binary cross-entropy, ``fit`` on in-memory float32 tensors."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int) -> None:
        shape = images.shape[1:]
        image = keras.Input(shape)
        resnet = keras.applications.ResNet50V2(include_top=False, weights=None,
                                               input_shape=shape)
        efficientnet = keras.applications.EfficientNetB7(include_top=False, weights=None,
                                                         input_shape=shape)
        features = keras.layers.Concatenate()(
            [resnet(keras.layers.Rescaling(1 / 127.5, -1.0)(image)), efficientnet(image)])
        pooled = keras.layers.GlobalAveragePooling2D()(features)
        self.model = keras.Model(image, keras.layers.Dense(1, activation="sigmoid")(pooled))
        self.model.compile(optimizer=keras.optimizers.SGD(1e-4, momentum=0.9, nesterov=True),
                           loss="binary_crossentropy", metrics=["accuracy"])
        self.dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
        self.images = len(images)

    def images_per_second(self) -> float:
        timer = TrainPhaseTimer()
        self.model.fit(self.dataset, epochs=1, verbose=0, callbacks=[timer])
        return self.images / timer.seconds[0]


def paper_step_comparison(args: argparse.Namespace, root: Path) -> None:
    """The paper model's train step, product path against plain Keras, alternating."""
    n_images = args.paper_steps * args.paper_batch_size
    size = load_config("paper").model.input_size
    manifest = make_toy_dataset(root / "paper-data", {"train": n_images, "val": 2}, size=size,
                                failed_rows=0)
    print(f"paper model (ResNet50V2 + EfficientNetB7, random weights) at {size} px, batch "
          f"{args.paper_batch_size}, {args.paper_steps} steps per measurement, {args.repeats} "
          f"repeats; product overrides: {args.paper_set or 'none'}", flush=True)
    start = time.perf_counter()
    product = ProductPaperStep(manifest, args.paper_batch_size, args.paper_set)
    split = product.split
    images = np.concatenate([x.numpy() for x, _ in split.ordered()])
    plain = PlainKerasPaperStep(images, split.labels[:, None], args.paper_batch_size)
    print(f"  both models built in {time.perf_counter() - start:.0f} s", flush=True)
    start = time.perf_counter()
    product.images_per_second()  # tracing and first steps, left out
    plain.images_per_second()
    print(f"  first epochs (tracing) in {time.perf_counter() - start:.0f} s", flush=True)
    product_rates: list[float] = []
    plain_rates: list[float] = []
    for repeat in range(args.repeats):
        first, second = (product, plain) if repeat % 2 == 0 else (plain, product)
        rates = {id(first): first.images_per_second(), id(second): second.images_per_second()}
        product_rates.append(rates[id(product)])
        plain_rates.append(rates[id(plain)])
        print(f"  repeat {repeat + 1}: product {product_rates[-1]:.2f} images/s, plain Keras "
              f"{plain_rates[-1]:.2f} images/s, ratio {product_rates[-1] / plain_rates[-1]:.2f} "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    product_median = statistics.median(product_rates)
    plain_median = statistics.median(plain_rates)
    ratios = [a / b for a, b in zip(product_rates, plain_rates, strict=True)]
    print(f"train_step paper product_images_per_s={product_median:.3f} "
          f"plain_keras_images_per_s={plain_median:.3f} ratio={statistics.median(ratios):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images, epochs, repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--images", type=int, default=None, help="training images")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--backbones", nargs="+", default=["smallcnn", "tinycnn"],
                        help="model of (1) and (2) (default: the scratch-cnn preset's)")
    parser.add_argument("--frozen-backbones", nargs="+", default=["efficientnetb0"],
                        help="model of (3), frozen")
    parser.add_argument("--paper", action="store_true",
                        help="instead: the paper model's train step, product path against plain "
                             "Keras (slow on CPU)")
    parser.add_argument("--paper-batch-size", type=int, default=8)
    parser.add_argument("--paper-steps", type=int, default=4,
                        help="train steps per measurement of --paper")
    parser.add_argument("--paper-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides of the product path of --paper, e.g. "
                             "train.deterministic=false")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    print(f"CPU threads: {os.cpu_count()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if args.paper:
        args.repeats = args.repeats or 4
        with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
            paper_step_comparison(args, Path(folder))
        return
    # Each epoch is one fit call with a fixed start-up cost (~35 ms here: a new dataset
    # iterator), which tiny epochs would overweight; real epochs are far longer.
    n_train = args.images or (256 if args.quick else 512)
    args.epochs = args.epochs or (3 if args.quick else 4)

    with tempfile.TemporaryDirectory(prefix="bench-train-") as folder:
        root = Path(folder)
        start = time.perf_counter()
        manifest = make_toy_dataset(root / "data", {"train": n_train, "val": n_train // 4},
                                    size=229, failed_rows=0)
        print(f"dataset: {n_train} train + {n_train // 4} val PNGs of 229 px "
              f"({time.perf_counter() - start:.1f} s to generate)")
        config = config_for(manifest, args)
        print(f"model (1)(2): {' + '.join(args.backbones)} at {args.input_size} px, batch "
              f"{args.batch_size}, {args.epochs} epochs per run (first left out), "
              f"{repeats} repeats")

        raw: list[float] = []
        pipeline: list[float] = []
        for repeat in range(repeats):
            raw += raw_images_per_second(config, args.epochs)
            pipeline += pipeline_images_per_second(config, root / f"pipeline{repeat}")
            print(f"  repeat {repeat + 1}: raw {statistics.median(raw):.1f} img/s, pipeline "
                  f"{statistics.median(pipeline):.1f} img/s (medians so far)", flush=True)
        raw_median, pipeline_median = statistics.median(raw), statistics.median(pipeline)
        print(f"(1) raw train step, in-memory tensors: {raw_median:.1f} images/s")
        print(f"(2) train() pipeline from PNG files:   {pipeline_median:.1f} images/s")

        frozen = [f"model.backbones=[{','.join(args.frozen_backbones)}]", "model.trainable=none",
                  f"train.augment_copies={2 if args.quick else 4}"]
        recompute, cached, cache_seconds = [], [], []
        for repeat in range(repeats):
            seconds, _ = epoch_seconds(config_for(manifest, args, *frozen,
                                                  "train.feature_cache=off"),
                                       root / f"recompute{repeat}")
            recompute += seconds
            seconds, computing = epoch_seconds(config_for(manifest, args, *frozen),
                                               root / f"cached{repeat}")
            cached += seconds
            cache_seconds.append(computing)
        recompute_median, cached_median = statistics.median(recompute), statistics.median(cached)
        print(f"(3) frozen {' + '.join(args.frozen_backbones)}: per epoch "
              f"{recompute_median:.3f} s recomputing the backbones, {cached_median:.3f} s on "
              f"cached features (computing the cache once: "
              f"{statistics.median(cache_seconds):.1f} s)")

    print(f"train pipeline_efficiency={pipeline_median / raw_median:.3f} "
          f"frozen_cache_speedup={recompute_median / cached_median:.1f}")


if __name__ == "__main__":
    main()
