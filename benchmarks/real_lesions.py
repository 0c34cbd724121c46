"""Benchmark on real lesions: repeated patient-grouped cross-validation on the mini-MIAS
development set (``../shared/data/mias-dev``: 58 non-mass lesion crops of 51 patients).

    .venv/bin/python benchmarks/real_lesions.py                     # 5 folds x 5 repeats
    .venv/bin/python benchmarks/real_lesions.py --repeats 1         # quicker, wider intervals
    .venv/bin/python benchmarks/real_lesions.py --rows baseline,recommended
    .venv/bin/python benchmarks/real_lesions.py --timing            # + the cv cost

Rows (every row sees the same folds: ``mammohybrid.workflows.cv.fold_manifests``, stratified by
patient class, seed ``data.split_seed + repeat``):

- ``baseline``: frozen ImageNet EfficientNet-Lite0, global average pooling, standardisation +
  L2 logistic regression (scikit-learn, C = 1) on the raw crops (resized to 229 px), fitted on
  each fold's training patients (train + val);
- ``paper-chain``: the same baseline on the paper's median chain (threshold 193, empty ROIs
  kept black: ``empty_policy: keep``);
- ``cpu-quick``: ``mammohybrid cv cpu-quick`` as shipped (the light hybrid's head trained by SGD
  on cached features of the median chain), through the product's ``run_cv``;
- ``recommended``: ``mammohybrid cv real-lesions`` through ``run_cv``;
- ``selected``: ``mammohybrid select real-lesions``, the nested cross-validation of the
  candidates of ``grids/real-lesions.yaml`` (the choice made inside each outer fold, by the
  one-standard-error rule), through ``run_select``.

Each row: fold AUC mean +- std over the folds x repeats, and the pooled out-of-fold AUC (every
lesion predicted once per repeat; mean over repeats) with a 95 % patient-bootstrap interval
(patients resampled with replacement, the statistic recomputed on every repeat), and its paired
difference to the baseline (the same resampled patients for both sides:
``mammohybrid.evaluation.paired``). The cv rows are resumable: their folds are kept under
``--out`` and a rerun reuses finished ones. ``--timing`` also measures, each in a fresh process,
alternating, one pass of the recommended preset's feature extraction over the crops and a whole
``cv`` of it (features not cached, pre-processing cached), and prints their ratio. The last line
is

    real recommended_auc=<x> baseline_auc=<y> paired_diff=<d> paired_lo=<l>
         paper_chain_auc=<z> candidates=<n>                             (on one line)

(pooled out-of-fold AUCs; ``paired_diff`` and ``paired_lo``: recommended - baseline and the
lower end of its interval; ``candidates``: how many the nested selection compared). The crops
and what each row pre-processes are written under ``--out`` too; nothing is written to the data
folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mammohybrid.tensorflow_env import configure_tensorflow

configure_tensorflow(quiet=True)  # TensorFlow as the command line starts it

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from mammohybrid.config import Config, load_config, save_config, with_overrides  # noqa: E402
from mammohybrid.data.ingest import run_ingest  # noqa: E402
from mammohybrid.data.manifest import read_manifest, usable_rows  # noqa: E402
from mammohybrid.evaluation.paired import (  # noqa: E402
    paired_auc_difference,
    pooled_auc_with_interval,
)
from mammohybrid.preprocess.cache import ensure_preprocessed  # noqa: E402
from mammohybrid.training.linear_head import PooledFeatureCache  # noqa: E402
from mammohybrid.workflows.cv import (  # noqa: E402
    fold_manifests,
    run_cv,
    source_predictions,
)
from mammohybrid.workflows.grid import load_grid  # noqa: E402
from mammohybrid.workflows.select import SelectSettings, run_select  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "mias-dev"
ROWS = ("baseline", "paper-chain", "cpu-quick", "recommended", "selected")
DEFAULT_ROWS = ("baseline", "paper-chain", "recommended", "selected")
RECOMMENDED = "real-lesions"  # the preset ...
CANDIDATES = "real-lesions"  # ... and the grid of candidates it was chosen among


# --------------------------------------------------------------------------- the rows
def baseline_config(strategy: str) -> Config:
    """Frozen ImageNet EfficientNet-Lite0 features of ``strategy``'s images (no TTA)."""
    return load_config(None, [
        f"preprocess.strategy={strategy}", "preprocess.roi.empty_policy=keep",
        "model.backbones=[efficientnetlite0]", "model.weights=imagenet",
        "model.trainable=none", "model.augment=none", "model.pooling=avg"])


