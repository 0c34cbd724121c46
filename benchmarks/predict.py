"""Benchmark of ``mammohybrid predict``: end-to-end throughput (read file + pre-process + model)
against the raw model forward throughput on in-memory tensors, same model, same batch size.

    .venv/bin/python benchmarks/predict.py            # 64 crops, 5 repeats
    .venv/bin/python benchmarks/predict.py --quick    # 24 crops, 2 repeats
    .venv/bin/python benchmarks/predict.py --sweep    # also: workers x niceness (the default's
                                                      # measurements, docs/prediction.md)

The model is the ``paper`` preset's (ResNet50V2 + EfficientNetB7, random weights) unless
``--preset``/``--backbones`` say otherwise; it is saved in a run directory written here and
loaded back through :meth:`Predictor.from_run`, exactly as ``predict`` does. The inputs are
synthetic 16-bit mass ROI crops (:func:`mammohybrid.data.synth.render_roi_crop`, 100 to 520 px
like the synthetic CBIS-DDSM) written half as PNG, half as DICOM; the run's pre-processing is the
paper's median chain.

- raw: :meth:`Predictor.predict_batch` over the same images, already pre-processed and in
  memory, in batches of ``--batch-size`` (the last one partial, as end to end);
- end to end: :meth:`Predictor.predict_paths` on the files with ``--workers`` processes (pool
  already started: its start-up is printed separately as the cold run);
- pre-processing alone: the same worker pool without the model.

Raw and end-to-end runs alternate, so that a change in the machine's load hits both; every
figure is the median of the repeats. ``--workers`` defaults to every usable core, as
``mammohybrid predict`` does. The last line is

    predict images_per_s=<end to end> forward_images_per_s=<raw> workers=<n>
        end_to_end_efficiency=<end-to-end images/s / raw images/s>

(one line). On a GPU machine the model is far faster than pre-processing: end to end is then
bounded by the pre-processing rate of the ``workers`` cores, which ``pre-processing alone``
shows.

On a CPU-only machine the model and the pre-processing share the cores, so the ratio is
bounded by ``1 / (1 + raw / pre-processing alone)`` (printed as "no-gain bound" when the
model used every core); the overlap can only beat it by filling cycles the model leaves idle.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def make_inputs(folder: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` synthetic 16-bit crops, 100-520 px (log-uniform), alternately benign and
    malignant, written alternately as PNG and DICOM."""
    from mammohybrid.data.synth import render_roi_crop
    from mammohybrid.imaging import write_dicom, write_png

    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        size = int(round(np.exp(rng.uniform(np.log(100), np.log(520)))))
        crop = render_roi_crop(rng, size, malignant=bool(index % 2))
        writer, suffix = (write_png, "png") if index % 2 == 0 else (write_dicom, "dcm")
        paths.append(str(writer(folder / f"crop{index:03d}.{suffix}", crop)))
    return paths


def model_config(preset: str, backbones: list[str] | None, input_size: int):
    """The benchmark's model section: the preset's, with --backbones instead of its own if
    given; always random weights (nothing to download)."""
    from mammohybrid.config import load_config

    base, source = load_config(preset).model, f"preset {preset}"
    if backbones:
        base, source = base.model_copy(update={"backbones": backbones}), "--backbones"
    return base.model_copy(update={"weights": None, "input_size": input_size}), source


def write_run(folder: Path, model_section) -> Path:
    """A finished run directory: random-weight model, default (median) pre-processing."""
    from mammohybrid.config import Config, save_config
    from mammohybrid.decision import ThresholdChoice
    from mammohybrid.fileio import atomic_write_json
    from mammohybrid.models import build_model
    from mammohybrid.run_dir import RunDir

    run = RunDir.at(folder)
    config = Config(model=model_section)
    config.preprocess.output_size = model_section.input_size
    folder.mkdir(parents=True, exist_ok=True)
    build_model(config.model).save(run.model)
    save_config(config, run.config)
    atomic_write_json(run.threshold,
                      ThresholdChoice(0.5, "fixed", "none", "benchmark").to_dict())
    run.done.write_text("benchmark\n")
    return folder


