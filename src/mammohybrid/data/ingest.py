"""Ingest: turn a dataset on disk into one manifest (see :mod:`mammohybrid.data.manifest`).

Every source (CBIS-DDSM DICOM, its JPEG re-export, mini-MIAS, plain folders) is a function
registered under a name (:mod:`mammohybrid.data.sources`); :func:`run_ingest` looks it up,
splits the rows by patient (:mod:`mammohybrid.data.splits`), checks that no patient crosses
splits, and writes, beside ``MANIFEST.csv``:

- ``MANIFEST.errors.csv``: one line per input row that could not be ingested (kind, message,
  source file, row, path) -- bad rows are reported and skipped, the rest ingests;
- ``MANIFEST.summary.csv`` / ``.summary.md``: images, lesions and patients per split and class,
  the counts of skipped rows by reason, and statements such as the BENIGN_WITHOUT_CALLBACK
  mapping;
- ``MANIFEST.config.yaml``: the resolved configuration;
- ``MANIFEST.csv`` itself, last and atomically: a manifest on disk is always complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mammohybrid.config import Config, save_config
from mammohybrid.data import cbis_ddsm, folder, mias  # noqa: F401  (importing registers them)
from mammohybrid.data.manifest import check_no_patient_leak, write_manifest
from mammohybrid.data.sources import IngestResult, get_source
from mammohybrid.errors import DatasetError
from mammohybrid.fileio import (
    atomic_open,
    atomic_write_text,
    output_lock,
    refuse_overwriting_inputs,
    stop_on_full_disk,
)


@dataclass(frozen=True)
class IngestOutputs:
    """The files :func:`run_ingest` writes for ``MANIFEST.csv``."""

    manifest: Path
    errors: Path
    summary_csv: Path
    summary_md: Path
    config: Path

    @classmethod
    def for_manifest(cls, manifest: str | os.PathLike[str]) -> IngestOutputs:
        manifest = Path(manifest)
        stem = manifest.with_suffix("")
        return cls(manifest=manifest,
                   errors=stem.with_name(stem.name + ".errors.csv"),
                   summary_csv=stem.with_name(stem.name + ".summary.csv"),
                   summary_md=stem.with_name(stem.name + ".summary.md"),
                   config=stem.with_name(stem.name + ".config.yaml"))

    def files(self) -> list[Path]:
        return [self.manifest, self.errors, self.summary_csv, self.summary_md, self.config]


def ingest(source: str, root: str | os.PathLike[str], config: Config, *,
           out_dir: str | os.PathLike[str], **options: Any) -> IngestResult:
    """Run a registered source on ``root`` (which exists: :func:`run_ingest` checks) and split
    its rows by patient (nothing is written except what the source itself must write, e.g.
    mini-MIAS crops under ``out_dir``)."""
    from mammohybrid.data.splits import assign_splits

    root = Path(root)
    result = get_source(source).function(root, config.data, out_dir=Path(out_dir),
                                         limits=config.limits, **options)
    if result.frame.empty:
        return result
    result.frame, notes = assign_splits(result.frame, config.data)
    for text in notes:
        result.note(text)
    check_no_patient_leak(result.frame)
    return result


def run_ingest(source: str, root: str | os.PathLike[str], out: str | os.PathLike[str],
               config: Config, **options: Any) -> IngestResult:
    """Ingest ``root`` with the named source and write the manifest and its companions.

    Refused before any work: an output that is ``root`` itself (a CSV list), holds it, or is a
    file the source reads (an image of its tree, a case CSV: the source's ``reads``), and a
    manifest another process is writing. Once the source has read its rows, an output among
    the files they name (a CSV list may name any file) is refused before anything is
    written."""
    outputs = IngestOutputs.for_manifest(out)
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such file or folder")
    refuse_overwriting_inputs(outputs.files(), [root, *get_source(source).reads(root, **options)])
    with output_lock(outputs.manifest.parent, f".{outputs.manifest.name}.lock",
                     outputs.manifest), \
            stop_on_full_disk(outputs.manifest.parent,
                              f"run ingest again ({outputs.manifest} is written last: it was "
                              "not written)"):
        return _ingest_locked(source, root, outputs, config, **options)


def _ingest_locked(source: str, root: str | os.PathLike[str], outputs: IngestOutputs,
                   config: Config, **options: Any) -> IngestResult:
    result = ingest(source, root, config, out_dir=outputs.manifest.parent, **options)
    refuse_overwriting_inputs(outputs.files(), result.files_named())
    _write_errors(result, outputs.errors)
    if result.frame.empty:
        if result.errors:
            why = (f"{len(result.errors)} row error(s) listed in {outputs.errors}; first: "
                   f"{result.errors[0].message}")
        else:
            why = "; ".join(f"{key}: {n}" for key, n in result.counts.items()) or "no rows"
        raise DatasetError(f"{root}: no usable image found ({why})")
    with atomic_open(outputs.summary_csv, "w", newline="", encoding="utf-8") as handle:
        result.summary().to_csv(handle, index=False)
    atomic_write_text(outputs.summary_md, ingest_summary_markdown(result, root))
    save_config(config, outputs.config)
    write_manifest(result.frame, outputs.manifest)  # last: its presence means all is written
    return result


def _write_errors(result: IngestResult, path: Path) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        result.errors_frame().to_csv(handle, index=False)


def ingest_summary_markdown(result: IngestResult, root: str | os.PathLike[str]) -> str:
    """The summary as Markdown: the split table, skipped rows by reason, notes."""
    table = result.summary()
    lines = [f"# Ingest summary: {result.dataset}", "", f"Source: `{root}`", "",
             "| split | class | images | lesions | patients |", "|---|---|---:|---:|---:|"]
    lines += [f"| {r.split} | {r._2} | {r.images} | {r.lesions} | {r.patients} |"
              for r in table.itertuples()]
    lines += ["", "## Counts", ""]
    lines += [f"- {key}: {value}" for key, value in result.counts.items()]
    errors = result.error_counts()
    lines += [f"- rows with errors: {len(result.errors)}"]
    lines += [f"  - {kind}: {n}" for kind, n in errors.items()]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {text}" for text in result.notes]
    return "\n".join(lines) + "\n"
