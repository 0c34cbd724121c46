"""Decoding and pre-processing for prediction, in worker processes that run ahead of the model.

While the model runs one batch in the main process, the workers decode and pre-process the
next ones: :meth:`Preparer.map` keeps up to ``max_in_flight`` images submitted and yields them
as they finish (in any order; every result carries its input index). The pool is started once
and reused by every call until :meth:`Preparer.close`.

Sharing the CPU with the model (see ``docs/prediction.md`` for the measurements): each worker
runs OpenCV single-threaded (NLM gains nothing from threads on crops of a few hundred pixels)
and at a lower scheduling priority (``niceness``), so that when the CPU is the model's too,
TensorFlow's threads are not pre-empted in the middle of a batch (an op waits for its slowest
thread) and the workers fill the time the model leaves idle.

NumPy/OpenCV only: the workers are spawned (safe whatever threads TensorFlow runs) and import
this module, which must not import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from mammohybrid.config import LimitsConfig
from mammohybrid.errors import MammohybridError
from mammohybrid.imaging import decode_image, read_limits
from mammohybrid.inference.ensemble import StrategyEnsemble
from mammohybrid.preprocess import LimitSize, Record, ToUint8
from mammohybrid.workers import WORKER_DIED, CrashSafePool

# Longest side of the 8-bit copy of the input kept for Grad-CAM overlays.
DISPLAY_MAX_SIDE = 512


@dataclass
class PreparedImage:
    """One input after decoding and pre-processing: the model input of every strategy
    (uint8, output_size x output_size), what the ROI step reported, or the error."""

    index: int
    name: str
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    kept_fraction: float | None = None
    roi_empty: bool | None = None
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    display: np.ndarray | None = None  # 8-bit input for overlays, when asked for

    @property
    def ok(self) -> bool:
        return not self.error


class Prepare:
    """Decode (for a path) and pre-process one image with every strategy of ``ensemble``;
    never raises: a failure becomes :attr:`PreparedImage.error`.

    ``pixel_spacing_mm``: the millimetres per pixel of inputs that carry none of their own (a
    DICOM header's spacing wins); only a physical-scale pre-processing
    (``preprocess.field_of_view_mm``) uses it, and refuses images of unknown spacing."""

    def __init__(self, ensemble: StrategyEnsemble, limits: LimitsConfig | None = None,
                 pixel_spacing_mm: float | None = None) -> None:
        self.ensemble = ensemble
        self.limits = limits or read_limits()
        self.pixel_spacing_mm = pixel_spacing_mm
        self.to_uint8 = ToUint8(ensemble.base.intensity)
        self.display_size = LimitSize(DISPLAY_MAX_SIDE)

    def array(self, index: int, name: str, image: np.ndarray, display: bool = False,
              pixel_spacing_mm: float | None = None) -> PreparedImage:
        prepared = PreparedImage(index, name)
        spacing = pixel_spacing_mm or self.pixel_spacing_mm
        try:
            results = self.ensemble(image, Record(pixel_spacing_mm=spacing))
            if display:
                prepared.display = self.display_size(self.to_uint8(image))
        except MammohybridError as error:
            message = str(error)
            prepared.error = message if name in message else f"{name}: {message}"
            return prepared
        except Exception as error:  # one bad image must not stop the others
            prepared.error = f"{name}: {type(error).__name__}: {error}"
            return prepared
        primary = results[self.ensemble.primary]
        prepared.inputs = {strategy: result.image for strategy, result in results.items()}
        prepared.kept_fraction, prepared.roi_empty = primary.kept_fraction, primary.roi_empty
        # Warnings of the shared steps appear once per strategy: keep each once.
        prepared.warnings = list(dict.fromkeys(w for r in results.values() for w in r.warnings))
        return prepared

    def path(self, index: int, path: str, display: bool = False) -> PreparedImage:
        try:
            decoded = decode_image(path, self.limits)
        except MammohybridError as error:  # decode_image turns every decoder failure into one
            return PreparedImage(index, path, error=str(error))
        prepared = self.array(index, path, decoded.image, display, decoded.pixel_spacing_mm)
        prepared.warnings[:0] = decoded.warnings
        return prepared


_prepare: Prepare | None = None


def _crashed(task: tuple[int, str, bool]) -> PreparedImage:
    index, path, _ = task
    return PreparedImage(index, path, error=f"{path}: {WORKER_DIED}")


def _init_worker(prepare: Prepare, niceness: int) -> None:
    global _prepare
    cv2.setNumThreads(1)
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)
    _prepare = prepare


def _work(task: tuple[int, str, bool]) -> PreparedImage:
    assert _prepare is not None, "worker process not initialised"
    return _prepare.path(*task)


class Preparer:
    """Prepares images for the model: in ``workers`` processes (0: here, one at a time, no
    overlap with the model). Use as a context manager, or call :meth:`close`."""

    def __init__(self, ensemble: StrategyEnsemble, workers: int = 0, niceness: int = 10,
                 limits: LimitsConfig | None = None,
                 pixel_spacing_mm: float | None = None) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.prepare = Prepare(ensemble, limits, pixel_spacing_mm)
        self.workers = workers
        self.niceness = niceness
        self._pool: CrashSafePool[tuple[int, str, bool], PreparedImage] | None = None

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (a later :meth:`map` starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def start(self) -> None:
        """Start the worker processes now (otherwise the first :meth:`map` does)."""
        if self.workers and self._pool is None:
            # A decoder that kills its worker costs that image only.
            self._pool = CrashSafePool(self.workers, _work, _crashed, initializer=_init_worker,
                                       initargs=(self.prepare, self.niceness))
            self._pool.start()

    def map(self, paths: Iterable[str], display: bool = False,
            max_in_flight: int = 32) -> Iterator[PreparedImage]:
        """Prepare ``paths`` (indexed in order), yielding each as soon as it is done."""
        tasks = ((index, str(path), display) for index, path in enumerate(paths))
        if not self.workers:
            yield from (self.prepare.path(*task) for task in tasks)
            return
        self.start()
        assert self._pool is not None
        # Bounded read-ahead: memory stays flat however many images there are.
        yield from self._pool.map_unordered(tasks, max_in_flight)
