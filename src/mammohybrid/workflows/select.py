"""``mammohybrid select``: choosing among declared candidate configurations *inside* the folds
(nested cross-validation), so that the reported figure includes the cost of choosing.

The candidates are the cells of a grid file (:mod:`~mammohybrid.workflows.grid.spec`), in the
order written, **simplest first**: the rule prefers earlier ones. On a small set, comparing
many configurations on the folds whose score is then reported is optimistic (the best of
fifteen noisy scores is high by luck); here the choice is part of the procedure being scored:

1. every candidate is cross-validated on the same outer folds (``OUT/candidates/<name>/``, a
   ``mammohybrid cv`` output each): its *plain* out-of-fold predictions, for comparison;
2. for each outer fold, the candidates are ranked by an inner patient-grouped cross-validation
   of the outer *training* rows only, and the rule picks one;
3. the outer fold is predicted by the picked candidate's run of that fold (from 1): together
   these are the *nested* out-of-fold predictions, whose pooled AUC estimates how well "choose
   by this rule, then train" does on lesions the choice never saw;
4. the same rule applied to an inner cross-validation of *all* rows gives the candidate to
   recommend (what the nested figure is an estimate for).

Rules (``--rule``): ``one-se`` (default) takes the first candidate, in the order given, whose
inner pooled AUC is within one standard error of the best's, the standard error being that of
the *paired* difference (patients resampled once for both, :mod:`~mammohybrid.evaluation.paired`):
a more complex candidate must beat a simpler one clearly, not by noise. ``best`` takes the
highest inner AUC (for comparison).

Inner fits: a logistic-head candidate is fitted on cached pooled features (milliseconds); any
other candidate is trained in a temporary folder, as its cross-validation fold would be (slow:
candidates x inner folds x outer folds trainings).

Output: ``OUT/candidates/<name>/`` (each candidate's cross-validation),
``OUT/nested_predictions.csv``, ``OUT/select_folds.csv`` (each outer fold's inner scores and
choice), ``OUT/select_summary.json`` and ``.md``.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.config import Config
from mammohybrid.errors import ConfigError
from mammohybrid.evaluation import paired_auc_difference, pooled_auc, pooled_auc_with_interval
from mammohybrid.fileio import atomic_open, atomic_write_json, atomic_write_text
from mammohybrid.progress import console
from mammohybrid.workflows.cv import (
    FoldTask,
    cv_rows,
    fold_manifests,
    run_cv,
    run_fold,
    source_predictions,
)
from mammohybrid.workflows.grid.spec import GridCell, GridSpec

RULES = ("one-se", "best")
RULE_TEXT = {
    "one-se": "one-standard-error rule: the first candidate (simplest first, as listed) whose "
              "inner pooled AUC is within one standard error of the best's, the standard "
              "error of the paired difference (patient bootstrap, both on the same resamples)",
    "best": "the candidate with the highest inner pooled AUC",
}
PREDICTION_COLUMNS = ["repeat", "fold", "image", "patient", "label", "probability"]


@dataclass(frozen=True)
class SelectSettings:
    """How the choice is made and scored."""

    folds: int = 5  # outer
    repeats: int = 1  # outer
    inner_folds: int = 5
    inner_repeats: int = 1
    rule: str = "one-se"
    bootstrap: int = 500  # resamples of the inner standard errors
    include_test: bool = False

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"--rule must be one of {', '.join(RULES)}, got '{self.rule}'")
        if min(self.folds, self.inner_folds) < 2 or min(self.repeats, self.inner_repeats) < 1:
            raise ConfigError("select needs at least 2 folds and 1 repeat, outer and inner")


@dataclass(frozen=True)
class Choice:
    """One application of the rule: every candidate's inner pooled AUC, its difference to the
    best and that difference's standard error, and the one chosen."""

    winner: str
    scores: dict[str, dict[str, float]]  # name -> auc, behind_best, standard_error


@dataclass(frozen=True)
class SelectResult:
    out_dir: Path
    summary: dict[str, Any]
    files: dict[str, Path]