def baseline_predictions(manifest: Path, strategy: str, folds: int,
                         repeats: int) -> pd.DataFrame:
    """Out-of-fold probabilities of the baseline (one row per lesion, fold and repeat)."""
    config = baseline_config(strategy)
    processed = ensure_preprocessed(manifest, config)
    frame = usable_rows(read_manifest(processed, require_split=False))
    features = PooledFeatureCache(config).features(frame)
    rows = []
    for repeat in range(repeats):
        for fold, fold_frame in enumerate(fold_manifests(frame, folds, repeat, config)):
            held = (fold_frame["split"] == "test").to_numpy()
            model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=10_000))
            model.fit(features[~held], frame["label"][~held])
            rows.append(pd.DataFrame({
                "image": frame["image_path"][held], "patient": frame["patient_id"][held],
                "label": frame["label"][held], "probability": model.predict_proba(
                    features[held])[:, 1], "repeat": repeat, "fold": fold}))
    # Paired with the other rows by the source crop.
    sources = dict(zip(frame["image_path"], frame["source_path"], strict=True))
    predictions = pd.concat(rows, ignore_index=True)
    return predictions.assign(image=predictions["image"].map(sources))


def cv_predictions(manifest: Path, preset: str, folds: int, repeats: int,
                   out: Path) -> pd.DataFrame:
    """Out-of-fold probabilities of ``mammohybrid cv PRESET`` (the product, resumable)."""
    config = with_overrides(load_config(preset), [f"data.manifest={manifest}"])
    # Every row of this manifest is development data: the test split is folded in too.
    result = run_cv(config, out / f"cv-{preset}", folds=folds, repeats=repeats,
                    include_test=True)
    return source_predictions(result.out_dir)


def selected_predictions(manifest: Path, folds: int, repeats: int,
                         out: Path) -> tuple[pd.DataFrame, dict]:
    """The nested out-of-fold probabilities of ``mammohybrid select real-lesions``."""
    result = run_select(load_grid(CANDIDATES, manifest=manifest), out / "select",
                        SelectSettings(folds=folds, repeats=repeats, include_test=True))
    return pd.read_csv(result.files["nested_predictions"], dtype={"patient": str}), \
        result.summary


# --------------------------------------------------------------------------- statistics
def fold_aucs(predictions: pd.DataFrame) -> np.ndarray:
    return np.array([roc_auc_score(g["label"], g["probability"])
                     for _, g in predictions.groupby(["repeat", "fold"])
                     if g["label"].nunique() == 2])


# --------------------------------------------------------------------------- cv cost
TIMED = """
import json, shutil, sys, time
from pathlib import Path
from mammohybrid.tensorflow_env import configure_tensorflow
configure_tensorflow(quiet=True)
from mammohybrid.config import load_config, with_overrides
from mammohybrid.data.manifest import read_manifest, usable_rows
from mammohybrid.preprocess.cache import ensure_preprocessed
from mammohybrid.training.linear_head import CACHE_FOLDER, PooledFeatureCache
from mammohybrid.workflows.cv import run_cv


def main():
    what, preset, manifest, out, folds, repeats = sys.argv[1:]
    config = with_overrides(load_config(preset), [f"data.manifest={manifest}"])
    processed = ensure_preprocessed(manifest, config)  # cached: not timed
    cache = Path(processed).parent / "images" / CACHE_FOLDER
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    if what == "features":
        frame = usable_rows(read_manifest(processed, require_split=False))
        PooledFeatureCache(config).features(frame)
    else:
        run_cv(config, out, folds=int(folds), repeats=int(repeats), include_test=True)
    print(json.dumps({what: time.perf_counter() - start}))


if __name__ == "__main__":
    main()
"""


def cv_cost(name: str, config: Path | str, manifest: Path, out: Path, folds: int,
            repeats: int, rounds: int) -> None:
    """One feature pass and one whole cv of ``config`` (a preset or file), each in a fresh
    process, alternating; medians and their ratio."""
    seconds: dict[str, list[float]] = {"features": [], "cv": []}
    for round_ in range(rounds):
        for what in (("features", "cv") if round_ % 2 == 0 else ("cv", "features")):
            result = subprocess.run(
                [sys.executable, "-c", TIMED, what, str(config), str(manifest),
                 str(out / "cv-timing"), str(folds), str(repeats)],
                capture_output=True, text=True, check=True)
            seconds[what].append(json.loads(result.stdout.strip().splitlines()[-1])[what])
            print(f"timing {name}, round {round_ + 1}: {what} {seconds[what][-1]:.1f} s",
                  flush=True)
    shutil.rmtree(out / "cv-timing", ignore_errors=True)
    features, cv = (statistics.median(seconds[k]) for k in ("features", "cv"))
    print(f"cv cost of {name}: one feature pass {features:.1f} s, cv {folds} x {repeats} "
          f"{cv:.1f} s (features not cached, images pre-processed; medians of {rounds}): "
          f"{cv / features:.2f}x a feature pass")


