"""ImageNet vs random initialisation for a hybrid: frozen features + head, and fine-tuned.

Trains the four arms {imagenet, random} x {frozen, fine-tuned} of one configuration (default:
the ``light`` preset) on a pre-processed manifest, optionally on only the first N training
patients (patient-grouped; validation and test untouched), evaluates each on the held-out test
patients with patient-bootstrap intervals, and prints a Markdown table (also written to
OUT/transfer_learning.md and .csv). The arms differ only in ``model.weights`` and
``model.trainable``; frozen arms train the head on cached features (``train.frozen_*``
settings below), fine-tuned arms use the config's own optimiser settings.

    python experiments/transfer_learning.py MANIFEST --out OUT [--train-patients 8,all]

MANIFEST: e.g. ``demo-output/data/preprocessed/manifest.csv`` after ``make demo``.
Runs already finished in OUT are reused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mammohybrid.config import load_config, with_overrides
from mammohybrid.data.manifest import read_manifest, write_manifest
from mammohybrid.evaluation.evaluate import evaluate_run
from mammohybrid.run_dir import RunDir
from mammohybrid.training import train

ARMS = {
    "imagenet, frozen + head": ["model.weights=imagenet", "model.trainable=none"],
    "random, frozen + head": ["model.weights=none", "model.trainable=none"],
    "imagenet, fine-tuned": ["model.weights=imagenet", "model.trainable=all"],
    "random, fine-tuned": ["model.weights=none", "model.trainable=all"],
}


def subsample_train_patients(manifest: Path, patients: int, seed: int, out: Path) -> Path:
    """A copy of the manifest keeping the training rows of ``patients`` random train
    patients (drawn per class so both classes stay), val and test rows unchanged."""
    frame = read_manifest(manifest)
    train_rows = frame[frame["split"] == "train"]
    rng = np.random.default_rng(seed)
    by_label = train_rows.groupby("patient_id")["label"].max()
    chosen: list[str] = []
    for label in (0, 1):
        pool = sorted(by_label[by_label == label].index)
        take = min(len(pool), max(1, patients // 2 if label == 0 else patients - patients // 2))
        chosen += list(rng.choice(pool, size=take, replace=False))
    keep = (frame["split"] != "train") | frame["patient_id"].isin(chosen)
    return write_manifest(frame[keep], out)


def run_arm(config_name: str, manifest: Path, run_dir: Path, overrides: list[str]) -> dict:
    config = with_overrides(load_config(config_name), [f"data.manifest={manifest}", *overrides])
    if not RunDir.at(run_dir).is_finished():
        train(config, run_dir, resume=(run_dir / "config.yaml").is_file())
    metrics = evaluate_run(run_dir, "test", out_dir=run_dir / "evaluation-test").metrics
    info = json.loads(RunDir.at(run_dir).info.read_text(encoding="utf-8"))
    return {"auc": metrics["auc"], "auc_ci95": metrics["auc_ci95"],
            "accuracy": metrics["accuracy"], "accuracy_ci95": metrics["accuracy_ci95"],
            "n_test": metrics["n"], "best_epoch": info["best_epoch"],
            "train_seconds": info["seconds_last_session"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path, help="pre-processed manifest")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", default="light", help="preset or YAML (default: light)")
    parser.add_argument("--train-patients", default="all",
                        help="comma-separated training-set sizes in patients, or 'all'")
    parser.add_argument("--frozen", nargs="*", default=["train.epochs=30",
                                                         "train.learning_rate=0.01"],
                        help="overrides of the frozen arms (head training)")
    parser.add_argument("--finetuned", nargs="*", default=[],
                        help="overrides of the fine-tuned arms (e.g. train.epochs=10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patient subsets")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.train_patients.split(","):
        manifest = args.manifest.resolve()
        if size != "all":
            manifest = subsample_train_patients(manifest, int(size), args.seed,
                                                args.out / f"manifest-train{size}.csv")
        n_train = int((read_manifest(manifest)["split"] == "train").sum())
        for arm, overrides in ARMS.items():
            extra = args.frozen if "frozen" in arm else args.finetuned
            slug = arm.replace(", ", "-").replace(" + ", "-").replace(" ", "-")
            result = run_arm(args.config, manifest, args.out / f"train{size}-{slug}",
                             overrides + extra)
            rows.append({"train_patients": size, "train_images": n_train, "arm": arm, **result})
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "transfer_learning.csv", index=False)
    markdown = ["| training patients (images) | arm | test AUC [95 % CI] | accuracy [95 % CI] |",
                "|---|---|---|---|"]
    for row in rows:
        markdown.append(
            f"| {row['train_patients']} ({row['train_images']}) | {row['arm']} | "
            f"{row['auc']:.3f} [{row['auc_ci95'][0]:.3f}, {row['auc_ci95'][1]:.3f}] | "
            f"{row['accuracy']:.3f} [{row['accuracy_ci95'][0]:.3f}, "
            f"{row['accuracy_ci95'][1]:.3f}] |")
    (args.out / "transfer_learning.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
    print("\n".join(markdown))


if __name__ == "__main__":
    main()
