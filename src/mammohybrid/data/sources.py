"""What an ingest source is and the registry of sources.

A source is a function registered under a name with :func:`register_source`:
``function(root, config, *, out_dir, limits, **options)`` returns an :class:`IngestResult` (the
manifest rows, the rows it could not use with their kind of error, counts and notes) and reports
a bad row by raising :class:`RowProblem`. Each source module (:mod:`~mammohybrid.data.cbis_ddsm`,
:mod:`~mammohybrid.data.mias`, :mod:`~mammohybrid.data.folder`) registers its sources when it is
imported; :mod:`mammohybrid.data.ingest` imports them all and runs them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TypedDict

import pandas as pd

from mammohybrid.config import DataConfig
from mammohybrid.data.manifest import PATH_COLUMNS, split_summary
from mammohybrid.errors import DatasetError
from mammohybrid.fileio import InputTree

# Kinds of per-row errors (the ``kind`` column of MANIFEST.errors.csv).
MISSING_FILE = "missing_file"
UNREADABLE_IMAGE = "unreadable_image"
UNKNOWN_PATHOLOGY = "unknown_pathology"
MISSING_COLUMNS = "missing_columns"
MISSING_VALUE = "missing_value"
DUPLICATE_ROW = "duplicate_row"
PATH_OUTSIDE_ROOT = "path_outside_root"
NO_CROP = "no_crop"
BAD_VALUE = "bad_value"

ERROR_COLUMNS = ["kind", "message", "source", "row", "path"]

# Pathology values every source understands (upper-cased); BENIGN_WITHOUT_CALLBACK follows
# ``data.benign_without_callback``.
BENIGN_WITHOUT_CALLBACK = "BENIGN_WITHOUT_CALLBACK"
_PATHOLOGY_LABELS = {"BENIGN": 0, "B": 0, "0": 0, "MALIGNANT": 1, "M": 1, "1": 1}
_BWC_LABELS = {"benign": 0, "malignant": 1, "exclude": None}


class RowProblem(Exception):
    """Raised by a source's per-row code: this row cannot be ingested (kind, message, path)."""

    def __init__(self, kind: str, message: str, path: str | os.PathLike[str] = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.path = str(path)


class RowSource(TypedDict):
    """The file a row comes from and the row's number there (as in :class:`RowError`): the
    keywords :meth:`IngestResult.error` and :meth:`IngestResult.label_for` take."""

    source: str | os.PathLike[str]
    row: int | None


@dataclass(frozen=True)
class RowError:
    """One input row that was not ingested. ``row`` is the 1-based data row of a CSV (header
    not counted) or the line number of a text file; None for file-level problems."""

    kind: str
    message: str
    source: str = ""
    row: int | None = None
    path: str = ""


@dataclass
class IngestResult:
    """What a source produced: the manifest rows, the rows it could not use, counts and notes.

    Sources fill it as they go (:meth:`error`, :meth:`count`, :meth:`note`) and set ``frame``
    at the end; :func:`run_ingest` adds the split columns.
    """

    dataset: str
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    errors: list[RowError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def error(self, kind: str, message: str, *, source: str | os.PathLike[str] = "",
              row: int | None = None, path: str | os.PathLike[str] = "") -> None:
        self.errors.append(RowError(kind, message, str(source), row, str(path)))

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def label_for(self, pathology: str, config: DataConfig, *, source: str | os.PathLike[str] = "",
                  row: int | None = None, path: str | os.PathLike[str] = "") -> int | None:
        """The 0/1 label of a pathology value, or None when the row must be skipped (an
        unknown value, recorded as an error, or BENIGN_WITHOUT_CALLBACK under ``exclude``)."""
        value = str(pathology).strip().upper()
        if value == BENIGN_WITHOUT_CALLBACK:
            self.count(f"{BENIGN_WITHOUT_CALLBACK} rows")
            self.note(benign_without_callback_statement(config))
            label = _BWC_LABELS[config.benign_without_callback]
            if label is None:
                self.count(f"excluded: {BENIGN_WITHOUT_CALLBACK}")
            return label
        if value not in _PATHOLOGY_LABELS:
            self.error(UNKNOWN_PATHOLOGY,
                       f"unknown pathology '{pathology}' (expected BENIGN, MALIGNANT or "
                       f"{BENIGN_WITHOUT_CALLBACK})", source=source, row=row, path=path)
            return None
        return _PATHOLOGY_LABELS[value]

    def files_named(self) -> list[str]:
        """Every file the rows name: their images, masks and full images, and the files of
        rows in error (those given as absolute paths)."""
        columns = [c for c in PATH_COLUMNS if c in self.frame.columns]
        paths = {str(p) for c in columns for p in self.frame[c].dropna() if p}
        paths |= {e.path for e in self.errors if e.path and os.path.isabs(e.path)}
        return sorted(paths)

    def errors_frame(self) -> pd.DataFrame:
        return pd.DataFrame([e.__dict__ for e in self.errors], columns=ERROR_COLUMNS)

    def error_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for error in self.errors:
            counts[error.kind] = counts.get(error.kind, 0) + 1
        return counts

    def summary(self) -> pd.DataFrame:
        """Images, lesions and patients per split and class."""
        return split_summary(self.frame)


def benign_without_callback_statement(config: DataConfig) -> str:
    """The sentence every summary carries about BENIGN_WITHOUT_CALLBACK."""
    mapping = {"benign": "mapped to benign (label 0)", "malignant": "mapped to malignant (label 1)",
               "exclude": "excluded"}[config.benign_without_callback]
    return (f"{BENIGN_WITHOUT_CALLBACK} {mapping} "
            f"(data.benign_without_callback={config.benign_without_callback})")


def safe_join(root: Path, relative: str | os.PathLike[str], follow_links: bool = True) -> Path:
    """``root / relative``, refusing paths that leave ``root`` (``..``, absolute paths elsewhere).

    With ``follow_links`` (the default), symbolic links are not resolved, so a dataset whose
    sub-folders are links to another disk still ingests; only the path as written must stay
    inside ``root``. Without it, the file a path finally names (links resolved) must be inside
    ``root`` too.
    """
    text = str(relative).strip()
    candidate = Path(text) if PurePath(text).is_absolute() else root / text
    normal = os.path.normpath(os.path.abspath(candidate))
    base = os.path.normpath(os.path.abspath(root))
    if os.path.commonpath([normal, base]) != base:
        raise RowProblem(PATH_OUTSIDE_ROOT, f"path '{text}' points outside {root}", text)
    if not follow_links:
        real, real_base = os.path.realpath(normal), os.path.realpath(base)
        if os.path.commonpath([real, real_base]) != real_base:
            raise RowProblem(PATH_OUTSIDE_ROOT, f"path '{text}' is a symbolic link to {real}, "
                             f"outside {root} (--follow-links accepts it)", text)
    return Path(normal)


# --------------------------------------------------------------------------- registry
IngestFunction = Callable[..., IngestResult]
# ``reads(root, **options)``: the files and trees a source reads under ``root``, known before
# it reads anything (so that an output among them is refused at once).
ReadsFunction = Callable[..., list[Path | InputTree]]


@dataclass(frozen=True)
class IngestSource:
    """A registered ingest source: ``function(root, config, *, out_dir, limits, **options)``, and
    ``reads(root, **options)``, what it reads."""

    name: str
    summary: str
    function: IngestFunction
    reads: ReadsFunction


_SOURCES: dict[str, IngestSource] = {}


def register_source(name: str, summary: str,
                    reads: ReadsFunction) -> Callable[[IngestFunction], IngestFunction]:
    """Decorator: register an ingest function under ``name``; ``reads(root, **options)`` says
    which files it reads (see :class:`~mammohybrid.fileio.InputTree`)."""

    def decorator(function: IngestFunction) -> IngestFunction:
        _SOURCES[name] = IngestSource(name, summary, function, reads)
        return function

    return decorator


def ingest_sources() -> dict[str, IngestSource]:
    """All registered sources, by name."""
    return dict(_SOURCES)


def get_source(name: str) -> IngestSource:
    sources = ingest_sources()
    if name not in sources:
        raise DatasetError(f"unknown dataset source '{name}' (known: {', '.join(sources)})")
    return sources[name]