def timed_configs(out: Path) -> dict[str, Path | str]:
    """What ``--timing`` measures: the recommended preset, and the candidate whose features
    cost most (the last of the grid: two backbones, eight views each)."""
    last = load_grid(CANDIDATES).cells[-1]
    path = out / f"timing-{last.name}.yaml"
    save_config(last.config, path)
    return {f"preset {RECOMMENDED}": RECOMMENDED, f"candidate {last.name}": path}


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="mini-MIAS folder (Info.txt + mdbNNN.pgm)")
    parser.add_argument("--task", default="all", help="MIAS ingest task (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "real-lesions",
                        help="where crops, pre-processed images and cv folds are kept")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                        help=f"subset of {', '.join(ROWS)} (empty: only --timing)")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--timing", action="store_true",
                        help="also time a cv of the recommended preset against a feature pass")
    parser.add_argument("--timing-rounds", type=int, default=2)
    args = parser.parse_args()
    rows = [row for row in args.rows.split(",") if row]  # none: --timing alone
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}")
    if not (args.root / "Info.txt").is_file():
        print(f"{args.root}: no mini-MIAS folder (Info.txt); pass --root", file=sys.stderr)
        return 2

    manifest = args.out / "mias.csv"
    if not manifest.is_file():
        run_ingest("mias", args.root, manifest, Config(), task=args.task)
    frame = read_manifest(manifest)
    print(f"data: {args.root} ({args.task}): {len(frame)} lesion crops, "
          f"{frame['patient_id'].nunique()} patients, {int(frame['label'].sum())} malignant; "
          f"{args.folds} folds x {args.repeats} repeats, patient-grouped, stratified")

    select_summary: dict = {}

    def selected() -> pd.DataFrame:
        predictions, summary = selected_predictions(manifest, args.folds, args.repeats,
                                                    args.out)
        select_summary.update(summary)
        return predictions

    makers = {
        "baseline": lambda: baseline_predictions(manifest, "none", args.folds, args.repeats),
        "paper-chain": lambda: baseline_predictions(manifest, "median", args.folds,
                                                    args.repeats),
        "cpu-quick": lambda: cv_predictions(manifest, "cpu-quick", args.folds, args.repeats,
                                            args.out),
        "recommended": lambda: cv_predictions(manifest, RECOMMENDED, args.folds, args.repeats,
                                              args.out),
        "selected": selected,
    }
    predictions: dict[str, pd.DataFrame] = {}
    table = []
    for row in rows:
        start = time.perf_counter()
        predictions[row] = makers[row]()
        aucs = fold_aucs(predictions[row])
        pooled, low, high = pooled_auc_with_interval(predictions[row], args.bootstrap)
        table.append(f"| {row} | {aucs.mean():.3f} +- {aucs.std(ddof=1):.3f} ({len(aucs)}) | "
                     f"{pooled:.3f} [{low:.3f}, {high:.3f}] | {time.perf_counter() - start:.0f} |")
        print(table[-1], flush=True)
    print("\n| row | fold AUC mean +- std (folds) | pooled out-of-fold AUC [95 % CI] | s |")
    print("| --- | --- | --- | --- |")
    print("\n".join(table))
    paired = {}
    if "baseline" in predictions:
        print("\npaired differences of pooled AUC to the baseline (same folds; 95 % patient-"
              "bootstrap interval of the difference, patients resampled once for both):")
        for row in predictions:
            if row != "baseline":
                paired[row] = paired_auc_difference(predictions[row], predictions["baseline"],
                                                    (row, "baseline"), args.bootstrap)
                print(f"  {paired[row].describe()}")
    if select_summary:
        print(f"nested selection: {select_summary['n_candidates']} candidates, rule "
              f"{select_summary['rule']}; winners of the outer folds: "
              + ", ".join(f"{k} {v}" for k, v in select_summary["winners"].items())
              + f"; chosen on all rows: {select_summary['chosen_on_all_rows']['candidate']}")
    if args.timing:
        for name, config in timed_configs(args.out).items():
            cv_cost(name, config, manifest, args.out, args.folds, args.repeats,
                    args.timing_rounds)
    if {"baseline", "paper-chain", "recommended"} <= set(predictions):
        recommended = paired["recommended"]
        print(f"real recommended_auc={recommended.auc_a:.3f} "
              f"baseline_auc={recommended.auc_b:.3f} "
              f"paired_diff={recommended.difference:+.3f} paired_lo={recommended.low:+.3f} "
              f"paper_chain_auc={paired['paper-chain'].auc_a:.3f} "
              f"candidates={select_summary.get('n_candidates', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