# --------------------------------------------------------------------------- the rule
def choose(predictions: dict[str, pd.DataFrame], rule: str, n_resamples: int,
           seed: int) -> Choice:
    """Apply ``rule`` to inner out-of-fold tables of the candidates (in preference order; all
    on the same rows and folds, ``image`` holding the source image)."""
    names = list(predictions)
    aucs = {name: float(pooled_auc(t["label"].to_numpy(int), t["probability"].to_numpy(float),
                                   t["repeat"].to_numpy())) for name, t in predictions.items()}
    best = max(names, key=lambda name: (np.nan_to_num(aucs[name], nan=-1.0),
                                        -names.index(name)))
    scores = {}
    for name in names:
        paired = paired_auc_difference(predictions[best], predictions[name], (best, name),
                                       n_resamples, seed=seed)
        scores[name] = {"auc": aucs[name], "behind_best": paired.difference,
                        "standard_error": paired.standard_error}
    if rule == "best":
        return Choice(best, scores)
    winner = next(name for name in names
                  if scores[name]["behind_best"] <= np.nan_to_num(
                      scores[name]["standard_error"], nan=0.0))
    return Choice(winner, scores)


# --------------------------------------------------------------------------- inner fits
def _fit_predict(cell: GridCell, fold_frame: pd.DataFrame) -> np.ndarray:
    """Train ``cell`` on a fold's train (and val) rows; its probabilities for the test rows."""
    config = cell.config
    held = fold_frame[fold_frame["split"] == "test"]
    if config.train.head == "logistic":
        from mammohybrid.training import PooledFeatureCache, fit_head

        cache = PooledFeatureCache(config)
        train = fold_frame[fold_frame["split"] == "train"]
        head = fit_head(cache.features(train), train["label"].to_numpy(int),
                        train["patient_id"].to_numpy(str), config)
        return head.probabilities(cache.features(held))
    with tempfile.TemporaryDirectory(prefix="mammohybrid-inner-") as folder:
        predictions, _ = run_fold(FoldTask(Path(folder), 0, 0, 1, 1, fold_frame, config))
        return predictions["probability"].to_numpy(float)


def inner_predictions(cell: GridCell, frame: pd.DataFrame,
                      settings: SelectSettings) -> pd.DataFrame:
    """Out-of-fold predictions of ``cell`` by patient-grouped cross-validation of ``frame``
    (one candidate's pre-processed rows; column ``source`` names each row's source image)."""
    tables = []
    for repeat in range(settings.inner_repeats):
        for fold, fold_frame in enumerate(fold_manifests(frame, settings.inner_folds, repeat,
                                                         cell.config)):
            held = fold_frame[fold_frame["split"] == "test"]
            tables.append(pd.DataFrame({
                "repeat": repeat, "fold": fold, "image": held["source"].to_numpy(),
                "patient": held["patient_id"].astype(str).to_numpy(),
                "label": held["label"].to_numpy(int),
                "probability": _fit_predict(cell, fold_frame)}))
    return pd.concat(tables, ignore_index=True)


def inner_choice(spec: GridSpec, frames: dict[str, pd.DataFrame],
                 settings: SelectSettings) -> Choice:
    """The rule applied to an inner cross-validation of the rows ``frames`` hold (the same rows
    pre-processed by each candidate)."""
    patients = next(iter(frames.values()))["patient_id"].nunique()
    if patients < settings.inner_folds:
        raise ConfigError(f"{patients} patients cannot fill {settings.inner_folds} inner folds; "
                          "lower --inner-folds")
    tables = {cell.name: inner_predictions(cell, frames[cell.name], settings)
              for cell in spec.cells}
    return choose(tables, settings.rule, settings.bootstrap, spec.base.seed)


# --------------------------------------------------------------------------- the procedure
def _candidate_rows(spec: GridSpec, manifest: Path | None,
                    settings: SelectSettings) -> dict[str, pd.DataFrame]:
    """Each candidate's pre-processed usable rows, with ``source`` (the source image); refused
    unless every candidate keeps the same images (a paired comparison needs the same rows)."""
    frames = {}
    for cell in spec.cells:
        _, frame, _ = cv_rows(cell.config, manifest, settings.include_test)
        source = frame["source_path"] if "source_path" in frame.columns else frame["image_path"]
        frames[cell.name] = frame.assign(source=source.astype(str).to_numpy())
    reference_name, reference = next(iter(frames.items()))
    for name, frame in frames.items():
        if frame["source"].tolist() != reference["source"].tolist():
            only = sorted(set(frame["source"]) ^ set(reference["source"]))
            raise ConfigError(f"candidates '{reference_name}' and '{name}' do not keep the same "
                              f"images ({len(only)} differ, e.g. {only[:1]}): pre-processing "
                              "failed for some under one of them; fix or drop those images")
    data_sections = {cell.config.data.model_dump_json(exclude={"manifest"})
                     for cell in spec.cells}
    if len(data_sections) > 1:
        raise ConfigError("the candidates differ in their data section: they must share the "
                          "folds (data.split_seed, data.val_fraction)")
    return frames


