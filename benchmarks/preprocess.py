"""Benchmark of the pre-processing chain: ours (OpenCV) against a straightforward
scikit-image/SciPy reference chain, and 1 -> 2 worker processes.

    .venv/bin/python benchmarks/preprocess.py            # 16 crops, 3 repeats
    .venv/bin/python benchmarks/preprocess.py --quick    # 6 crops, 1 repeat of the reference
    .venv/bin/python benchmarks/preprocess.py --calibrate  # the measurements behind the defaults

The images are synthetic 16-bit mass ROI crops (``mammohybrid.data.synth.render_roi_crop``) of
sizes spread geometrically from 100 to 1500 px. Both chains get the same images and the same
per-image NLM strength, run in one process with one thread, and every figure is the median of
the repeats. Outputs must agree within a stated tolerance (see ``TOLERANCE``). The last line is

    preprocess speedup_vs_reference=<x> scaling_2_workers=<y>

where the speed-up compares our default chain (which denoises large crops at
``working_max_side``) with the reference at full size, and the scaling is the throughput of the
batch worker pool (read PNG + chain + write PNG) with 2 processes over 1.

``--calibrate`` prints the tables docs/preprocessing.md quotes: OpenCV CLAHE clip limits
against MATLAB ``adapthisteq`` (NumPy re-implementation) and scikit-image, and the effect of
``working_max_side`` on the 229-px output and on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage, signal
from skimage.exposure import equalize_adapthist
from skimage.restoration import denoise_nl_means
from skimage.transform import resize

from mammohybrid.config import PreprocessConfig
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.imaging import write_png
from mammohybrid.preprocess import (
    CLAHE,
    ImageTask,
    NLMDenoise,
    PreparedOutcome,
    PreprocessPool,
    SingleChain,
    ToUint8,
    adapthisteq,
    build_chain,
    estimate_noise_sigma,
)

# Agreement of the 229-px outputs, mean absolute difference in grey levels per image. Most of
# the difference is CLAHE: scikit-image stretches each image to its min..max before and after
# equalising and clips at 0.01 * N pixels, where MATLAB adapthisteq (and OpenCV) do neither and
# clip at about 3.55 * N / 256 (docs/preprocessing.md). The NLM stages alone agree to < 1.
TOLERANCE = {"median": 8.0, "max": 16.0}


# ----------------------------------------------------------------------------- images
def make_crops(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` 16-bit crops, 100 to 1500 px, alternately benign and malignant, none too
    faint for the 193 threshold (an empty ROI is compared in the tests, not here: scikit-image
    maps the all-black image to white, OpenCV and MATLAB to almost black)."""
    rng = np.random.default_rng(seed)
    sizes = np.geomspace(100, 1500, count).round().astype(int)
    return [render_roi_crop(rng, int(size), malignant=bool(i % 2), faint=False)
            for i, size in enumerate(rng.permutation(sizes))]


