"""End-to-end training throughput of ``mammohybrid train -c paper`` as a user runs it, against
the raw train step of the same model on in-memory tensors, in one run.

    python benchmarks/gpu_train_e2e.py                      # paper model, 229 px, 3 epochs
    python benchmarks/gpu_train_e2e.py --epochs 4 --crops 800
    python benchmarks/gpu_train_e2e.py --xla                # also the XLA step, no augmentation
    python benchmarks/gpu_train_e2e.py --tiny               # small CNNs at 64 px: a CPU check

1. data: ``--crops`` training and ``--val-crops`` validation synthetic 16-bit mass ROI crops
   (:func:`mammohybrid.data.synth.render_roi_crop`, 100-520 px like CBIS-DDSM; 1,318 + 263 by
   default, the size of CBIS-DDSM's mass training set), pre-processed with
   ``mammohybrid preprocess -c paper`` (the paper's median chain, all cores);
2. end to end: ``mammohybrid train -c paper`` in a subprocess, with random weights (nothing to
   download), ``train.epochs=--epochs`` and any ``--set``. Per-epoch wall times come from the
   run's ``run.json`` (``epoch_seconds``: training, the validation pass and the backup). The
   first epoch minus the median of the later ones is the one-off cost of the first epoch
   (graph tracing and compilation, filling the decoded-image cache); images/s is the training
   images over the median later epoch;
3. raw step: in this process, the same model (config, dtype policy, determinism, strategy) on
   in-memory batches of the same size, compiled with ``jit_compile=True`` requested (Keras
   falls back to a plain graph where XLA cannot compile the model: it is printed), timed over
   ``--raw-steps`` ``train_on_batch`` calls after two warm-up calls; its forward pass too, for
   the ideal epoch (train step + validation forward, no input pipeline). With ``--xla``, also
   the XLA-jitted step of the same network without its augmentation block (TensorFlow's
   image-transform op has no XLA kernel): what taking the augmentation out of the compiled
   step could gain, at the price of one more compilation (minutes for the paper model).

The last line is

    gpu_train images_per_s=<2> pipeline_efficiency=<2 / 3 train step> trial_minutes=<m>

where ``trial_minutes`` is the 100-epoch paper trial estimated from this run: start-up and
finishing (the train subprocess' wall time outside its epochs), the first epoch's one-off cost
and 100 later epochs.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SOURCE))  # runs from a checkout

TRIAL_EPOCHS = 100  # the paper's training length
PRESET = "paper"
# Small CNNs trained from scratch at 64 px: the whole pipeline in a couple of minutes on CPU.
TINY_OVERRIDES = ["model.backbones=[tinycnn,smallcnn]", "model.input_size=64",
                  "preprocess.output_size=64"]


def log(message: str) -> None:
    print(f"[gpu_train] {message}", flush=True)


# --------------------------------------------------------------------------- data
def _write_crop(task: tuple[str, int, bool, int]) -> None:
    """Render and write one crop (a worker process: NumPy and OpenCV only)."""
    import numpy as np

    from mammohybrid.data.synth import render_roi_crop
    from mammohybrid.imaging import write_png

    path, seed, malignant, max_side = task
    rng = np.random.default_rng(seed)
    side = round(np.exp(rng.uniform(np.log(100), np.log(max_side))))
    write_png(Path(path), render_roi_crop(rng, side, malignant))


def write_raw_dataset(folder: Path, crops: int, val_crops: int, max_side: int,
                      workers: int) -> Path:
    """Synthetic 16-bit crops and their raw manifest (one patient per crop, classes
    alternating); returns the manifest path."""
    import pandas as pd

    from mammohybrid.data.manifest import write_manifest

    rows, tasks = [], []
    for split, count in (("train", crops), ("val", val_crops)):
        for index in range(count):
            path = folder / "images" / f"{split}_{index:05d}.png"
            malignant = bool(index % 2)
            tasks.append((str(path), len(tasks), malignant, max_side))
            rows.append({"image_path": str(path), "label": int(malignant),
                         "pathology": "MALIGNANT" if malignant else "BENIGN",
                         "patient_id": f"{split}{index}", "lesion_id": f"{split}{index}",
                         "split": split, "dataset": "synthetic"})
    (folder / "images").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_write_crop, tasks, chunksize=16))
    manifest = folder / "raw.csv"
    write_manifest(pd.DataFrame(rows), manifest)
    return manifest


# --------------------------------------------------------------------------- the CLI
def run_cli(arguments: list[str]) -> float:
    """Run ``mammohybrid ARGUMENTS`` as a user does (its output shown); wall seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(SOURCE), os.environ.get("PYTHONPATH", "")]))}
    command = [sys.executable, "-m", "mammohybrid.cli", *arguments]
    log("$ mammohybrid " + " ".join(arguments))
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - started