def run_select(spec: GridSpec, out_dir: str | os.PathLike[str],
               settings: SelectSettings | None = None,
               manifest: str | os.PathLike[str] | None = None) -> SelectResult:
    """Nested cross-validation of the candidates ``spec.cells`` (see the module doc)."""
    settings = settings or SelectSettings()
    if len(spec.cells) < 2:
        raise ConfigError(f"{spec.source}: select needs at least two candidates")
    manifest_path = Path(manifest) if manifest is not None else spec.manifest
    if manifest_path is None:
        raise ConfigError(f"{spec.source}: no manifest; give 'manifest' in the file or "
                          "--manifest")
    out = Path(out_dir)
    frames = _candidate_rows(spec, manifest_path, settings)
    plain: dict[str, pd.DataFrame] = {}
    for cell in spec.cells:
        console.print(f"[bold]candidate {cell.name}: {settings.folds}-fold x "
                      f"{settings.repeats} cross-validation[/bold]")
        result = run_cv(cell.config, out / "candidates" / cell.name, settings.folds,
                        settings.repeats, manifest=manifest_path,
                        include_test=settings.include_test)
        plain[cell.name] = source_predictions(result.out_dir)

    first = spec.cells[0].config
    nested, fold_rows = [], []
    for repeat in range(settings.repeats):
        outer = {cell.name: fold_manifests(frames[cell.name], settings.folds, repeat,
                                           cell.config) for cell in spec.cells}
        for fold in range(settings.folds):
            console.print(f"[bold]select: repeat {repeat + 1}/{settings.repeats}, outer fold "
                          f"{fold + 1}/{settings.folds}[/bold]")
            training = {name: folds[fold][folds[fold]["split"] != "test"]
                        for name, folds in outer.items()}
            choice = inner_choice(spec, training, settings)
            winner = plain[choice.winner]
            rows = winner[(winner["repeat"] == repeat) & (winner["fold"] == fold)]
            held = set(frames[choice.winner]["source"][
                outer[choice.winner][fold]["split"].to_numpy() == "test"])
            if set(rows["image"]) != held:
                raise ConfigError(f"outer fold r{repeat}/f{fold}: the candidate's "
                                  "cross-validation holds other rows (was its folder run with "
                                  "other settings? remove it)")
            nested.append(rows[PREDICTION_COLUMNS].assign(candidate=choice.winner))
            fold_rows.append({"repeat": repeat, "fold": fold, "winner": choice.winner,
                              **{f"{name}_{key}": value for name, score in choice.scores.items()
                                 for key, value in score.items()}})
    console.print("[bold]select: the rule on all rows (the candidate to recommend)[/bold]")
    final = inner_choice(spec, frames, settings)
    nested_table = pd.concat(nested, ignore_index=True)
    summary = _summary(spec, settings, first, nested_table, plain, fold_rows, final)
    files = _write(out, nested_table, fold_rows, summary)
    return SelectResult(out, summary, files)


