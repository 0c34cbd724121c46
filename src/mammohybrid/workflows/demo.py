"""The end-to-end demo: the main job on an embedded default, on a fresh machine with no network
and no data.

synthetic CBIS-DDSM (TCIA DICOM tree + case CSVs) -> the real CBIS-DDSM ingest -> the paper's
median pre-processing strategy -> a CPU-sized hybrid trained from scratch -> evaluation on the
held-out test patients -> prediction on the raw test DICOMs with Grad-CAM and the test-time
filter ensemble -> one report (``DIR/report.html``, ``DIR/metrics.json``).

Every stage is resumable: running the demo again into the same folder reuses what is finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mammohybrid.config import Config, with_overrides
from mammohybrid.evaluation import ReportSection
from mammohybrid.progress import console
from mammohybrid.run_dir import RunDir

DEMO_PRESET = "demo"
# The filter ensembles compared on the test split: each paper strategy alone, and averages
# (the paper's "median for some cases, Wiener for others" idea, done without the label, which
# is unknown at inference). The training strategy alone always comes first (see ensembles()).
ENSEMBLES: tuple[tuple[str, ...], ...] = (
    ("median",), ("wiener",), ("gaussian",), ("median", "wiener"),
    ("median", "wiener", "gaussian"))


def ensembles(training_strategy: str) -> list[tuple[str, ...]]:
    """The ensembles the demo compares: the strategy the model was trained with, alone, first
    (the baseline the report compares the others with), then the rest of :data:`ENSEMBLES`."""
    baseline = (training_strategy,)
    return [baseline, *(names for names in ENSEMBLES if names != baseline)]


@dataclass(frozen=True)
class DemoLayout:
    """Where the demo writes what, under its output folder."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "data" / "cbis-ddsm"

    @property
    def manifest(self) -> Path:
        return self.root / "data" / "manifest.csv"

    @property
    def preprocessed(self) -> Path:
        return self.root / "data" / "preprocessed"

    @property
    def run(self) -> RunDir:
        return RunDir.at(self.root / "run")

    @property
    def predictions(self) -> Path:
        return self.root / "predict" / "test_predictions.csv"

    @property
    def gradcam(self) -> Path:
        return self.root / "predict" / "gradcam"


@dataclass
class DemoResult:
    """What the demo produced: the report, the test metrics and the time of every stage."""

    layout: DemoLayout
    report_html: Path
    metrics: dict[str, Any]
    ensemble: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


