"""``mammohybrid ingest SOURCE ROOT --out MANIFEST.csv`` and ``mammohybrid synth OUT``: thin
layers over :func:`mammohybrid.data.ingest.run_ingest` and
:func:`mammohybrid.data.synth.generate_cbis_ddsm`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mammohybrid.cli.app import (
    ConfigOption,
    MaxFileMbOption,
    MaxPixelsOption,
    SetOption,
    app,
    exit_for_items,
    limit_overrides,
    resolve_config,
)

ingest_app = typer.Typer(
    help="Turn a dataset into one manifest CSV with patient-level train/val/test splits. "
         "Beside MANIFEST.csv: MANIFEST.errors.csv (rows not ingested, and why), "
         "MANIFEST.summary.csv/.md and MANIFEST.config.yaml.",
    no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


class Abnormality(StrEnum):
    mass = "mass"
    calc = "calc"
    all = "all"


class MiasTask(StrEnum):
    """``mammohybrid.data.mias.TASKS`` (listed here: the CLI starts without importing data)."""

    mass = "mass"
    nonmass = "nonmass"
    all = "all"
    calc = "calc"
    circ = "circ"
    spic = "spic"
    misc = "misc"
    arch = "arch"
    asym = "asym"


RootArgument = Annotated[Path, typer.Argument(help="The dataset's folder (see docs/datasets.md).")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Manifest CSV to write.")]
ValFractionOption = Annotated[float | None, typer.Option(
    "--val-fraction", min=0.0, max=0.5,
    help="Share of training patients held out for validation (data.val_fraction).")]
SeedOption = Annotated[int | None, typer.Option(
    "--seed", help="Seed of the patient splits (data.split_seed).")]
CsvDirOption = Annotated[Path | None, typer.Option(
    "--csv-dir", help="Folder holding the case CSVs (default: searched under ROOT).")]
AbnormalityOption = Annotated[Abnormality, typer.Option(
    "--abnormality", help="Which CBIS-DDSM case CSVs to ingest.")]


def _ingest(source: str, root: Path, out: Path, config: str | None, overrides: list[str] | None,
            val_fraction: float | None, seed: int | None, max_pixels: int | None = None,
            max_file_mb: float | None = None, **options: Any) -> None:
    """Run one ingest source; exit 3 when some rows were not ingested (MANIFEST.errors.csv)."""
    from mammohybrid.data import run_ingest

    settings = [*(overrides or []), *limit_overrides(max_pixels, max_file_mb)]
    if val_fraction is not None:
        settings.append(f"data.val_fraction={val_fraction}")
    if seed is not None:
        settings.append(f"data.split_seed={seed}")
    result = run_ingest(source, root, out, resolve_config(config, settings), **options)
    _print_summary(result, out)
    exit_for_items(len(result.frame), len(result.errors))


def _print_summary(result: Any, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from mammohybrid.data import IngestOutputs

    console = Console(soft_wrap=True)
    console.print(f"{result.dataset}: images, lesions and patients per split and class",
                  style="bold", highlight=False)
    table = Table()
    for column in ("split", "class", "images", "lesions", "patients"):
        table.add_column(column, justify="left" if column in ("split", "class") else "right")
    for row in result.summary().itertuples(index=False):
        table.add_row(*(str(value) for value in row),
                      style="bold" if row[1] == "all" else None)
    console.print(table)
    for key, value in result.counts.items():
        console.print(f"{key}: {value}", highlight=False)
    errors = result.error_counts()
    outputs = IngestOutputs.for_manifest(out)
    detail = f" ({', '.join(f'{k}: {n}' for k, n in errors.items())})" if errors else ""
    console.print(f"rows not ingested: {len(result.errors)}{detail} -> {outputs.errors}",
                  style="yellow" if errors else None, highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"manifest: {outputs.manifest} (summary: {outputs.summary_md})",
                  highlight=False)


@ingest_app.command("cbis-ddsm")
def cbis_ddsm(root: RootArgument, out: OutOption, csv_dir: CsvDirOption = None,
              abnormality: AbnormalityOption = Abnormality.mass, config: ConfigOption = None,
              overrides: SetOption = None, val_fraction: ValFractionOption = None,
              seed: SeedOption = None, max_pixels: MaxPixelsOption = None,
              max_file_mb: MaxFileMbOption = None) -> None:
    """CBIS-DDSM as downloaded from TCIA (DICOM; old UID or new descriptive folder names).
    Keeps the official test split; validation is carved from official train by patient."""
    _ingest("cbis-ddsm", root, out, config, overrides, val_fraction, seed, max_pixels,
            max_file_mb, csv_dir=csv_dir, abnormality=abnormality.value)


@ingest_app.command("cbis-ddsm-jpeg")
def cbis_ddsm_jpeg(root: RootArgument, out: OutOption, csv_dir: CsvDirOption = None,
                   abnormality: AbnormalityOption = Abnormality.mass,
                   config: ConfigOption = None, overrides: SetOption = None,
                   val_fraction: ValFractionOption = None, seed: SeedOption = None,
                   max_pixels: MaxPixelsOption = None,
                   max_file_mb: MaxFileMbOption = None) -> None:
    """The CBIS-DDSM JPEG re-export: `ROOT/csv/dicom_info.csv` +
    `ROOT/jpeg/<SeriesInstanceUID>/`."""
    _ingest("cbis-ddsm-jpeg", root, out, config, overrides, val_fraction, seed, max_pixels,
            max_file_mb, csv_dir=csv_dir, abnormality=abnormality.value)


@ingest_app.command("mias")
def mias(root: RootArgument, out: OutOption,
         task: Annotated[MiasTask, typer.Option(
             "--task", help="mass: CIRC, SPIC, MISC lesions; nonmass: CALC, ARCH, ASYM; all: "
                            "every abnormal lesion; or one class (calc, circ, ...).")]
         = MiasTask.mass,
         config: ConfigOption = None, overrides: SetOption = None,
         val_fraction: ValFractionOption = None, seed: SeedOption = None,
         max_pixels: MaxPixelsOption = None, max_file_mb: MaxFileMbOption = None) -> None:
    """mini-MIAS (Info.txt + mdbNNN.pgm): square lesion crops written beside the manifest
    (mias_crops/), stratified patient-grouped train/val/test and CV folds."""
    _ingest("mias", root, out, config, overrides, val_fraction, seed, max_pixels, max_file_mb,
            task=task.value)


@ingest_app.command("folder")
def folder(root: Annotated[Path, typer.Argument(
               help="`ROOT/benign|malignant/*`, `ROOT/<split>/<class>/*`, or a CSV file with "
                    "path, label and patient columns.")],
           out: OutOption, config: ConfigOption = None, overrides: SetOption = None,
           val_fraction: ValFractionOption = None, seed: SeedOption = None,
           follow_links: Annotated[bool, typer.Option(
               "--follow-links", help="Accept images that are symbolic links to files outside "
                                      "ROOT (default: refused).")] = False,
           max_pixels: MaxPixelsOption = None, max_file_mb: MaxFileMbOption = None) -> None:
    """Your own images in class folders, or listed in a CSV. Rows that cannot be ingested are
    listed in MANIFEST.errors.csv; the exit status is then 3."""
    _ingest("folder", root, out, config, overrides, val_fraction, seed, max_pixels, max_file_mb,
            follow_links=follow_links)


@app.command("synth")
def synth(out: Annotated[Path, typer.Argument(help="Folder to write the dataset into.")],
          patients: Annotated[int, typer.Option("--patients", "-n", min=1,
                                                help="Number of patients.")] = 80,
          seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same "
                                                           "bytes).")] = 0,
          preview: Annotated[Path | None, typer.Option(
              "--preview", help="Also write a PNG grid of sample crops per class here.")]
          = None) -> None:
    """Write a synthetic CBIS-DDSM mass dataset in the real on-disk format (TCIA DICOM tree +
    case CSVs); ingest it with `mammohybrid ingest cbis-ddsm OUT --out OUT/manifest.csv`."""
    from mammohybrid.data import generate_cbis_ddsm, sample_grid
    from mammohybrid.imaging import write_png

    summary = generate_cbis_ddsm(out, patients=patients, seed=seed)
    typer.echo(f"wrote {summary.rois} ROIs of {summary.patients} patients "
               f"({summary.files} files, {summary.bytes / 1e6:.1f} MB) to {summary.root}")
    if preview is not None:
        typer.echo(f"preview: {write_png(preview, sample_grid(seed))}")
