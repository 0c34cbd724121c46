"""``mammohybrid evaluate``, ``grid``, ``cv``, ``select``, ``compare`` and ``features``:
evaluation and experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mammohybrid.cli.app import MlflowOption, SetOption, app, resolve_config

ManifestOption = Annotated[
    Path | None,
    typer.Option("--manifest", "-m", help="Manifest to use instead of the one in the config."),
]


ExecutorOption = Annotated[str, typer.Option(
    "--executor", help="Where the trainings run: serial (one after the other, here) or ray (one "
                       "Ray task per training; pip install 'mammohybrid[ray]').")]
AddressOption = Annotated[str | None, typer.Option(
    "--address", help="Ray cluster: auto (the one this machine belongs to), HOST:PORT (its head "
                      "node) or ray://HOST:10001; default RAY_ADDRESS, else a local Ray.")]
TaskCpusOption = Annotated[float | None, typer.Option(
    "--task-cpus", min=0.01, help="Ray: CPUs each training asks for (default 1).")]
TaskGpusOption = Annotated[float | None, typer.Option(
    "--task-gpus", min=0, help="Ray: GPUs each training asks for (default 1 when the "
                               "cluster has GPUs, else 0).")]


def _executor(name: str, address: str | None, cpus: float | None, gpus: float | None) -> Any:
    from mammohybrid.workflows import RayResources, open_executor

    return open_executor(name, address, RayResources(cpus, gpus))


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    from mammohybrid.evaluation import (
        METRIC_LABELS,
        METRIC_NAMES,
        format_interval,
        format_metric,
        metric_interval,
    )

    return [f"  {METRIC_LABELS[name]:<52} {format_metric(name, metrics.get(name)):>9}  "
            f"[{format_interval(name, metric_interval(metrics, name))}]"
            for name in METRIC_NAMES]


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (from train).")],
    split: Annotated[str, typer.Option("--split", help="Split to evaluate: test, val or train.")]
    = "test",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder "
                                                "(default RUN_DIR/evaluation-SPLIT).")] = None,
    manifest: ManifestOption = None,
    overrides: SetOption = None,
) -> None:
    """Evaluate a run on one split: metrics with intervals (95 % by default), figures,
    report.html.

    Writes predictions.csv, metrics.json (patient-bootstrap intervals), the confusion matrix,
    the ROC curve, the training curves, a self-contained report.html and report.md.

    The threshold is the one the run chose on validation; --set evaluate.threshold=youden
    (or sensitivity) chooses a new one, again on validation, never on test.
    """
    from mammohybrid.evaluation import evaluate_run

    result = evaluate_run(run_dir, split, out, manifest, overrides)
    metrics = result.metrics
    typer.echo(f"{split}: n = {metrics['n']} images, {metrics['n_patients']} patients, "
               f"threshold {metrics['threshold']:.4g} ({metrics['threshold_method']})")
    for line in _metric_lines(metrics):
        typer.echo(line)
    typer.echo(f"report: {result.files['report_html']}")


@app.command()
def grid(
    grid_file: Annotated[str, typer.Argument(
        metavar="GRID", help="Grid YAML file, or the name of a shipped grid (table5).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (resumable).")],
    manifest: ManifestOption = None,
    overrides: SetOption = None,
    workers: Annotated[int, typer.Option("--workers", "-j", min=1,
                                         help="Pre-processing worker processes.")] = 1,
    mlflow: MlflowOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the cells and exit.")] = False,
    executor_name: ExecutorOption = "serial",
    address: AddressOption = None,
    task_cpus: TaskCpusOption = None,
    task_gpus: TaskGpusOption = None,
) -> None:
    """Run a grid of trainings (the paper's Table 5 by default), resumable.

    Writes a Table-5-style summary with validation and test metrics side by side; the best row
    is chosen on validation only.

    Run the same command again to resume: finished cells are skipped, an interrupted one
    resumes from its last epoch. --set applies to every cell (e.g. --set train.epochs=5).

    --executor ray runs each cell as a Ray task (OUT and the images on storage every node
    sees); an interrupted cluster run resumes like a local one.
    """
    from mammohybrid.workflows import load_grid, run_grid

    spec = load_grid(grid_file, overrides or [], manifest)
    if dry_run:
        typer.echo(f"grid {spec.name}: {len(spec.cells)} cell(s)")
        for cell in spec.cells:
            values = ", ".join(f"{k}={v}" for k, v in cell.values.items())
            typer.echo(f"  {cell.name}: {values}")
        return
    with _executor(executor_name, address, task_cpus, task_gpus) as executor:
        result = run_grid(spec, out, workers=workers, tracking_uri=mlflow, executor=executor)
    typer.echo(result.summary_md.read_text(encoding="utf-8"))
    typer.echo(f"summary: {result.summary_csv}")
    if result.best_report is not None:
        typer.echo(f"best run's report (chosen on validation): {result.best_report}")
    if result.failed:
        names = ", ".join(c.cell.name for c in result.failed)
        typer.echo(f"{len(result.failed)} cell(s) failed: {names} (see RUN/grid_error.txt)",
                   err=True)
        raise typer.Exit(1)


@app.command()
def cv(
    config: Annotated[str, typer.Argument(
        metavar="CONFIG", help="Config YAML or preset (its data.manifest is used).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (resumable).")],
    folds: Annotated[int | None, typer.Option("--folds", "-k", min=2,
                                                 help="Folds (default data.n_folds).")] = None,
    repeats: Annotated[int, typer.Option("--repeats", "-r", min=1,
                                         help="Repeats with new fold assignments.")] = 1,
    manifest: ManifestOption = None,
    include_test: Annotated[bool, typer.Option(
        "--include-test", help="Fold the manifest's test split in too (default: left out, "
                               "kept for a final, untouched evaluation).")]
    = False,
    overrides: SetOption = None,
    mlflow: MlflowOption = None,
    executor_name: ExecutorOption = "serial",
    address: AddressOption = None,
    task_cpus: TaskCpusOption = None,
    task_gpus: TaskGpusOption = None,
) -> None:
    """Stratified, patient-grouped K-fold cross-validation, repeated R times, resumable.

    Writes per-fold metrics, mean ± std, the pooled out-of-fold ROC and OUT/cv_summary.json.
    Validation for model selection and the threshold comes from the training folds only. A raw
    manifest is pre-processed once with the config's settings (cached beside it).
    --executor ray runs each fold as a Ray task.
    """
    from mammohybrid.evaluation import METRIC_NAMES
    from mammohybrid.workflows import run_cv

    resolved = resolve_config(config, overrides)
    with _executor(executor_name, address, task_cpus, task_gpus) as executor:
        result = run_cv(resolved, out, folds or resolved.data.n_folds, repeats, manifest,
                        include_test, tracking_uri=mlflow, executor=executor)
    summary = result.summary
    typer.echo(f"{summary['n_runs']} fold run(s) ({summary['n_folds']} folds x "
               f"{summary['n_repeats']} repeats)")
    typer.echo(f"rows used: {summary['rows']}")
    for name in METRIC_NAMES:
        mean, std = summary[f"{name}_mean"], summary[f"{name}_std"]
        typer.echo(f"  {name:<16} mean {'n/a' if mean is None else f'{mean:.3f}':>6}  "
                   f"std {'n/a' if std is None else f'{std:.3f}':>6}")
    typer.echo(f"summary: {result.files['summary']}")


@app.command()
def select(
    grid_file: Annotated[str, typer.Argument(
        metavar="CANDIDATES", help="Grid YAML file whose cells are the candidates, simplest "
                                   "first, or the name of a shipped one (real-lesions).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (the candidates' "
                                                          "cross-validations resume).")],
    folds: Annotated[int, typer.Option("--folds", "-k", min=2, help="Outer folds.")] = 5,
    repeats: Annotated[int, typer.Option("--repeats", "-r", min=1,
                                         help="Outer repeats.")] = 1,
    inner_folds: Annotated[int, typer.Option("--inner-folds", min=2,
                                             help="Inner folds (the choice).")] = 5,
    inner_repeats: Annotated[int, typer.Option("--inner-repeats", min=1,
                                               help="Inner repeats.")] = 1,
    rule: Annotated[str, typer.Option(
        "--rule", help="one-se: the simplest candidate within one standard error (paired) of "
                       "the best; best: the highest inner AUC.")] = "one-se",
    manifest: ManifestOption = None,
    include_test: Annotated[bool, typer.Option(
        "--include-test", help="Fold the manifest's test split in too.")] = False,
    overrides: SetOption = None,
) -> None:
    """Choose among candidate configurations inside the folds (nested cross-validation).

    Every candidate is cross-validated on the same outer folds; in each outer fold the
    candidates are ranked by an inner cross-validation of its training rows only, and the
    rule's choice predicts the held-out fold. The nested pooled AUC thus includes the cost of
    choosing. Prints each candidate's plain figure, the paired differences (patient bootstrap
    of the difference), which candidate won each outer fold, and the rule's choice on all rows.
    """
    from mammohybrid.workflows import SelectSettings, load_grid, run_select

    spec = load_grid(grid_file, overrides or [], manifest)
    settings = SelectSettings(folds, repeats, inner_folds, inner_repeats, rule,
                              include_test=include_test)
    result = run_select(spec, out, settings)
    typer.echo(result.files["summary_md"].read_text(encoding="utf-8"))
    typer.echo(f"summary: {result.files['summary']}")


@app.command()
def compare(
    first: Annotated[Path, typer.Argument(help="A finished cv output folder.")],
    second: Annotated[Path, typer.Argument(help="Another, on the same manifest and folds.")],
    samples: Annotated[int, typer.Option("--bootstrap", min=100,
                                         help="Patient resamples.")] = 2000,
) -> None:
    """Compare two cross-validations on the same folds: the paired difference of their pooled
    out-of-fold AUCs, with a patient-bootstrap interval of the difference (the same resampled
    patients for both).

    Rule: prefer the simpler of the two unless the interval of the difference lies above zero.
    """
    from mammohybrid.evaluation import paired_auc_difference
    from mammohybrid.workflows import source_predictions

    try:
        paired = paired_auc_difference(source_predictions(first), source_predictions(second),
                                       (first.name, second.name), samples)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(f"pooled out-of-fold AUC: {first.name} {paired.auc_a:.3f}, {second.name} "
               f"{paired.auc_b:.3f} ({paired.patients} patients)")
    typer.echo(f"paired difference: {paired.describe()} ({paired.level:.0%} patient-bootstrap "
               f"interval, {paired.resamples} resamples shared by both)")
    verdict = ("above zero: the first is better on these folds" if paired.low > 0 else
               "below zero: the second is better on these folds" if paired.high < 0 else
               "includes zero: no difference shown; prefer the simpler")
    typer.echo(f"the interval {verdict}")


@app.command()
def features(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    manifest: Annotated[Path, typer.Argument(
        help="Manifest of the images (raw or pre-processed).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz file.")],
) -> None:
    """Save the pooled feature vector of every image of MANIFEST (.npz).

    The vector is the concatenated, globally pooled backbone features; arrays image_path and X
    (+ label, patient_id, split when the manifest has them).
    """
    from mammohybrid.evaluation import extract_features

    path = extract_features(run_dir, manifest, out)
    typer.echo(f"features: {path}")
