"""The pre-processed-dataset cache: the guarantee that training and evaluation use the images
a config asks for.

:func:`ensure_preprocessed` turns a config and a raw or pre-processed manifest (see
:mod:`mammohybrid.preprocess.settings`) into the pre-processed manifest that config needs:

- pre-processed with the config's settings: used as it is;
- pre-processed with other settings: refused, naming the settings that differ (a setting is
  never silently ignored);
- raw: pre-processed with the config's settings into a cache folder named after those settings
  (``<strategy>-<hash of the preprocess section>``), by default
  ``<manifest folder>/<manifest name>.preprocessed/``. The batch is resumable, so an
  interrupted run continues, and a second run, fold or grid cell with the same settings reuses
  the finished images.
"""

from __future__ import annotations

import os
from pathlib import Path

from mammohybrid.config import Config
from mammohybrid.data import require_manifest_file
from mammohybrid.preprocess.batch import run_batch
from mammohybrid.preprocess.settings import check_same_preprocess, dataset_key, manifest_preprocess
from mammohybrid.progress import console
from mammohybrid.workers import usable_cores


def ensure_preprocessed(manifest: str | os.PathLike[str], config: Config, *,
                        cache_root: str | os.PathLike[str] | None = None,
                        workers: int | None = None) -> Path:
    """The pre-processed manifest ``config`` needs for ``manifest`` (see the module doc)."""
    manifest = Path(manifest)
    require_manifest_file(manifest)
    made_with = manifest_preprocess(manifest)
    if made_with is not None:
        check_same_preprocess(config, made_with, manifest)
        return manifest
    root = Path(cache_root) if cache_root is not None else default_cache_root(manifest)
    folder = root / dataset_key(config.preprocess)
    console.print(f"pre-processing {manifest} ('{config.preprocess.strategy}' strategy) -> "
                  f"{folder}")
    summary = run_batch(manifest, folder, config, workers or default_workers())
    for line in summary.lines():
        console.print(line, highlight=False)
    return summary.manifest_path


def default_cache_root(manifest: Path) -> Path:
    """Where the pre-processed versions of a raw manifest are kept by default."""
    return manifest.parent / f"{manifest.stem}.preprocessed"


def default_workers() -> int:
    """Worker processes for pre-processing: every usable core (NLM is one core's work per
    image)."""
    return usable_cores()
