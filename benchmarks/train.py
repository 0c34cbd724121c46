"""Benchmark of training: does the input pipeline keep the model busy, and what does the
frozen-backbone feature cache save?

    .venv/bin/python benchmarks/train.py            # 512 train images, 3 repeats
    .venv/bin/python benchmarks/train.py --quick    # 256 train images, 2 repeats
    .venv/bin/python benchmarks/train.py --paper    # instead: the paper model's train step

1. raw: training-step throughput of a model on in-memory tensors (already decoded, batched,
   float32 RGB; ``fit`` over a cached in-memory dataset), images/s of the training phase of
   each epoch;
2. pipeline: the real ``mammohybrid.training.train`` over a pre-processed dataset on disk
   (229-px PNGs + manifest generated in a temporary folder) with the same model, batch size and
   seed; images/s of the training phase of each epoch (from its start to the end of its last
   training batch: validation, backups and logs excluded, as in 1), and the per-epoch split of
   the rest (validation and callbacks, backup and logs). The first epoch of both is left out
   (graph tracing; for 2 also decoding and filling the cache);
3. frozen: per-epoch time (train + validation + backup, from ``run.json``) of ``train`` with
   frozen backbones (``model.trainable: none``) recomputing the backbones every epoch
   (``train.feature_cache: off``) against the cached-feature fast path (``auto``), epochs after
   the first; the one-off cost of computing the cache is printed beside it.

Raw and pipeline runs alternate, so that a change in the machine's load hits both; every
figure is the median over epochs and repeats. The last line is

    train pipeline_efficiency=<(2) / (1)> frozen_cache_speedup=<(3) recompute / cached>

``--paper`` times the paper model's train step (random weights, batch 8, images/s of the
training phase of an epoch) through the product's path (runtime, ``build_model`` with Table 2
augmentation, PNG batches) against the same hybrid in plain Keras on in-memory tensors with
TensorFlow's defaults; ``--paper-variants ... plain-onednn`` adds plain Keras on oneDNN
kernels. Each variant runs in a process of its own (TensorFlow chooses its CPU kernels once, at
import), the first epoch (tracing) left out; the order alternates from round to round. Last
line:

    train_step paper product_images_per_s=<x> plain_keras_images_per_s=<y> ratio=<x / y>

(the ratio is the median over rounds of the two measured in the same round).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mammohybrid.tensorflow_env import (
    LOG_LEVEL_VARIABLE,
    ONEDNN_VARIABLE,
    configure_tensorflow,
    tensorflow_environment,
)

if "--paper-child" not in sys.argv:  # a --paper variant's process gets its own environment
    configure_tensorflow(quiet=True)  # TensorFlow as the command line starts it

import keras
import numpy as np
import tensorflow as tf

from mammohybrid.config import Config, load_config
from mammohybrid.models import build_model
from mammohybrid.training import train
from mammohybrid.training.devices import cpu_kernels
from mammohybrid.training.input_pipeline import (
    PREFETCH_BATCHES,
    ImageSplit,
    fixed_pipeline,
    load_splits,
)
from mammohybrid.training.runtime import seed_everything, training_runtime
from mammohybrid.training.toydata import make_toy_dataset
from mammohybrid.training.trainer import compile_for_training


class EpochSplit(keras.callbacks.Callback):
    """Where each epoch's time goes, from the callback's place in ``fit``'s list: the training
    phase (epoch start to the end of its last training batch: input pipeline and train steps),
    what runs after it inside ``fit`` before this callback's epoch end (the product's
    validation pass, which comes first in its list, and the progress bar), and the time between
    one epoch's end and the next one's start (the product's backup, history, TensorBoard
    logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: dict[str, list[float]] = {"train phase": [], "validation and callbacks": [],
                                              "backup and logs": []}
        self._start = self._last_batch = self._previous_end = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        if self._previous_end:
            self.parts["backup and logs"].append(self._start - self._previous_end)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._last_batch = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._previous_end = time.perf_counter()
        self.parts["train phase"].append(self._last_batch - self._start)
        self.parts["validation and callbacks"].append(self._previous_end - self._last_batch)


def config_for(manifest: Path, args: argparse.Namespace, *extra: str) -> Config:
    return load_config("scratch-cnn", [
        f"data.manifest={manifest}", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}", f"model.input_size={args.input_size}",
        f"model.backbones=[{','.join(args.backbones)}]", "train.mixed_precision=off", *extra])


def raw_images_per_second(config: Config, epochs: int) -> list[float]:
    """(1): fit on decoded, batched, in-memory float32 tensors; images/s of each epoch's
    training phase after the first."""
    seed_everything(config.seed, config.train.deterministic)
    split = ImageSplit(load_splits(config)["train"], config.model.input_size,
                       config.train.batch_size)
    images = np.concatenate([x.numpy() for x, _ in split.ordered()])  # decoded beforehand
    dataset = tf.data.Dataset.from_tensor_slices((images, split.labels[:, None]))
    dataset = dataset.batch(config.train.batch_size).cache()
    model = build_model(config.model)
    compile_for_training(model, config.train, steps_per_epoch=len(dataset))
    timer = EpochSplit()
    # tf.data's autotuning off, as the product's pipeline has it (training/input_pipeline.py).
    model.fit(fixed_pipeline(dataset.prefetch(PREFETCH_BATCHES)), epochs=epochs, shuffle=False,
              verbose=0, callbacks=[timer])
    return [len(split) / s for s in timer.parts["train phase"][1:]]


