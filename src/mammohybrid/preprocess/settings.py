"""Which pre-processing a manifest's images went through.

A manifest is either *raw* (its images are the source crops) or *pre-processed* (written by
:func:`~mammohybrid.preprocess.batch.run_batch`: it has the batch's ``source_path`` and
``status`` columns and the ``config.yaml`` whose ``preprocess`` section made its images lies
beside it). This module reads those settings back, names a set of settings
(:func:`dataset_key`) and refuses images made with other settings than a config's;
:mod:`mammohybrid.preprocess.cache` uses it to give training and evaluation the images a
config asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from mammohybrid.config import Config, PreprocessConfig, flatten, load_config
from mammohybrid.errors import ConfigError, ManifestError

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
