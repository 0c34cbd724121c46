"""Pre-processed datasets: which pre-processing a manifest's images went through, and the
guarantee that training and evaluation use the images a config asks for.

A manifest is either *raw* (its images are the source crops) or *pre-processed* (written by
:func:`~mammohybrid.preprocess.batch.run_batch`: it has the batch's ``source_path`` and
``status`` columns and the ``config.yaml`` whose ``preprocess`` section made its images lies
beside it). :func:`ensure_preprocessed` turns a config and either kind into the pre-processed
manifest that config needs:

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

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from mammohybrid.config import Config, PreprocessConfig, flatten, load_config
from mammohybrid.data.manifest import require_manifest_file
from mammohybrid.errors import ConfigError, ManifestError
from mammohybrid.progress import console
from mammohybrid.workers import usable_cores

SETTINGS_FILE = "config.yaml"  # beside a pre-processed manifest
BATCH_COLUMNS = ("source_path", "status")  # columns only run_batch writes


def dataset_key(preprocess: PreprocessConfig) -> str:
    """Folder name of the dataset made with ``preprocess``: strategy + hash of the section."""
    section = json.dumps(preprocess.model_dump(mode="json"), sort_keys=True)
    return f"{preprocess.strategy}-{hashlib.sha256(section.encode()).hexdigest()[:8]}"


def manifest_preprocess(manifest: str | os.PathLike[str]) -> PreprocessConfig | None:
    """The settings that made a pre-processed manifest's images; None for a raw manifest."""
    manifest = Path(manifest)
    settings = manifest.parent / SETTINGS_FILE
    header = pd.read_csv(manifest, nrows=0).columns if manifest.is_file() else []
    if not all(column in header for column in BATCH_COLUMNS):
        return None
    if not settings.is_file():
        raise ManifestError(f"{manifest} was pre-processed (it has the columns "
                            f"{', '.join(BATCH_COLUMNS)}) but the {SETTINGS_FILE} that says how "
                            "is not beside it; pre-process the raw manifest again")
    return load_config(settings).preprocess


def differing_settings(mine: PreprocessConfig, theirs: PreprocessConfig) -> list[str]:
    """Dotted names of the ``preprocess`` settings that differ, nested sections included."""
    a = flatten(mine.model_dump(mode="json"), "preprocess")
    b = flatten(theirs.model_dump(mode="json"), "preprocess")
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def check_same_preprocess(config: Config, made_with: PreprocessConfig, where: Path) -> None:
    """Refuse images made with other pre-processing settings than ``config``'s; ``where`` is
    the file or folder that holds them (named in the error)."""
    differing = differing_settings(config.preprocess, made_with)
    if differing:
        raise ConfigError(
            f"{where} holds images pre-processed with other settings than the config's "
            f"({', '.join(differing)} differ); use a config with the same "
            "preprocess section, or give the raw manifest and the config's pre-processing is "
            "applied to it")


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
    from mammohybrid.preprocess.batch import run_batch  # batch imports this module

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
