"""``mammohybrid preprocess``: pre-process every image of a manifest (a thin layer over
:func:`mammohybrid.preprocess.run_batch`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.cli.app import (
    ConfigOption,
    MaxFileMbOption,
    MaxPixelsOption,
    SetOption,
    app,
    default_workers,
    exit_for_items,
    limit_overrides,
    resolve_config,
)


@app.command("preprocess")
def preprocess(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV (image_path, label, patient_id, "
                                                   "split).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: images/, "
                                                          "manifest.csv, config.yaml, qa/.")],
    strategy: Annotated[str | None, typer.Option(
        help="median, gaussian or wiener (the paper's chains), none, or custom "
             "(steps from preprocess.steps). Default: preprocess.strategy of the config.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (default: all CPUs).")]
    = default_workers(),
    config: ConfigOption = None,
    overrides: SetOption = None,
    qa: Annotated[int, typer.Option("--qa", min=0, help="Write QA figures (every step, "
                                                        "histograms before/after NLM) for this "
                                                        "many images to OUT/qa.")] = 0,
    data_root: Annotated[Path | None, typer.Option(
        "--data-root", metavar="DIR", help="Refuse a manifest listing any image outside DIR "
                                           "(symbolic links resolved).")] = None,
    max_pixels: MaxPixelsOption = None,
    max_file_mb: MaxFileMbOption = None,
) -> None:
    """Pre-process every image of MANIFEST into OUT (resumable: a rerun does only what is
    missing). Images that fail get status=error in OUT/manifest.csv and the run goes on; the
    exit status is then 3 (1 if none could be processed)."""
    from mammohybrid.preprocess import run_batch

    settings = [*(overrides or []), *([f"preprocess.strategy={strategy}"] if strategy else []),
                *limit_overrides(max_pixels, max_file_mb)]
    summary = run_batch(manifest, out, resolve_config(config, settings), workers=workers, qa=qa,
                        data_root=data_root)
    for line in summary.lines():
        typer.echo(line)
    typer.echo(f"pre-processed manifest: {summary.manifest_path}")
    exit_for_items(summary.images - summary.failed, summary.failed)