class _Stages:
    """Numbered stage headings on the console and the wall time of each stage."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str, description: str) -> Iterator[None]:
        self.done += 1
        console.rule(f"[bold]{self.done}/{self.total} {description}")
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 1)
        console.print(f"[dim]{name}: {self.timings[name]:.1f} s[/dim]")


def run_demo(out_dir: str | os.PathLike[str], config: Config, patients: int = 160,
             seed: int = 0, workers: int = 2, gradcam_images: int = 4) -> DemoResult:
    """Run the whole pipeline into ``out_dir`` (see the module doc) and return its results."""
    from mammohybrid.data import generate_cbis_ddsm, read_manifest, run_ingest, usable_rows
    from mammohybrid.evaluation import evaluate_run
    from mammohybrid.preprocess import run_batch
    from mammohybrid.training import train

    layout = DemoLayout(Path(out_dir))
    stage = _Stages(total=6)
    started = time.perf_counter()

    with stage("synth", f"Generating a synthetic CBIS-DDSM ({patients} patients, seed {seed})"):
        if _synth_matches(layout.raw, patients, seed):
            console.print(f"reusing {layout.raw}")
        else:
            summary = generate_cbis_ddsm(layout.raw, patients=patients, seed=seed)
            console.print(f"{summary.rois} ROIs in {summary.files} files under {layout.raw}")

    with stage("ingest", "Ingesting it with the CBIS-DDSM (TCIA) reader"):
        ingested = run_ingest("cbis-ddsm", layout.raw, layout.manifest, config)
        console.print(ingested.summary().to_string(index=False))

    with stage("preprocess", f"Pre-processing: the paper's '{config.preprocess.strategy}' "
                             "strategy"):
        batch = run_batch(layout.manifest, layout.preprocessed, config, workers=workers, qa=2)
        console.print(f"{batch.images} images, {batch.failed} failed, {batch.roi_empty} with an "
                      f"empty ROI (policy {config.preprocess.roi.empty_policy})")

    train_config = with_overrides(
        config, [f"data.manifest={(layout.preprocessed / 'manifest.csv').resolve()}"])
    with stage("train", "Training the hybrid " + " + ".join(config.model.backbones)):
        train(train_config, layout.run.root, resume=True)

    test_rows = usable_rows(read_manifest(layout.preprocessed / "manifest.csv"))
    test_rows = test_rows[test_rows["split"] == "test"]
    with stage("predict", "Predicting the raw test DICOMs: Grad-CAM and filter ensembles"):
        ensemble, explained = _predict_test_images(layout, test_rows, workers, gradcam_images,
                                                   config)

    with stage("evaluate", "Evaluating on the held-out test patients and writing the report"):
        sections = [_ensemble_section(ensemble), _gradcam_section(explained)]
        evaluation = evaluate_run(layout.run.root, "test", out_dir=layout.root,
                                  sections=sections)

    stage.timings["total"] = round(time.perf_counter() - started, 1)
    result = DemoResult(layout, evaluation.files["report_html"], evaluation.metrics, ensemble,
                        stage.timings)
    (layout.root / "demo_timings.json").write_text(json.dumps(stage.timings, indent=2) + "\n",
                                                    encoding="utf-8")
    return result


def _synth_matches(folder: Path, patients: int, seed: int) -> bool:
    """True when ``folder`` already holds the synthetic dataset of these settings."""
    info = folder / "synth.json"
    if not info.is_file():
        return False
    saved = json.loads(info.read_text(encoding="utf-8"))
    return saved.get("patients") == patients and saved.get("seed") == seed


def _predict_test_images(layout: DemoLayout, test_rows: pd.DataFrame, workers: int,
                         gradcam_images: int, config: Config
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predict the raw test crops (DICOM, as a user would) with every strategy of
    :func:`ensembles`; explain a few with Grad-CAM. Returns the ensemble comparison table and
    the explained images (path, label, probability, overlay paths)."""
    from sklearn.metrics import log_loss

    from mammohybrid.evaluation import metric_interval, metrics_report, predictions_frame
    from mammohybrid.inference import Predictor

    sources = test_rows["source_path"].tolist()
    compared = ensembles(config.preprocess.strategy)
    # The training strategy first: the primary one, which Grad-CAM explains.
    strategies = list(dict.fromkeys(name for names in compared for name in names))
    with Predictor.from_run(layout.run.root, strategies=strategies) as predictor:
        table = predictor.predict_paths(sources, workers=workers)
        chosen = _pick_examples(table, test_rows, gradcam_images)
        explained = predictor.predict_paths(chosen["source_path"].tolist(),
                                            gradcam_dir=layout.gradcam)
    layout.predictions.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(layout.predictions, index=False)
    primary = f"probability_{strategies[0]}"
    explained = explained.assign(label=chosen["label"].to_numpy(),
                                 probability=explained[primary].to_numpy())

    rows = []
    for names in compared:
        probabilities = table[[f"probability_{name}" for name in names]].mean(axis=1)
        metrics = metrics_report(
            predictions_frame(test_rows, probabilities.to_numpy(), predictor.threshold.value),
            predictor.threshold, config.evaluate, config.seed, "test")
        low, high = metric_interval(metrics, "auc") or (None, None)
        rows.append({"strategies": " + ".join(names), "auc": metrics["auc"],
                     "auc_ci_low": low, "auc_ci_high": high, "accuracy": metrics["accuracy"],
                     # A proper scoring rule still separates strategies when AUC saturates.
                     "log_loss": log_loss(test_rows["label"], probabilities, labels=[0, 1])})
    return pd.DataFrame(rows), explained