def model_device() -> str:
    """Where TensorFlow runs the model: its first GPU's name, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def seconds(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def benchmark(args: argparse.Namespace) -> int:
    from mammohybrid.imaging import read_image
    from mammohybrid.inference import Predictor
    from mammohybrid.preprocess import to_model_input
    from mammohybrid.workers import usable_cores

    count, repeats = (24, 2) if args.quick else (args.images, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        section, source = model_config(args.preset, args.backbones, args.input_size)
        run = write_run(folder / "run", section)
        paths = make_inputs(folder / "inputs", count)
        predictor = Predictor.from_run(run)
        predictor.worker_niceness = args.niceness
        print(f"model: {' + '.join(section.backbones)} ({source}), {section.input_size} px, "
              f"random weights; batch {args.batch_size}")
        print(f"inputs: {count} synthetic 16-bit crops (PNG and DICOM), pre-processing "
              f"'{predictor.config.preprocess.strategy}'; {args.workers} worker process(es), "
              f"niceness {args.niceness}; {usable_cores()} usable CPU core(s); model on "
              f"{model_device()}; repeats {repeats} (medians)")

        # In-memory model inputs: the very tensors the end-to-end run feeds the model.
        processed = [predictor.ensemble(read_image(p))[predictor.ensemble.primary].image
                     for p in paths]
        batches = [to_model_input(processed[i:i + args.batch_size])
                   for i in range(0, count, args.batch_size)]

        def raw() -> None:
            for batch in batches:
                predictor.predict_batch(batch)

        def end_to_end() -> None:
            frame = predictor.predict_paths(paths, batch_size=args.batch_size,
                                            workers=args.workers)
            if (frame["error"] != "").any():
                raise RuntimeError(f"prediction failed: {frame['error'].iloc[0]}")

        raw()  # traces the model for the full and the partial batch shape
        cold = seconds(end_to_end)  # starts the worker pool
        print(f"cold end to end (worker start-up included): {count / cold:.2f} images/s")
        raw_times, e2e_times = [], []
        for _ in range(repeats):
            raw_times.append(seconds(raw))
            e2e_times.append(seconds(end_to_end))
        raw_rate = count / statistics.median(raw_times)
        e2e_rate = count / statistics.median(e2e_times)
        prep_pool = predictor.preparer(args.workers)
        prep_rate = count / statistics.median(
            seconds(lambda: list(prep_pool.map(paths))) for _ in range(repeats))
        predictor.close()
        print(f"raw model forward (in-memory tensors): {raw_rate:.2f} images/s")
        print(f"pre-processing alone (read + chain, {args.workers} worker(s)): "
              f"{prep_rate:.2f} images/s")
        print(f"end to end (predict_paths): {e2e_rate:.2f} images/s")
        print(f"end to end / pre-processing alone: {e2e_rate / prep_rate:.3f} (1 = the model's "
              "cost entirely hidden behind pre-processing)")
        print(f"no-gain bound when model and pre-processing share every core: "
              f"{1 / (1 + raw_rate / prep_rate):.3f}")
        if args.sweep:
            sweep(predictor, paths, args, repeats, raw, count)
    efficiency = e2e_rate / raw_rate
    print(f"predict images_per_s={e2e_rate:.2f} forward_images_per_s={raw_rate:.2f} "
          f"workers={args.workers} end_to_end_efficiency={efficiency:.3f}")
    return 0


def sweep(predictor, paths: list[str], args: argparse.Namespace, repeats: int,
          raw: Callable[[], None], count: int) -> None:
    """End-to-end efficiency for 1 and 2 (or --workers) workers at niceness 0 and 10."""
    print("sweep: workers niceness -> end-to-end images/s, efficiency vs raw in the same run")
    for workers in sorted({1, 2, args.workers}):
        for niceness in (0, 10):
            predictor.worker_niceness = niceness
            predictor.predict_paths(paths[:workers], workers=workers)  # start the pool
            raw_times, e2e_times = [], []
            for _ in range(repeats):
                raw_times.append(seconds(raw))
                e2e_times.append(seconds(lambda: predictor.predict_paths(
                    paths, batch_size=args.batch_size, workers=workers)))
            predictor.close()
            rate = count / statistics.median(e2e_times)
            print(f"  {workers} {niceness:>2} -> {rate:.2f} images/s, efficiency "
                  f"{statistics.median(raw_times) / statistics.median(e2e_times):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="24 images, 2 repeats")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None,
                        help="pre-processing processes (default: every usable core, as "
                             "predict)")
    parser.add_argument("--niceness", type=int, default=10,
                        help="how much lower the workers' priority is (Predictor default 10)")
    parser.add_argument("--preset", default="paper",
                        help="config preset whose model is measured (scratch-cnn: a "
                             "CPU-sized model, which pre-processing outruns by far)")
    parser.add_argument("--backbones", type=lambda s: s.split(","), default=None,
                        help="comma-separated backbones instead of the preset's")
    parser.add_argument("--input-size", type=int, default=229)
    parser.add_argument("--sweep", action="store_true",
                        help="also measure workers 1/2 x niceness 0/10")
    args = parser.parse_args(argv)
    if args.workers is None:
        from mammohybrid.workers import usable_cores

        args.workers = usable_cores()
    return benchmark(args)


if __name__ == "__main__":
    from mammohybrid.tensorflow_env import configure_tensorflow

    configure_tensorflow(quiet=True)  # TensorFlow as the command line starts it
    sys.exit(main())