def _summary(spec: GridSpec, settings: SelectSettings, config: Config, nested: pd.DataFrame,
             plain: dict[str, pd.DataFrame], fold_rows: list[dict[str, Any]],
             final: Choice) -> dict[str, Any]:
    samples, level, seed = (config.evaluate.bootstrap_samples, config.evaluate.ci_level,
                            config.seed)

    def scored(table: pd.DataFrame) -> dict[str, Any]:
        auc, low, high = pooled_auc_with_interval(table, samples, level, seed)
        per_fold = [float(pooled_auc(g["label"].to_numpy(int), g["probability"].to_numpy(),
                                     g["repeat"].to_numpy()))
                    for _, g in table.groupby(["repeat", "fold"]) if g["label"].nunique() == 2]
        return {"pooled_auc": auc, "pooled_auc_ci": [low, high],
                "fold_auc_mean": float(np.mean(per_fold)),
                "fold_auc_std": float(np.std(per_fold, ddof=1)), "n_folds": len(per_fold)}

    simplest = spec.cells[0].name
    paired = [paired_auc_difference(nested, plain[name], ("selected (nested)", name), samples,
                                    level, seed).to_dict() for name in plain]
    paired += [paired_auc_difference(plain[name], plain[simplest], (name, simplest), samples,
                                     level, seed).to_dict() for name in plain if name != simplest]
    return {
        "candidates": [cell.name for cell in spec.cells],
        "n_candidates": len(spec.cells),
        "grid": spec.source,
        "rule": settings.rule, "rule_text": RULE_TEXT[settings.rule],
        "outer": {"folds": settings.folds, "repeats": settings.repeats},
        "inner": {"folds": settings.inner_folds, "repeats": settings.inner_repeats,
                  "bootstrap": settings.bootstrap},
        "rows": {"images": int(nested.groupby("repeat").size().iloc[0]),
                 "patients": int(nested["patient"].nunique()),
                 "test_split_included": settings.include_test},
        "nested": scored(nested),
        "winners": dict(Counter(row["winner"] for row in fold_rows).most_common()),
        "plain": {name: scored(table) for name, table in plain.items()},
        "paired_differences": paired,
        "paired_interval": f"{level:.0%} patient-bootstrap percentile interval of the "
                           f"difference ({samples} resamples shared by both sides)",
        "chosen_on_all_rows": {"candidate": final.winner, "inner": final.scores},
    }


def _write(out: Path, nested: pd.DataFrame, fold_rows: list[dict[str, Any]],
           summary: dict[str, Any]) -> dict[str, Path]:
    files = {"nested_predictions": out / "nested_predictions.csv",
             "folds": out / "select_folds.csv", "summary": out / "select_summary.json",
             "summary_md": out / "select_summary.md"}
    for key, table in (("nested_predictions", nested), ("folds", pd.DataFrame(fold_rows))):
        with atomic_open(files[key], "w", newline="", encoding="utf-8") as handle:
            table.to_csv(handle, index=False)
    atomic_write_json(files["summary"], summary)
    atomic_write_text(files["summary_md"], selection_summary_markdown(summary))
    return files


def selection_summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown page: the nested row, each candidate's plain row, the paired
    differences, the winners and the recommendation."""
    def row(name: str, scores: dict[str, Any]) -> str:
        low, high = scores["pooled_auc_ci"]
        return (f"| {name} | {scores['fold_auc_mean']:.3f} +- {scores['fold_auc_std']:.3f} "
                f"({scores['n_folds']}) | {scores['pooled_auc']:.3f} [{low:.3f}, {high:.3f}] |")

    outer, inner = summary["outer"], summary["inner"]
    lines = [
        f"# Nested selection among {summary['n_candidates']} candidates ({summary['grid']})", "",
        f"Outer: {outer['folds']} folds x {outer['repeats']} repeats; inner: {inner['folds']} "
        f"folds x {inner['repeats']} repeats. Rule: {summary['rule_text']}.", "",
        "| row | fold AUC mean +- std (folds) | pooled out-of-fold AUC [CI] |",
        "| --- | --- | --- |",
        row("**selected (nested)**", summary["nested"]),
        *(row(f"{name} (plain cross-validation)", scores)
          for name, scores in summary["plain"].items()), "",
        "Plain rows are each candidate's own cross-validation: picking the best of them on "
        "these folds would be optimistic; the nested row includes the choice.", "",
        f"Paired differences of pooled AUC ({summary['paired_interval']}):", "",
        *(f"- {p['a']} - {p['b']}: {p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"
          for p in summary["paired_differences"]), "",
        "Winners of the outer folds: " + ", ".join(f"{name} {count}" for name, count in
                                                   summary["winners"].items()) + ".", "",
        f"The rule on all rows chooses **{summary['chosen_on_all_rows']['candidate']}**.", ""]
    return "\n".join(lines)
