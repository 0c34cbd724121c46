"""Decoding and pre-processing images in crash-safe worker processes: the one pool the batch
command (:func:`~mammohybrid.preprocess.batch.run_batch`), prediction
(:class:`~mammohybrid.inference.Predictor`) and the web server use.

:class:`ImageProcessor` decodes one file (or takes an array) and runs a :class:`Preparation`
on it (one chain, or several strategies sharing their common steps); it never raises: a
failure becomes :attr:`PreparedOutcome.error`. :class:`PreprocessPool` runs it in ``workers``
processes (0: in this process, one image at a time) and yields each image's
:class:`PreparedOutcome` as it finishes, in any order (every outcome carries its task's index).
The processes are a :class:`~mammohybrid.workers.CrashSafePool`: a decoder that kills its
process costs that image only (an error naming it), never the run.

Sharing the CPU (see ``docs/prediction.md`` for the measurements): each worker runs OpenCV
single-threaded (the processes already use the cores, and NLM on ROI-sized crops gains nothing
from threads), optionally at a lower scheduling priority (``niceness``) so that a model running
in the main process is not pre-empted in the middle of a batch.

NumPy/OpenCV only: the workers are spawned (safe whatever threads TensorFlow runs) and import
this module, which must not import TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np

from mammohybrid.config import LimitsConfig, PreprocessConfig
from mammohybrid.errors import MammohybridError
from mammohybrid.fileio import is_disk_full
from mammohybrid.imaging import decode_image, write_png
from mammohybrid.preprocess.base import Record
from mammohybrid.preprocess.chain import ProcessedImage, build_chain
from mammohybrid.preprocess.geometry import LimitSize
from mammohybrid.preprocess.intensity import ToUint8
from mammohybrid.workers import WORKER_DIED, CrashSafePool

# Longest side of the 8-bit copy of the input kept for Grad-CAM overlays.
DISPLAY_MAX_SIDE = 512


class Preparation(Protocol):
    """Pre-processing of one decoded image by one or more strategies.

    Calling it returns ``{strategy: ProcessedImage}``; the :attr:`primary` strategy's output is
    the one whose statistics are reported (and the one the batch writes)."""

    base: PreprocessConfig  # the config the strategies share (its ``intensity`` too)

    @property
    def primary(self) -> str: ...

    def __call__(self, image: np.ndarray,
                 known: Record | None = None) -> dict[str, ProcessedImage]: ...


class SingleChain:
    """The :class:`Preparation` of one config's own chain (what the batch command runs)."""

    def __init__(self, config: PreprocessConfig) -> None:
        self.base = config
        self.chain = build_chain(config)  # an unknown strategy fails here, before any work

    @property
    def primary(self) -> str:
        return self.base.strategy

    def __call__(self, image: np.ndarray,
                 known: Record | None = None) -> dict[str, ProcessedImage]:
        return {self.primary: self.chain(image, known)}


@dataclass(frozen=True)
class ImageTask:
    """One image to prepare. ``known``: what the caller knows of it (a manifest's pixel spacing
    and lesion centre). ``target``: write the primary output there as a PNG (and return no
    pixels) instead of returning the outputs. ``display``: also keep an 8-bit copy of the input
    (longest side :data:`DISPLAY_MAX_SIDE`) for overlays."""

    index: int
    path: str
    known: Record = field(default_factory=Record)
    target: str | None = None
    display: bool = False


@dataclass
class PreparedOutcome:
    """What became of one image: its outputs per strategy (uint8, ``output_size`` square;
    empty when written to the task's ``target`` or failed), what the primary chain reported,
    the decoders' and steps' warnings, or the error."""

    index: int
    name: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    input_shape: tuple[int, int] | None = None  # known once decoded, even if a step failed
    kept_fraction: float | None = None
    roi_empty: bool | None = None
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    display: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return not self.error


