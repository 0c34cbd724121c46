"""``mammohybrid demo``: the whole pipeline on a generated CBIS-DDSM, no data or network needed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.cli.app import ConfigOption, SetOption, app, resolve_config


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("demo-output"),
    patients: Annotated[int, typer.Option(min=8, help="Synthetic patients to generate.")] = 160,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic dataset.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Pre-processing worker processes.")] = 2,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Generate a synthetic CBIS-DDSM, ingest it with the real reader, pre-process it with the
    paper's median strategy, train a CPU-sized hybrid, evaluate it on the held-out test patients,
    predict and explain test images, and write DIR/report.html and DIR/metrics.json.

    Uses the `demo` preset unless --config says otherwise. Rerunning into the same folder reuses
    every finished stage."""
    from mammohybrid.workflows import DEMO_PRESET, print_headline, run_demo

    resolved = resolve_config(config or DEMO_PRESET, overrides)
    result = run_demo(out, resolved, patients=patients, seed=seed, workers=workers)
    print_headline(result)
