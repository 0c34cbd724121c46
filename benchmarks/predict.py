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

The same run is also exported to ONNX (``mammohybrid export``: the time and size are printed)
and measured on ONNX Runtime (``Predictor.from_run(run, backend="onnxruntime")``) the same two
ways, beside TensorFlow; ``--no-onnx`` leaves it out (the paper model's export needs about
18 GB of memory). The parity figure is the largest |p_tensorflow - p_onnxruntime| over every
crop of every raw and end-to-end run.

Raw and end-to-end runs, and the two backends, alternate, so that a change in the machine's
load hits all; every figure is the median of the repeats. ``--workers`` defaults to every
usable core, as ``mammohybrid predict`` does. The last two lines are

    predict_onnxruntime images_per_s=<end to end> forward_images_per_s=<raw> workers=<n>
        parity_max_abs_diff=<max |p_tensorflow - p_onnxruntime|>
    predict images_per_s=<end to end> forward_images_per_s=<raw> workers=<n>
        end_to_end_efficiency=<end-to-end images/s / raw images/s>

(one line each; the first is missing with ``--no-onnx``; the figures of ``predict`` are
TensorFlow's). On a GPU machine the model is far faster than pre-processing: end to end is then
bounded by the pre-processing rate of the ``workers`` cores, which ``pre-processing alone``
shows.

On a CPU-only machine the model and the pre-processing share the cores, so the ratio is
bounded by ``1 / (1 + raw / pre-processing alone)`` (printed as "no-gain bound" when the
model used every core); the overlap can only beat it by filling cycles the model leaves idle.
"""

from __future__ import annotations

import argparse
import functools
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
        size = round(np.exp(rng.uniform(np.log(100), np.log(520))))
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
    from mammohybrid.config import Config
    from mammohybrid.training.toydata import write_untrained_run

    config = Config(model=model_section)
    config.preprocess.output_size = model_section.input_size
    return write_untrained_run(folder, config, "benchmark").root


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
    from mammohybrid.preprocess import ImageTask, to_model_input
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
        backends = {"tensorflow": predictor}
        if not args.no_onnx:
            backends["onnxruntime"] = onnx_predictor(run, args.niceness)

        # In-memory model inputs: the very tensors the end-to-end run feeds the model.
        processed = [predictor.ensemble(read_image(p))[predictor.ensemble.primary].image
                     for p in paths]
        batches = [to_model_input(processed[i:i + args.batch_size])
                   for i in range(0, count, args.batch_size)]

        def raw(model: Predictor) -> np.ndarray:
            return np.concatenate([model.predict_batch(batch) for batch in batches])

        def end_to_end(model: Predictor) -> np.ndarray:
            frame = model.predict_paths(paths, batch_size=args.batch_size, workers=args.workers)
            if (frame["error"] != "").any():
                raise RuntimeError(f"prediction failed: {frame['error'].iloc[0]}")
            return frame["probability"].to_numpy()

        for name, model in backends.items():
            raw(model)  # traces the model for the full and the partial batch shape
            cold = seconds(functools.partial(end_to_end, model))  # starts the worker pool
            print(f"cold end to end, {name} (worker start-up included): {count / cold:.2f} "
                  "images/s")
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in backends}
        raw_times: dict[str, list[float]] = {name: [] for name in backends}
        e2e_times: dict[str, list[float]] = {name: [] for name in backends}
        for _ in range(repeats):  # runs and backends alternate: a change of load hits all
            for times, run_once in ((raw_times, raw), (e2e_times, end_to_end)):
                for name, model in backends.items():
                    start = time.perf_counter()
                    outputs[name].append(run_once(model))
                    times[name].append(time.perf_counter() - start)
        raw_rate, e2e_rate = ({name: count / statistics.median(times[name]) for name in backends}
                              for times in (raw_times, e2e_times))
        prep_pool = predictor.preprocess_pool(args.workers)
        tasks = [ImageTask(index, path) for index, path in enumerate(paths)]
        prep_rate = count / statistics.median(
            seconds(lambda: list(prep_pool.map(tasks))) for _ in range(repeats))
        for model in backends.values():
            model.close()
        print(f"raw model forward (in-memory tensors): {raw_rate['tensorflow']:.2f} images/s")
        print(f"pre-processing alone (read + chain, {args.workers} worker(s)): "
              f"{prep_rate:.2f} images/s")
        print(f"end to end (predict_paths): {e2e_rate['tensorflow']:.2f} images/s")
        print(f"end to end / pre-processing alone: {e2e_rate['tensorflow'] / prep_rate:.3f} (1 = "
              "the model's cost entirely hidden behind pre-processing)")
        print(f"no-gain bound when model and pre-processing share every core: "
              f"{1 / (1 + raw_rate['tensorflow'] / prep_rate):.3f}")
        if "onnxruntime" in backends:
            # Every output of the alternating runs, raw and end to end, against TensorFlow's.
            parity = max(float(np.max(np.abs(o - k))) for o, k in zip(
                outputs["onnxruntime"], outputs["tensorflow"], strict=True))
            print(f"onnxruntime: raw model forward {raw_rate['onnxruntime']:.2f} images/s "
                  f"({raw_rate['onnxruntime'] / raw_rate['tensorflow']:.2f}x TensorFlow), end "
                  f"to end {e2e_rate['onnxruntime']:.2f} images/s "
                  f"({e2e_rate['onnxruntime'] / e2e_rate['tensorflow']:.2f}x); max "
                  f"|p_tensorflow - p_onnxruntime| = {parity:.2g} over {count} crops x "
                  f"{2 * repeats} runs")
        if args.sweep:
            sweep(predictor, paths, args, repeats, lambda: raw(predictor), count)
    if "onnxruntime" in backends:
        print(f"predict_onnxruntime images_per_s={e2e_rate['onnxruntime']:.2f} "
              f"forward_images_per_s={raw_rate['onnxruntime']:.2f} workers={args.workers} "
              f"parity_max_abs_diff={parity:.3g}")
    efficiency = e2e_rate["tensorflow"] / raw_rate["tensorflow"]
    print(f"predict images_per_s={e2e_rate['tensorflow']:.2f} "
          f"forward_images_per_s={raw_rate['tensorflow']:.2f} "
          f"workers={args.workers} end_to_end_efficiency={efficiency:.3f}")
    return 0


def onnx_predictor(run: Path, niceness: int):
    """The run exported to ONNX (``mammohybrid export``) and loaded on ONNX Runtime."""
    from mammohybrid.inference import Predictor
    from mammohybrid.inference.export import export_run

    result = export_run(run, "onnx")
    print(f"ONNX export: {result.seconds:.1f} s, {result.bytes / 1e6:.1f} MB, checked to "
          f"{result.exported.parity_max_abs_diff:.2g} on probe images")
    predictor = Predictor.from_run(run, backend="onnxruntime")
    predictor.worker_niceness = niceness
    return predictor


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
                e2e_times.append(seconds(functools.partial(
                    predictor.predict_paths, paths, batch_size=args.batch_size, workers=workers)))
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
    parser.add_argument("--no-onnx", action="store_true",
                        help="TensorFlow only: no ONNX export and onnxruntime runs (the paper "
                             "model's export needs about 18 GB of memory)")
    args = parser.parse_args(argv)
    if args.workers is None:
        from mammohybrid.workers import usable_cores

        args.workers = usable_cores()
    return benchmark(args)


if __name__ == "__main__":
    from mammohybrid.tensorflow_env import configure_tensorflow

    configure_tensorflow(quiet=True)  # TensorFlow as the command line starts it
    sys.exit(main())