# ----------------------------------------------------------------------------- chains
def reference_chain(strategy: str, output_size: int = 229) -> Callable[[np.ndarray], np.ndarray]:
    """The paper's chain written the straightforward way with scikit-image and SciPy."""
    filters: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "median": lambda x: ndimage.median_filter(x, 3, mode="nearest"),
        "gaussian": lambda x: ndimage.gaussian_filter(x, 0.5, truncate=2.0, mode="nearest"),
        # scipy returns NaN on a flat (e.g. all-masked) image.
        "wiener": lambda x: np.nan_to_num(signal.wiener(x, 3)),
    }

    def run(image16: np.ndarray) -> np.ndarray:
        grey = np.round(image16 / 257.0)  # MATLAB im2uint8
        h = max(estimate_noise_sigma(grey.astype(np.uint8)), 1.0)  # same h as ours
        denoised = np.round(denoise_nl_means(grey / 255.0, h=h / 255.0, patch_size=5,
                                             patch_distance=10, fast_mode=True) * 255.0)
        roi = denoised * (denoised > 193)
        filtered = np.clip(np.round(filters[strategy](roi)), 0, 255).astype(np.uint8)
        height, width = filtered.shape
        equalised = equalize_adapthist(filtered, kernel_size=(max(height // 8, 1),
                                                              max(width // 8, 1)),
                                       clip_limit=0.01, nbins=256)
        small = resize(equalised, (output_size, output_size), anti_aliasing=True)
        return np.round(small * 255.0).astype(np.uint8)

    return run


def ours(config: PreprocessConfig) -> Callable[[np.ndarray], np.ndarray]:
    chain = build_chain(config)
    return lambda image: chain(image).image


# ----------------------------------------------------------------------------- timing
def time_median(function: Callable[[], object], repeats: int) -> float:
    return statistics.median(interleaved({"f": function}, repeats)[0]["f"])


def interleaved(functions: dict[str, Callable[[], object]],
                repeats: int) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Time each function once per round, ``repeats`` rounds: (seconds per function, each
    function's last result). Interleaving exposes every function to the same load, so ratios
    stay meaningful on a shared machine whose free CPU changes from minute to minute."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    results: dict[str, object] = {}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            results[name] = function()
            times[name].append(time.perf_counter() - start)
    return times, results


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def _ok(outcome: PreparedOutcome) -> None:
    if not outcome.ok:
        raise RuntimeError(outcome.error)


# ----------------------------------------------------------------------------- benchmark
def benchmark(args: argparse.Namespace) -> int:
    cv2.setNumThreads(1)  # both chains single-threaded; parallelism is the workers' job
    count, repeats = (6, 1) if args.quick else (args.images, args.repeats)
    crops = make_crops(count)
    sides = sorted(max(c.shape) for c in crops)
    print(f"images: {count} synthetic 16-bit ROI crops, {sides[0]}-{sides[-1]} px, "
          f"strategy {args.strategy}, {repeats} interleaved repeat(s), medians")

    config = PreprocessConfig(strategy=args.strategy)
    chains = {
        "ours": ours(config),
        "ours at full size": ours(PreprocessConfig(strategy=args.strategy,
                                                   working_max_side=None)),
        "reference": reference_chain(args.strategy, config.output_size),
    }
    times, outputs = interleaved(
        {name: (lambda run=run: [run(crop) for crop in crops]) for name, run in chains.items()},
        repeats)
    for name in chains:
        print(f"{name + ':':<19} {count / statistics.median(times[name]):6.2f} images/s"
              + (f" (working_max_side={config.working_max_side})" if name == "ours" else ""))

    # Agreement: every output of both chains, and the NLM stage on its own.
    reference_out = outputs["reference"]
    differences = {name: [np.abs(a.astype(float) - b).mean()
                          for a, b in zip(outputs[name], reference_out, strict=True)]
                   for name in ("ours", "ours at full size")}
    nlm_differences = []
    for crop in crops[:3]:
        grey = ToUint8()(crop)
        h = NLMDenoise().strength(grey)
        theirs = np.round(denoise_nl_means(grey / 255.0, h=h / 255.0, patch_size=5,
                                           patch_distance=10, fast_mode=True) * 255.0)
        nlm_differences.append(np.abs(NLMDenoise(h=h)(grey) - theirs).mean())
    median_diff = statistics.median(differences["ours"])
    max_diff = max(differences["ours"])
    agree = median_diff <= TOLERANCE["median"] and max_diff <= TOLERANCE["max"]
    print(f"agreement, mean abs. grey-level difference per 229-px image: median "
          f"{median_diff:.2f}, max {max_diff:.2f} (full size: median "
          f"{statistics.median(differences['ours at full size']):.2f}, max "
          f"{max(differences['ours at full size']):.2f}); tolerance median <= "
          f"{TOLERANCE['median']:g}, max <= {TOLERANCE['max']:g}: {'OK' if agree else 'FAILED'}")
    print(f"NLM stage alone (OpenCV vs denoise_nl_means, same h): "
          f"{statistics.median(nlm_differences):.2f} grey levels")

    speedup = median_ratio(times["reference"], times["ours"])
    print(f"speed-up vs reference: {speedup:.2f} (ours at full size: "
          f"{median_ratio(times['reference'], times['ours at full size']):.2f})")

    # The batch's pool (read PNG, chain, write PNG) in this process and in 2 worker processes,
    # both started beforehand; each crop twice per round, so that a few large crops cannot
    # dominate.
    with tempfile.TemporaryDirectory() as tmp:
        sources = [str(write_png(Path(tmp) / f"crop{i}.png", crop))
                   for i, crop in enumerate(crops)]
        tasks = [ImageTask(i, source, target=str(Path(tmp) / f"out{i}.png"))
                 for i, source in enumerate(sources * 2)]
        preparation = SingleChain(config)
        with PreprocessPool(preparation, 0) as one, PreprocessPool(preparation, 2) as two:
            list(two.map(tasks[:2]))  # process start-up is not the steady state
            batch_times, _ = interleaved(
                {workers: (lambda pool=pool: [_ok(r) for r in pool.map(tasks, 2 * pool.workers)])
                 for workers, pool in (("1", one), ("2", two))}, max(repeats, 3))
    scaling = median_ratio(batch_times["1"], batch_times["2"])
    print(f"batch (read + chain + write PNG): 1 worker "
          f"{len(tasks) / statistics.median(batch_times['1']):.2f} images/s, 2 workers "
          f"{len(tasks) / statistics.median(batch_times['2']):.2f} images/s")
    print(f"preprocess speedup_vs_reference={speedup:.2f} scaling_2_workers={scaling:.2f}")
    return 0 if agree else 1


# ----------------------------------------------------------------------------- calibration
def calibrate(args: argparse.Namespace) -> int:
    """The measurements behind the defaults ``clahe.clip_limit`` and ``working_max_side``."""
    rng = np.random.default_rng(11)
    count = 12 if args.quick else 40
    crops = [render_roi_crop(rng, int(np.exp(rng.uniform(np.log(100), np.log(1000)))),
                             malignant=bool(i % 2), faint=False) for i in range(count)]

    def before_clahe(steps: list[str]) -> list[np.ndarray]:
        chain = build_chain(PreprocessConfig(strategy="custom", steps=steps,
                                             working_max_side=None))
        return [chain.intermediates(crop)[0][-2][1] for crop in crops]

    clips = [2.0, 2.5, 2.75, 3.0, 3.25, 3.5, 3.55, 4.0]
    print(f"CLAHE: mean abs. difference (grey levels) of OpenCV clipLimit vs MATLAB adapthisteq "
          f"(8x8 tiles, ClipLimit 0.01), {count} crops after NLM [-> ROI] -> median")
    print("  crops      " + " ".join(f"{c:>6g}" for c in clips) + "   scikit-image@3.0")
    for label, steps in (("masked", ["nlm", "roi", "median"]), ("unmasked", ["nlm", "median"])):
        images = before_clahe(steps)
        table = np.array([[np.abs(CLAHE(clip_limit=c)(x).astype(float) - adapthisteq(x)).mean()
                           for c in clips] for x in images])
        skimage_gap = np.mean([np.abs(CLAHE()(x).astype(float) - 255.0 * equalize_adapthist(
            x, kernel_size=(max(x.shape[0] // 8, 1), max(x.shape[1] // 8, 1)),
            clip_limit=0.01, nbins=256)).mean() for x in images])
        print(f"  {label:<10} " + " ".join(f"{v:6.2f}" for v in table.mean(axis=0))
              + f"   {skimage_gap:6.2f}")

    large = [render_roi_crop(rng, int(size), malignant=bool(i % 2), faint=False)
             for i, size in enumerate(np.linspace(400, 1500, 4 if args.quick else 10))]
    cv2.setNumThreads(1)
    full = ours(PreprocessConfig(working_max_side=None))
    reference_out = [full(x).astype(float) for x in large]
    t_full = time_median(lambda: [full(x) for x in large], 1 if args.quick else 3)
    print(f"working_max_side on {len(large)} crops of 400-1500 px (median strategy): mean abs. "
          f"difference of the 229-px output vs full size, and time")
    for side in (1024, 768, 640, 512, 384, 229):
        run = ours(PreprocessConfig(working_max_side=side))
        diff = [np.abs(run(x) - r) for x, r in zip(large, reference_out, strict=True)]
        seconds = time_median(lambda run=run: [run(x) for x in large], 1 if args.quick else 3)
        print(f"  {side:>5}: mean {np.mean([d.mean() for d in diff]):.2f}, worst image "
              f"{max(d.mean() for d in diff):.2f}, 95th pct pixel "
              f"{np.mean([np.percentile(d, 95) for d in diff]):.1f}; "
              f"{seconds:.2f} s vs {t_full:.2f} s ({t_full / seconds:.1f}x faster)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    parser.add_argument("--images", type=int, default=16, help="number of crops (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (default 3)")
    parser.add_argument("--strategy", default="median", choices=["median", "gaussian", "wiener"])
    parser.add_argument("--calibrate", action="store_true",
                        help="print the CLAHE and working-size measurements instead")
    args = parser.parse_args(argv)
    return calibrate(args) if args.calibrate else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