def _pick_examples(table: pd.DataFrame, test_rows: pd.DataFrame, count: int) -> pd.DataFrame:
    """Half malignant, half benign test images, each the most confidently right of its class
    (what the model looks at when it is sure), for Grad-CAM."""
    frame = test_rows.assign(probability=table["probability"].to_numpy())
    frame = frame[table["error"].eq("").to_numpy()]
    picks = []
    for label, ascending in ((1, False), (0, True)):
        of_class = frame[frame["label"] == label].sort_values("probability", ascending=ascending)
        picks.append(of_class.head((count + 1 - label) // 2))
    return pd.concat(picks)


def _ensemble_section(ensemble: pd.DataFrame) -> ReportSection:
    def number(value: float | None) -> str:
        return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"

    base = ensemble.iloc[0]
    others = ensemble.iloc[1:]
    better = others[(others["auc"] > base["auc"] + 0.005)
                    | ((others["auc"] >= base["auc"] - 0.005)
                       & (others["log_loss"] < base["log_loss"] * 0.9))]
    verdict = (
        f"Against {base['strategies']} alone (AUC {number(base['auc'])}, log loss "
        f"{number(base['log_loss'])}), "
        + ("these score better (AUC higher by over 0.005, or log loss over 10 % lower): "
           + ", ".join(
            f"{row.strategies} (AUC {number(row.auc)}, log loss {number(row.log_loss)})"
            for row in better.itertuples()) if len(better) else
           "no other strategy or average is better by more than 0.005 AUC or 10 % log loss: "
           "the ensemble does not help on this test split")
        + ". The intervals overlap heavily on a test split this small, so treat any "
          "difference as a hint, not a finding.")
    return ReportSection(
        heading="Test-time filter ensemble",
        paragraphs=[
            "The paper suggests a median filter for malignant-looking and a Wiener filter for "
            "benign-looking cases. The label is unknown at inference, so the demo averages the "
            "probabilities of several pre-processing strategies instead (predicted from the raw "
            "test DICOMs with `mammohybrid predict --filters ...`). The model was trained on the "
            "first strategy only, and the threshold was chosen for it.", verdict],
        table=(["Strategies", "AUC", "AUC interval", "Accuracy", "Log loss"],
               [[row.strategies, number(row.auc),
                 f"[{number(row.auc_ci_low)}, {number(row.auc_ci_high)}]",
                 number(row.accuracy), number(row.log_loss)] for row in ensemble.itertuples()]))


def _gradcam_section(explained: pd.DataFrame) -> ReportSection:
    figures = []
    for row in explained.itertuples():
        cls = "malignant" if row.label == 1 else "benign"
        figures.append((f"Grad-CAM, all branches combined: a {cls} test ROI, "
                        f"probability of malignancy {row.probability:.3f}", Path(row.gradcam)))
    return ReportSection(
        heading="Grad-CAM",
        paragraphs=["Where the model looked: Grad-CAM heat-maps of the most confidently "
                    "classified test ROIs of each class, overlaid on the input. One map per "
                    "backbone branch is written beside each combined map in predict/gradcam/."],
        figures=figures)


def print_headline(result: DemoResult, echo: Callable[[str], Any] = console.print) -> None:
    """The report's path and the headline test metrics with their intervals."""
    from mammohybrid.evaluation import metric_interval

    metrics = result.metrics
    level = metrics.get("ci", {}).get("level", 0.95)

    def with_ci(name: str) -> str:
        low, high = metric_interval(metrics, name) or (None, None)
        value = metrics.get(name)
        if value is None:
            return f"{name} n/a"
        interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        return f"{name} {value:.3f}{interval}"

    echo(f"report: {result.report_html.resolve()}")
    echo(f"metrics: {(result.layout.root / 'metrics.json').resolve()}")
    echo("test split (" + f"n = {metrics.get('n')}, {level:.0%} patient-bootstrap CI): "
         + ", ".join(with_ci(name) for name in ("auc", "accuracy", "sensitivity",
                                                 "specificity")))
    echo(f"total time: {result.timings.get('total', 0.0):.0f} s")