def set_options(overrides: list[str]) -> list[str]:
    return [option for override in overrides for option in ("--set", override)]


# --------------------------------------------------------------------------- raw step
def seconds_per_call(call: Any, calls: int) -> tuple[float, float]:
    """(seconds of the first call, mean seconds per call over ``calls`` after two warm-up
    calls). Each call returns host values, so asynchronous dispatch cannot flatter it."""
    started = time.perf_counter()
    call()
    first = time.perf_counter() - started
    call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return first, (time.perf_counter() - started) / calls


def raw_step(config: Any, steps: int, jit: bool, deterministic: bool) -> dict[str, Any]:
    """Train-step and forward images/s of ``config``'s model on in-memory batches."""
    import keras
    import numpy as np

    from mammohybrid.models import build_model
    from mammohybrid.training.runtime import training_runtime
    from mammohybrid.training.trainer import compile_for_training

    batch_size, size = config.train.batch_size, config.model.input_size
    train_config = config.train.model_copy(update={"deterministic": deterministic})
    with training_runtime(train_config, config.seed) as runtime:
        with runtime.strategy.scope():
            model = build_model(config.model)
            compile_for_training(model, config.train, steps_per_epoch=steps)
        if jit:
            model.jit_compile = True  # Keras warns and keeps a plain graph where XLA cannot
        rng = np.random.default_rng(0)
        batches = [rng.uniform(0, 255, (batch_size, size, size, 3)).astype("float32")
                   for _ in range(4)]
        labels = (np.arange(batch_size) % 2).astype("float32")[:, None]
        step_index = iter(range(10**9))

        def train_step() -> None:
            model.train_on_batch(batches[next(step_index) % len(batches)], labels,
                                 return_dict=True)

        def forward() -> None:
            np.asarray(model.predict_on_batch(batches[next(step_index) % len(batches)]))

        first_train, train_seconds = seconds_per_call(train_step, steps)
        _, forward_seconds = seconds_per_call(forward, steps)
        result = {"jit_compile": bool(model.jit_compile), "augment": config.model.augment,
                  "deterministic": deterministic, "mixed_precision": runtime.mixed_precision,
                  "devices": list(runtime.devices),
                  "first_step_seconds": round(first_train, 2),
                  "train_images_per_s": round(batch_size / train_seconds, 2),
                  "forward_images_per_s": round(batch_size / forward_seconds, 2)}
    keras.backend.clear_session()
    return result