class ImageProcessor:
    """Decode (for a path) and prepare one image; never raises (a full disk aside, which must
    end a batch): a failure becomes :attr:`PreparedOutcome.error`, naming the image.

    ``limits``: the budgets every read checks before decoding. ``pixel_spacing_mm``: the
    millimetres per pixel of images whose task and file carry none (a manifest's spacing wins,
    then a DICOM header's); only a physical-scale pre-processing
    (``preprocess.field_of_view_mm``) uses it, and refuses images of unknown spacing."""

    def __init__(self, preparation: Preparation, limits: LimitsConfig | None = None,
                 pixel_spacing_mm: float | None = None) -> None:
        self.preparation = preparation
        self.limits = limits if limits is not None else LimitsConfig()
        self.pixel_spacing_mm = pixel_spacing_mm
        self.to_uint8 = ToUint8(preparation.base.intensity)
        self.display_size = LimitSize(DISPLAY_MAX_SIDE)

    def from_path(self, task: ImageTask) -> PreparedOutcome:
        outcome = PreparedOutcome(task.index, task.path)
        try:
            decoded = decode_image(task.path, self.limits)
        except MammohybridError as error:  # decode_image turns every decoder failure into one
            outcome.error = _naming(task.path, str(error))
            return outcome
        outcome.warnings = list(decoded.warnings)
        known = task.known
        if known.pixel_spacing_mm is None:
            known = replace(known, pixel_spacing_mm=decoded.pixel_spacing_mm)
        return self._prepare(outcome, decoded.image, known, task.display, task.target)

    def from_array(self, index: int, name: str, image: np.ndarray,
                   display: bool = False) -> PreparedOutcome:
        """Prepare an image given as an array (2-D, any dtype
        :func:`~mammohybrid.imaging.read_image` returns); ``name`` names it in errors."""
        return self._prepare(PreparedOutcome(index, name), image, Record(), display, None)

    def _prepare(self, outcome: PreparedOutcome, image: np.ndarray, known: Record,
                 display: bool, target: str | None) -> PreparedOutcome:
        outcome.input_shape = (int(image.shape[0]), int(image.shape[1]))
        if known.pixel_spacing_mm is None:
            known = replace(known, pixel_spacing_mm=self.pixel_spacing_mm)
        try:
            results = self.preparation(image, known)
            primary = results[self.preparation.primary]
            if target is not None:
                write_png(target, primary.image)
            if display:
                outcome.display = self.display_size(self.to_uint8(image))
        except MammohybridError as error:
            outcome.error = _naming(outcome.name, str(error))
            return outcome
        except Exception as error:
            if is_disk_full(error):
                raise
            outcome.error = f"{outcome.name}: {type(error).__name__}: {error}"
            return outcome
        if target is None:
            outcome.outputs = {strategy: result.image for strategy, result in results.items()}
        outcome.kept_fraction, outcome.roi_empty = primary.kept_fraction, primary.roi_empty
        warnings = [warning for result in results.values() for warning in result.warnings]
        # The shared steps' warnings appear once per strategy: keep each once.
        outcome.warnings += warnings if len(results) == 1 else list(dict.fromkeys(warnings))
        return outcome


def _naming(name: str, message: str) -> str:
    return message if name in message else f"{name}: {message}"


_processor: ImageProcessor | None = None


def _init_worker(processor: ImageProcessor, niceness: int) -> None:
    global _processor
    cv2.setNumThreads(1)
    if niceness and hasattr(os, "nice"):
        os.nice(niceness)
    _processor = processor


def _work(task: ImageTask) -> PreparedOutcome:
    assert _processor is not None, "worker process not initialised"
    return _processor.from_path(task)


def _crashed(task: ImageTask) -> PreparedOutcome:
    return PreparedOutcome(task.index, task.path, error=f"{task.path}: {WORKER_DIED}")


class PreprocessPool:
    """Prepares image files in ``workers`` processes (0: in this process, one at a time),
    started on first use and kept for every :meth:`map` until :meth:`close` (or the end of
    the ``with`` block). ``niceness``: how much lower the workers' scheduling priority is.
    ``limits`` and ``pixel_spacing_mm``: see :class:`ImageProcessor`."""

    def __init__(self, preparation: Preparation, workers: int = 0,
                 limits: LimitsConfig | None = None, pixel_spacing_mm: float | None = None,
                 niceness: int = 0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.processor = ImageProcessor(preparation, limits, pixel_spacing_mm)
        self.workers = workers
        self.niceness = niceness
        self._pool: CrashSafePool[ImageTask, PreparedOutcome] | None = None

    def __enter__(self) -> PreprocessPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes, work in progress included (also on Ctrl-C); a later
        :meth:`map` starts new ones."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def start(self) -> None:
        """Start the worker processes now (otherwise the first :meth:`map` does)."""
        if self.workers and self._pool is None:
            self._pool = CrashSafePool(self.workers, _work, _crashed, initializer=_init_worker,
                                       initargs=(self.processor, self.niceness))
            self._pool.start()

    def map(self, tasks: Iterable[ImageTask], max_in_flight: int = 0
            ) -> Iterator[PreparedOutcome]:
        """An outcome per task, each as soon as it is done (any order), with at most
        ``max_in_flight`` (at least ``workers``) handed out at a time: memory stays flat
        however many images there are."""
        if not self.workers:
            yield from map(self.processor.from_path, tasks)
            return
        self.start()
        assert self._pool is not None
        yield from self._pool.map_unordered(tasks, max_in_flight)
