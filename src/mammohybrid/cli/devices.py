"""``mammohybrid devices``: what TensorFlow trains on here, and the fix when the installed
TensorFlow cannot use the machine's NVIDIA GPU (a thin layer over
:mod:`mammohybrid.training.devices`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from mammohybrid.cli.app import app


@app.command("devices")
def devices(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    require_gpu: Annotated[bool, typer.Option(
        "--require-gpu", help="Exit with status 1 unless TensorFlow sees a GPU (for scripts "
                              "that must not train on the CPU by mistake).")] = False,
) -> None:
    """List the devices TensorFlow sees (GPUs, CPU cores), its build (CUDA or CPU only), what
    train.mixed_precision auto means here, and a warning with the one-line fix when the
    machine has an NVIDIA GPU that the installed TensorFlow cannot use."""
    from mammohybrid.training import describe_devices

    report = describe_devices()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in report.lines():
            typer.echo(line)
    if require_gpu and not report.gpus:
        raise typer.Exit(code=1)
