"""Benchmark on real lesions: repeated patient-grouped cross-validation on the mini-MIAS
development set (``../shared/data/mias-dev``: 58 non-mass lesion crops of 51 patients).

    .venv/bin/python benchmarks/real_lesions.py                     # 5 folds x 5 repeats
    .venv/bin/python benchmarks/real_lesions.py --repeats 1         # quicker, wider intervals
    .venv/bin/python benchmarks/real_lesions.py --rows baseline,recommended

Rows (every row sees the same folds: ``mammohybrid.workflows.cv.fold_manifests``, stratified by
patient class, seed ``data.split_seed + repeat``):

- ``baseline``: frozen ImageNet EfficientNet-Lite0, global average pooling, standardisation +
  L2 logistic regression (scikit-learn, C = 1) on the raw crops (resized to 229 px), fitted on
  each fold's training patients (train + val);
- ``paper-chain``: the same baseline on the paper's median chain (threshold 193, empty ROIs
  kept black: ``empty_policy: keep``);
- ``cpu-quick``: ``mammohybrid cv cpu-quick`` as shipped (the light hybrid's head trained by SGD
  on cached features of the median chain), through the product's ``run_cv``;
- ``recommended``: ``mammohybrid cv real-lesions`` through ``run_cv``.

Each row: fold AUC mean +- std over the folds x repeats, and the pooled out-of-fold AUC (every
lesion predicted once per repeat; mean over repeats) with a 95 % patient-bootstrap interval
(patients resampled with replacement, the statistic recomputed on every repeat). The cv rows
are resumable: their folds are kept under ``--out`` and a rerun reuses finished ones. The last
line is

    real recommended_auc=<x> baseline_auc=<y> paper_chain_auc=<z>

(pooled out-of-fold AUCs). The crops and what each row pre-processes are written under
``--out`` too; nothing is written to the data folder.
"""

from __future__ import annotations

import argparse
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

from mammohybrid.config import Config, load_config, with_overrides  # noqa: E402
from mammohybrid.data.ingest import run_ingest  # noqa: E402
from mammohybrid.data.manifest import read_manifest, usable_rows  # noqa: E402
from mammohybrid.models.hybrid import build_model  # noqa: E402
from mammohybrid.preprocess.dataset import ensure_preprocessed  # noqa: E402
from mammohybrid.training.linear_head import PooledFeatureCache  # noqa: E402
from mammohybrid.workflows.cv import fold_manifests, run_cv  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "mias-dev"
ROWS = ("baseline", "paper-chain", "cpu-quick", "recommended")
RECOMMENDED = "real-lesions"


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
    features = PooledFeatureCache(build_model(config.model), config).features(frame)
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
    return pd.concat(rows, ignore_index=True)


def cv_predictions(manifest: Path, preset: str, folds: int, repeats: int,
                   out: Path) -> pd.DataFrame:
    """Out-of-fold probabilities of ``mammohybrid cv PRESET`` (the product, resumable)."""
    config = with_overrides(load_config(preset), [f"data.manifest={manifest}"])
    # Every row of this manifest is development data: the test split is folded in too.
    result = run_cv(config, out / f"cv-{preset}", folds=folds, repeats=repeats,
                    include_test=True)
    return pd.read_csv(result.files["oof_predictions"], dtype={"patient": str})


# --------------------------------------------------------------------------- statistics
def fold_aucs(predictions: pd.DataFrame) -> np.ndarray:
    return np.array([roc_auc_score(g["label"], g["probability"])
                     for _, g in predictions.groupby(["repeat", "fold"])
                     if g["label"].nunique() == 2])


def pooled_auc(predictions: pd.DataFrame) -> float:
    """Mean over repeats of the AUC of all out-of-fold predictions of the repeat."""
    return float(np.mean([roc_auc_score(g["label"], g["probability"])
                          for _, g in predictions.groupby("repeat")]))


def pooled_auc_interval(predictions: pd.DataFrame, samples: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Patient-bootstrap percentile interval of :func:`pooled_auc`."""
    rng = np.random.default_rng(seed)
    by_patient = {p: g for p, g in predictions.groupby("patient")}
    patients = np.array(sorted(by_patient))
    values = []
    for _ in range(samples):
        drawn = pd.concat([by_patient[p] for p in rng.choice(patients, len(patients))])
        if drawn["label"].nunique() == 2:
            values.append(pooled_auc(drawn))
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


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
    parser.add_argument("--rows", default=",".join(ROWS), help=f"subset of {', '.join(ROWS)}")
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    rows = [row for row in args.rows.split(",") if row]
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

    makers = {
        "baseline": lambda: baseline_predictions(manifest, "none", args.folds, args.repeats),
        "paper-chain": lambda: baseline_predictions(manifest, "median", args.folds,
                                                    args.repeats),
        "cpu-quick": lambda: cv_predictions(manifest, "cpu-quick", args.folds, args.repeats,
                                            args.out),
        "recommended": lambda: cv_predictions(manifest, RECOMMENDED, args.folds, args.repeats,
                                              args.out),
    }
    results: dict[str, float] = {}
    table = []
    for row in rows:
        start = time.perf_counter()
        predictions = makers[row]()
        aucs = fold_aucs(predictions)
        pooled = pooled_auc(predictions)
        low, high = pooled_auc_interval(predictions, args.bootstrap)
        results[row] = pooled
        table.append(f"| {row} | {aucs.mean():.3f} +- {aucs.std(ddof=1):.3f} ({len(aucs)}) | "
                     f"{pooled:.3f} [{low:.3f}, {high:.3f}] | {time.perf_counter() - start:.0f} |")
        print(table[-1], flush=True)
    print("\n| row | fold AUC mean +- std (folds) | pooled out-of-fold AUC [95 % CI] | s |")
    print("| --- | --- | --- | --- |")
    print("\n".join(table))
    if {"baseline", "paper-chain", "recommended"} <= set(results):
        print(f"real recommended_auc={results['recommended']:.3f} "
              f"baseline_auc={results['baseline']:.3f} "
              f"paper_chain_auc={results['paper-chain']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