# --------------------------------------------------------------------------- the run
def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from mammohybrid.config import load_config
    from mammohybrid.workers import usable_cores

    workers = args.workers or usable_cores()
    overrides = ["model.weights=none", f"train.epochs={args.epochs}",
                 *(TINY_OVERRIDES if args.tiny else []), *args.set]
    with tempfile.TemporaryDirectory(prefix="gpu_train_e2e.") as scratch:
        folder = Path(args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        log(f"{'tiny' if args.tiny else 'full'} mode; {args.crops} train + {args.val_crops} "
            f"val crops; {args.epochs} epochs; {workers} worker(s); folder {folder}")

        started = time.perf_counter()
        raw_manifest = write_raw_dataset(folder / "data", args.crops, args.val_crops,
                                         args.max_side, workers)
        render_seconds = time.perf_counter() - started
        log(f"rendered {args.crops + args.val_crops} crops in {render_seconds:.1f} s")
        preprocessed = folder / "preprocessed"
        preprocess_seconds = run_cli(
            ["preprocess", str(raw_manifest), "--out", str(preprocessed), "-c", PRESET,
             "--workers", str(workers), *set_options(overrides)])

        run = folder / "run"
        train_overrides = [f"data.manifest={preprocessed / 'manifest.csv'}", *overrides]
        train_seconds = run_cli(["train", "-c", PRESET, "--out", str(run),
                                 *set_options(train_overrides)])
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))

    epochs = [float(s) for s in info["epoch_seconds"]]
    steady = statistics.median(epochs[1:])
    first_epoch_overhead = epochs[0] - steady
    outside_epochs = train_seconds - sum(epochs)
    train_images, val_images = info["images"]["train"], info["images"]["val"]
    end_to_end = train_images / steady
    log(f"epochs (s): {', '.join(f'{s:.2f}' for s in epochs)}; steady {steady:.2f} s = "
        f"{end_to_end:.2f} train images/s; first-epoch overhead {first_epoch_overhead:.1f} s; "
        f"start-up and finishing {outside_epochs:.1f} s")

    config = load_config(PRESET, overrides)
    log("raw step of the same model on in-memory tensors (jit_compile=True requested)")
    same = raw_step(config, args.raw_steps, jit=True, deterministic=config.train.deterministic)
    log(json.dumps(same))
    xla = None
    if args.xla:
        log("XLA-jitted step of the same network without its augmentation block")
        no_augment = load_config(PRESET, [*overrides, "model.augment=none"])
        xla = raw_step(no_augment, args.raw_steps, jit=True, deterministic=False)
        log(json.dumps(xla))

    ideal_epoch = (train_images / same["train_images_per_s"]
                   + val_images / same["forward_images_per_s"])
    trial_seconds = outside_epochs + first_epoch_overhead + TRIAL_EPOCHS * steady
    return {
        "mode": "tiny" if args.tiny else "full", "overrides": overrides,
        "runtime": info.get("runtime"), "images": info["images"],
        "batch_size": config.train.batch_size, "workers": workers,
        "render_seconds": round(render_seconds, 1),
        "preprocess_seconds": round(preprocess_seconds, 1),
        "train_subprocess_seconds": round(train_seconds, 1),
        "epoch_seconds": epochs, "steady_epoch_seconds": round(steady, 3),
        "first_epoch_overhead_seconds": round(first_epoch_overhead, 2),
        "outside_epochs_seconds": round(outside_epochs, 2),
        "end_to_end_images_per_s": round(end_to_end, 2),
        "raw_step": same, "xla_step_without_augmentation": xla,
        "ideal_epoch_seconds": round(ideal_epoch, 3),
        "pipeline_efficiency": round(end_to_end / same["train_images_per_s"], 3),
        "trial_minutes": round(trial_seconds / 60, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="small CNNs at 64 px, 96 + 32 crops of at most 160 px (CPU check)")
    parser.add_argument("--epochs", type=int, default=3, help="at least 2 (default 3)")
    parser.add_argument("--crops", type=int, default=None,
                        help="training crops (default 1318; --tiny 96)")
    parser.add_argument("--val-crops", type=int, default=None,
                        help="validation crops (default a fifth of --crops)")
    parser.add_argument("--raw-steps", type=int, default=None,
                        help="timed raw train steps (default 30; --tiny 10)")
    parser.add_argument("--workers", type=int, default=0,
                        help="pre-processing processes (default: every usable core)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another config override for preprocess, train and the raw step "
                             "(repeatable), e.g. train.deterministic=false")
    parser.add_argument("--xla", action="store_true",
                        help="also time the XLA-jitted step of the network without its "
                             "augmentation block (one more compilation)")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep it (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is timed apart)")
    args.crops = args.crops or (96 if args.tiny else 1318)
    args.val_crops = args.val_crops or max(2, args.crops // 5)
    args.raw_steps = args.raw_steps or (10 if args.tiny else 30)
    args.max_side = 160 if args.tiny else 520
    result = benchmark(args)
    print(json.dumps(result, indent=2), flush=True)
    values = (result["end_to_end_images_per_s"], result["pipeline_efficiency"],
              result["trial_minutes"])
    if not all(math.isfinite(value) and value > 0 for value in values):
        raise SystemExit(f"not a measurement: {values}")
    print(f"gpu_train images_per_s={values[0]} pipeline_efficiency={values[1]} "
          f"trial_minutes={values[2]}", flush=True)
    return 0


if __name__ == "__main__":
    from mammohybrid.tensorflow_env import configure_tensorflow

    configure_tensorflow(quiet=True)  # TensorFlow as the command line starts it
    sys.exit(main())
