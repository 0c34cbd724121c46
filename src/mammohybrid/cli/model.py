"""``mammohybrid summary`` (the model's layer table, as the paper's Fig. 9) and
``mammohybrid train`` (train a model, write a run directory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.cli.app import ConfigOption, MlflowOption, SetOption, app, resolve_config
from mammohybrid.config import with_overrides

PresetOption = Annotated[
    str | None,
    typer.Option("--preset", "-p", help="Preset name (e.g. paper, cpu-quick); same as --config."),
]


@app.command("summary")
def summary(preset: PresetOption = None, config: ConfigOption = None,
            overrides: SetOption = None) -> None:
    """Print the model's layer table and parameter totals (Fig. 9 for --preset paper).

    The model is built without pretrained weights: the counts do not depend on them.
    """
    if preset and config:
        raise typer.BadParameter("give --preset or --config, not both")
    resolved = resolve_config(preset or config, overrides)
    from mammohybrid.models import build_model, get_backbone

    model = build_model(resolved.model.model_copy(update={"weights": None}))
    model.summary(print_fn=lambda text: typer.echo(text, nl=False))
    typer.echo("\nBranches (input is the [0, 255] image; each branch scales it itself):")
    for name in resolved.model.backbones:
        backbone = model.get_layer(name)
        typer.echo(f"  {name}: {backbone.count_params():,} params, output "
                   f"{tuple(backbone.output.shape)}, input scaling "
                   f"{get_backbone(name).scaling.description}")
    typer.echo(f"  concat: {tuple(model.get_layer('concat').output.shape)} -> global_pool: "
               f"{tuple(model.get_layer('global_pool').output.shape)}")


@app.command("train")
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")],
    config: ConfigOption = None,
    overrides: SetOption = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last finished epoch.")] = False,
    distribute: Annotated[bool, typer.Option(
        "--distribute", help="Train on all GPUs (else all CPUs) with MirroredStrategy.")] = False,
    mlflow: MlflowOption = None,
) -> None:
    """Train on data.manifest's train split and write the run directory --out.

    data.manifest is a raw manifest (pre-processed here with the config's settings, cached
    beside it) or one pre-processed with the same settings (mammohybrid preprocess). The best
    epoch by the exact validation AUC is kept (or, with train.head=logistic, the head is fitted
    by inner cross-validation), and the decision threshold is chosen on the val split; the test
    split is not read. A killed run continues exactly with --resume.
    """
    resolved = resolve_config(config, overrides)
    if distribute:
        resolved = with_overrides(resolved, ["train.distribute=true"])
    from mammohybrid.workflows import open_tracker, track_training

    with open_tracker(mlflow, run_name=out.name) as tracker:
        run = track_training(tracker, resolved, out, resume=resume)
    info = json.loads(run.info.read_text(encoding="utf-8"))
    auc = info["best_val_auc"]
    typer.echo(f"model: {run.model} (best epoch {info['best_epoch']}, val AUC "
               f"{'n/a' if auc is None else f'{auc:.4f}'})")
    typer.echo(f"run directory: {run.root}")