def pipeline_images_per_second(config: Config, out: Path) -> tuple[list[float],
                                                                    dict[str, list[float]]]:
    """(2): the real train() over PNG files; images/s of each epoch's training phase after the
    first, and every epoch's split (:class:`EpochSplit`) after the first."""
    timer = EpochSplit()
    train(config, out, callbacks=[timer])
    n = len(load_splits(config)["train"])
    return ([n / s for s in timer.parts["train phase"][1:]],
            {part: seconds[1:] for part, seconds in timer.parts.items()})


def epoch_seconds(config: Config, out: Path) -> tuple[list[float], float]:
    """(3): per-epoch seconds after the first, and the feature-cache computation seconds."""
    train(config, out)
    info = json.loads((out / "run.json").read_text())
    return info["epoch_seconds"][1:], float(info.get("feature_cache_seconds", 0.0))


class ProductPaperStep:
    """The paper model trained through the product's code path: ``training_runtime`` (seed,
    op determinism, dtype policy), ``build_model`` (Table 2 augmentation inside),
    ``compile_for_training`` and ``ImageSplit`` batches decoded from PNG files.

    The runtime stays set up for the life of the process, as it does over all epochs of a
    training: leaving and re-entering it switches op determinism off and on, after which
    TensorFlow re-instantiates the train step (tens of seconds for the paper model)."""

    def __init__(self, manifest: Path, batch_size: int, overrides: list[str]) -> None:
        self.config = load_config("paper", ["model.weights=none", f"data.manifest={manifest}",
                                            f"train.batch_size={batch_size}", *overrides])
        self.split = ImageSplit(load_splits(self.config)["train"], self.config.model.input_size,
                                batch_size)
        self._open_for_good = contextlib.ExitStack()
        runtime = self._open_for_good.enter_context(
            training_runtime(self.config.train, self.config.seed))
        with runtime.strategy.scope():
            self.model = build_model(self.config.model)
            compile_for_training(self.model, self.config.train, self.split.steps)
        self.epoch = 0

    def images_per_second(self) -> float:
        """One epoch over the split (as the trainer runs it); images/s of its training phase."""
        timer = EpochSplit()
        self.model.fit(self.split.epoch(self.epoch, self.config.seed), epochs=self.epoch + 1,
                       initial_epoch=self.epoch, shuffle=False, verbose=0, callbacks=[timer])
        self.epoch += 1
        return len(self.split) / timer.parts["train phase"][0]


class PlainKerasPaperStep:
    """The same hybrid from ``keras.applications`` alone (ResNet50V2 on [-1, 1] input and
    EfficientNetB7 on 0-255, concatenated, pooled, sigmoid), Keras' default settings, SGD
    (Nesterov) and binary cross-entropy, ``fit`` on in-memory float32 tensors."""

    def __init__(self, manifest: Path, batch_size: int) -> None:
        config = load_config("paper", [f"data.manifest={manifest}"])
        split = ImageSplit(load_splits(config)["train"], config.model.input_size, batch_size)
        images = np.concatenate([x.numpy() for x, _ in split.ordered()])  # decoded beforehand
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
        self.dataset = tf.data.Dataset.from_tensor_slices(
            (images, split.labels[:, None])).batch(batch_size)
        self.images = len(images)

    def images_per_second(self) -> float:
        timer = EpochSplit()
        self.model.fit(self.dataset, epochs=1, verbose=0, callbacks=[timer])
        return self.images / timer.parts["train phase"][0]


# The variants of --paper, each in a process of its own: TensorFlow reads its kernel choice
# (oneDNN or Eigen) once, at import. "plain" is Keras with TensorFlow's defaults; the product
# starts TensorFlow as the command line does (mammohybrid.tensorflow_env).
PAPER_VARIANTS = ("product", "plain", "plain-onednn")


def paper_variant_environment(variant: str) -> dict[str, str]:
    """The environment a variant's process starts TensorFlow with."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in (ONEDNN_VARIABLE, LOG_LEVEL_VARIABLE)}
    environment[LOG_LEVEL_VARIABLE] = "2"
    if variant == "product":
        environment |= tensorflow_environment(quiet=True)
    elif variant == "plain-onednn":
        environment[ONEDNN_VARIABLE] = "1"
    return environment


def paper_variant_child(args: argparse.Namespace) -> None:
    """In the variant's own process: build, one epoch of tracing, then ``--paper-measurements``
    epochs; one JSON line on stdout."""
    start = time.perf_counter()
    step: ProductPaperStep | PlainKerasPaperStep = (
        ProductPaperStep(args.paper_data, args.paper_batch_size, args.paper_set)
        if args.paper_child == "product" else
        PlainKerasPaperStep(args.paper_data, args.paper_batch_size))
    built = time.perf_counter() - start
    start = time.perf_counter()
    step.images_per_second()  # tracing and first steps, left out
    first = time.perf_counter() - start
    rates = [step.images_per_second() for _ in range(args.paper_measurements)]
    print(json.dumps({"variant": args.paper_child, "cpu_kernels": cpu_kernels(),
                      "build_s": built, "first_epoch_s": first, "rates": rates,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))


def run_paper_variant(variant: str, manifest: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--paper-child", variant,
               "--paper-data", str(manifest), "--paper-batch-size", str(args.paper_batch_size),
               "--paper-steps", str(args.paper_steps),
               "--paper-measurements", str(args.paper_measurements),
               "--paper-set", *args.paper_set]
    load = os.getloadavg()[0]
    result = subprocess.run(command, env=paper_variant_environment(variant), check=True,
                            capture_output=True, text=True)
    child = json.loads(result.stdout.strip().splitlines()[-1])
    child["load"] = (load + os.getloadavg()[0]) / 2
    return child


def paper_step_comparison(args: argparse.Namespace, root: Path) -> None:
    """The paper model's train step, product path against plain Keras: each variant in its own
    process, the order alternating from round to round."""
    n_images = args.paper_steps * args.paper_batch_size
    size = load_config("paper").model.input_size
    manifest = make_toy_dataset(root / "paper-data", {"train": n_images, "val": 2}, size=size,
                                failed_rows=0)
    print(f"paper model (ResNet50V2 + EfficientNetB7, random weights) at {size} px, batch "
          f"{args.paper_batch_size}, {args.paper_steps} steps per measurement; "
          f"{args.repeats} rounds of {', '.join(args.paper_variants)}, each a process of its "
          f"own measuring {args.paper_measurements} epochs; product overrides: "
          f"{args.paper_set or 'none'}", flush=True)
    rates: dict[str, list[float]] = {variant: [] for variant in args.paper_variants}
    round_ratios: list[float] = []
    for repeat in range(args.repeats):
        order = args.paper_variants if repeat % 2 == 0 else args.paper_variants[::-1]
        medians = {}
        for variant in order:
            child = run_paper_variant(variant, manifest, args)
            rates[variant] += child["rates"]
            medians[variant] = statistics.median(child["rates"])
            print(f"  round {repeat + 1} {variant:12s} ({child['cpu_kernels']} kernels): "
                  f"{', '.join(f'{rate:.3f}' for rate in child['rates'])} images/s (build "
                  f"{child['build_s']:.0f} s, first epoch {child['first_epoch_s']:.0f} s, peak "
                  f"{child['peak_rss_gb']:.1f} GB, load average {child['load']:.1f})",
                  flush=True)
        round_ratios.append(medians["product"] / medians["plain"])
    summary = " ".join(f"{variant.replace('-', '_').replace('plain', 'plain_keras')}"
                       f"_images_per_s={statistics.median(values):.3f}"
                       for variant, values in rates.items())
    print(f"train_step paper {summary} ratio={statistics.median(round_ratios):.3f}")


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
    parser.add_argument("--paper-measurements", type=int, default=3,
                        help="epochs measured per variant process of --paper")
    parser.add_argument("--paper-variants", nargs="+", default=["product", "plain"],
                        choices=PAPER_VARIANTS,
                        help="what --paper compares: the product, plain Keras on TensorFlow's "
                             "default kernels, plain Keras on oneDNN kernels")
    parser.add_argument("--paper-child", choices=PAPER_VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--paper-data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paper_child:
        paper_variant_child(args)
        return
    repeats = args.repeats or (2 if args.quick else 3)
    print(f"CPU threads: {os.cpu_count()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if args.paper:
        if not {"product", "plain"} <= set(args.paper_variants):
            parser.error("--paper-variants must include product and plain (their ratio)")
        args.repeats = args.repeats or 2
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
        split: dict[str, list[float]] = {}
        for repeat in range(repeats):
            raw += raw_images_per_second(config, args.epochs)
            rates, parts = pipeline_images_per_second(config, root / f"pipeline{repeat}")
            pipeline += rates
            for part, seconds in parts.items():
                split.setdefault(part, []).extend(seconds)
            print(f"  repeat {repeat + 1}: raw {statistics.median(raw):.1f} img/s, pipeline "
                  f"{statistics.median(pipeline):.1f} img/s (medians so far)", flush=True)
        raw_median, pipeline_median = statistics.median(raw), statistics.median(pipeline)
        print(f"(1) raw train step, in-memory tensors: {raw_median:.1f} images/s")
        print(f"(2) train() pipeline from PNG files:   {pipeline_median:.1f} images/s")
        train_phase = statistics.median(split["train phase"])
        print(f"(2) per-epoch split, medians over epochs after the first: train phase "
              f"{train_phase:.3f} s (of which the train steps at (1)'s rate "
              f"{n_train / raw_median:.3f} s, the input pipeline's share the rest), "
              + ", ".join(f"{part} {statistics.median(seconds):.3f} s"
                          for part, seconds in split.items() if part != "train phase"))

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
