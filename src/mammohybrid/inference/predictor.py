"""Prediction on new images with a finished run directory.

A run directory is a complete pipeline (:class:`mammohybrid.run_dir.RunDir`): the model
(``model.keras``, loaded in Keras' safe mode, so nothing from the file is unpickled), the config
whose ``preprocess`` section is exactly what the training images went through, and the decision
threshold chosen on validation (``threshold.json``). :class:`Predictor` applies all three::

    with Predictor.from_run("runs/median") as predictor:
        frame = predictor.predict_paths(["new_rois/"], workers=2)

The same with the run's ONNX export (``mammohybrid export``) on ONNX Runtime, without
TensorFlow: ``Predictor.from_run("runs/median", backend="onnxruntime")`` (or the ``.onnx`` file,
which carries the config and threshold in its metadata); only the scorer differs
(:mod:`mammohybrid.inference.backends`).

One row per image: ``path``, ``probability`` (of malignancy), ``label`` (1 malignant, 0 benign,
at the stored threshold: ``probability >= threshold``), ``prediction`` (the label in words),
``threshold``, ``kept_fraction`` (share of pixels the ROI threshold kept), ``roi_empty``,
``warnings`` and ``error``. An unreadable or invalid input gets a row with its ``error`` and no
probability; the others are predicted. With a filter ensemble (``strategies``), ``probability``
is the mean over the strategies and ``probability_<strategy>`` holds each; with Grad-CAM,
``gradcam`` holds the combined overlay's path.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.config import Config, LimitsConfig, save_config, with_overrides
from mammohybrid.decision import ThresholdChoice, predict_labels
from mammohybrid.errors import ConfigError, MammohybridError, RunNotFinishedError
from mammohybrid.fileio import InputTree
from mammohybrid.imaging import IMAGE_SUFFIXES, is_dicom
from mammohybrid.inference.backends import BACKENDS, Backend, KerasScorer, Scorer
from mammohybrid.inference.ensemble import StrategyEnsemble, average_probabilities
from mammohybrid.preprocess import (
    ImageProcessor,
    ImageTask,
    PreparedOutcome,
    PreprocessPool,
    output_name,
    to_model_input,
)
from mammohybrid.progress import progress_bar
from mammohybrid.run_dir import RunDir

CLASS_NAMES = {0: "benign", 1: "malignant"}
# What makes a spreadsheet read a CSV cell as a formula (OWASP, "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ["path", "probability", "label", "prediction", "threshold", "kept_fraction",
           "roi_empty", "warnings", "error"]


def predictions_csv(frame: pd.DataFrame) -> str:
    """The text of a predictions CSV (``mammohybrid predict --out`` and the web page's
    download, so that the two are identical).

    A text cell that a spreadsheet would take for a formula (a file named ``=HYPERLINK(...)``,
    and the error naming it) is written behind a single quote, as OWASP advises against CSV
    injection: opened in a spreadsheet it shows as the text it is.
    """
    text = frame.select_dtypes(include=["object", "string"]).columns
    return frame.assign(**{column: frame[column].map(_not_a_formula) for column in text}) \
        .to_csv(index=False)


def _not_a_formula(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[tuple[str, str]]:
    """Files and folders -> ``(path, problem)`` pairs in input order, ``problem`` empty for
    images to predict.

    A folder contributes every image file below it (recursively, sorted; DICOM, PNG, JPEG,
    PGM, TIFF by suffix, or DICOM by content for files without a known suffix; hidden files
    skipped); a folder without any becomes one problem. A file is taken whatever its suffix
    (reading it decides); a path that does not exist is a problem. Duplicates are dropped.
    """
    entries: dict[str, str] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = [str(p) for p in sorted(path.rglob("*")) if _is_image_file(p, path)]
            if not found:
                entries.setdefault(str(path), f"{path}: no image files (DICOM, PNG, JPEG, PGM, "
                                              "TIFF) in this folder")
            for image in found:
                entries.setdefault(image, "")
        elif path.exists():
            entries.setdefault(str(path), "")
        else:
            entries.setdefault(str(path), f"{path}: no such file or folder")
    return list(entries.items())


def inputs_read(inputs: Iterable[str | os.PathLike[str]]) -> list[Path | InputTree]:
    """What :func:`expand_inputs` reads from ``inputs``, for
    :func:`~mammohybrid.fileio.refuse_overwriting_inputs`: a file as given, a folder as the
    tree of the image files it takes from it."""
    read: list[Path | InputTree] = []
    for item in map(Path, inputs):
        if item.is_dir():
            root = item.resolve()
            read.append(InputTree(item, functools.partial(_is_image_file, root=root)))
        else:
            read.append(item)
    return read


def _is_image_file(path: Path, root: Path) -> bool:
    if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or is_dicom(path)


class Predictor:
    """A trained model with the pre-processing and threshold it was trained and validated with.

    ``scorer``: what turns model inputs into probabilities, the run's Keras model or its ONNX
    export on ONNX Runtime (:mod:`mammohybrid.inference.backends`); everything else here is
    the same for both. ``strategies``: pre-processing strategies whose probabilities are
    averaged (test-time filter ensemble); None or empty = the training strategy alone. The
    first one is the *primary* strategy: its kept fraction is reported and its model input is
    explained by Grad-CAM. ``worker_niceness``: how much lower the pre-processing workers'
    scheduling priority is than the model's (see :mod:`mammohybrid.preprocess.pool`).
    ``pixel_spacing_mm``: millimetres per pixel of inputs without a spacing of their own (a
    DICOM header's wins), for a run pre-processed at a physical scale
    (``preprocess.field_of_view_mm``); such a run refuses images of unknown spacing.
    ``limits``: the budgets every image read checks before decoding; given, they replace the
    config's ``limits`` (so :attr:`config` is what the predictions were made with).
    """

    def __init__(self, scorer: Scorer, config: Config, threshold: ThresholdChoice,
                 strategies: Sequence[str] | None = None, worker_niceness: int = 10,
                 pixel_spacing_mm: float | None = None,
                 limits: LimitsConfig | None = None) -> None:
        self.scorer = scorer
        self.input_size = scorer.input_size
        self.config = config if limits is None else config.model_copy(update={"limits": limits})
        self.threshold = threshold
        self.ensemble = StrategyEnsemble(config.preprocess, strategies)
        self.worker_niceness = worker_niceness
        self.pixel_spacing_mm = pixel_spacing_mm
        self._pool: PreprocessPool | None = None
        self._gradcam: Any = None

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str],
                 strategies: Sequence[str] | None = None,
                 pixel_spacing_mm: float | None = None,
                 backend: Backend = "keras", overrides: Sequence[str] = (),
                 limits: LimitsConfig | None = None) -> Predictor:
        """Load a finished run directory: model (safe mode), config, threshold.

        With ``backend="onnxruntime"``, ``run_dir`` is a run directory holding ``model.onnx``
        or an ONNX file itself (``mammohybrid export``), whose metadata gives the config and
        the threshold; no TensorFlow is imported. ``overrides`` (``key=value``, as ``--set``
        takes them) change the run's config before anything uses it (the CLI's read limits);
        ``limits`` replace its ``limits``. Raises
        :class:`~mammohybrid.errors.RunNotFinishedError` for a folder that is no finished run.
        """
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS)})")
        if backend == "onnxruntime":
            from mammohybrid.inference.export import load_onnx_export

            run = RunDir.at(run_dir)
            if Path(run_dir).is_dir():
                run.load_config()
                run.require_finished()
                if not run.onnx_model.is_file():
                    raise RunNotFinishedError(
                        f"{run.root}: no {run.onnx_model.name} (--backend onnxruntime predicts "
                        f"with the run's ONNX export): mammohybrid export {run.root} "
                        "--format onnx")
                scorer, exported = load_onnx_export(run.onnx_model, run)
            else:
                scorer, exported = load_onnx_export(run_dir)
            return cls(scorer, _overridden(exported.config, overrides), exported.threshold,
                       strategies, pixel_spacing_mm=pixel_spacing_mm, limits=limits)

        from mammohybrid.training import load_finished_run

        if Path(run_dir).is_file():
            raise MammohybridError(f"{run_dir} is a file, not a run directory (an ONNX export "
                                   "predicts with --backend onnxruntime)")
        run = RunDir.at(run_dir)
        finished = load_finished_run(run, _overridden(run.load_config(), overrides))
        return cls(KerasScorer(finished.model, finished.config.model.tta), finished.config,
                   finished.threshold(), strategies, pixel_spacing_mm=pixel_spacing_mm,
                   limits=limits)

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pre-processing worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def preprocess_pool(self, workers: int) -> PreprocessPool:
        """The pool that decodes and pre-processes inputs in ``workers`` processes (0: in this
        process), started once and kept."""
        wanted = (workers, self.worker_niceness)
        if self._pool is None or (self._pool.workers, self._pool.niceness) != wanted:
            self.close()
            self._pool = PreprocessPool(self.ensemble, workers, self.config.limits,
                                        self.pixel_spacing_mm, self.worker_niceness)
        return self._pool

    @property
    def gradcam(self) -> Any:
        """The :class:`~mammohybrid.inference.gradcam.GradCAM` of the model (built once);
        :class:`~mammohybrid.inference.backends.GradCamUnavailableError` on a backend without
        it (ONNX Runtime)."""
        if self._gradcam is None:
            self._gradcam = self.scorer.gradcam(self.config.model.backbones)
        return self._gradcam

    @property
    def strategies(self) -> list[str]:
        return self.ensemble.names

    # ------------------------------------------------------------------ predicting
    def predict_batch(self, inputs: np.ndarray) -> np.ndarray:
        """Probabilities for model inputs already pre-processed: (N, S, S, 3) float32 in
        [0, 255] (see :func:`mammohybrid.preprocess.to_model_input`)."""
        return self.scorer.probabilities(inputs)

    def model_inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Pre-processed uint8 images (``preprocess.output_size``) -> the model's input batch.

        When the model's side differs from the pre-processing output (the ``scratch-cnn``
        preset trains at 128 px on 229-px images), images are resized exactly as the training
        pipeline resizes them
        (:func:`mammohybrid.training.input_pipeline.read_resized_grey`: bilinear with
        antialiasing, rounded back to 8 bits), so that the model sees what it was trained on.
        """
        grey = np.stack([np.asarray(image, dtype=np.uint8) for image in images])
        if grey.shape[1:3] != (self.input_size, self.input_size):
            import keras  # here, not at the top: worker processes import this module

            resized = keras.ops.image.resize(grey[..., None].astype(np.float32),
                                             (self.input_size, self.input_size),
                                             interpolation="bilinear", antialias=True)
            grey = np.round(np.clip(keras.ops.convert_to_numpy(resized), 0, 255))[..., 0]
        return to_model_input(grey.astype(np.uint8))

    def predict_paths(self, inputs: Iterable[str | os.PathLike[str]],
                      batch_size: int | None = None, workers: int = 0,
                      gradcam_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
        """Predict image files and folders (see :func:`expand_inputs`); one row per image.

        ``workers`` > 0 decode and pre-process in that many processes, overlapped with the
        model; ``gradcam_dir`` writes Grad-CAM overlays there. ``batch_size`` defaults to the
        run's ``train.batch_size``.
        """
        entries = expand_inputs(inputs)
        problems = [PreparedOutcome(index, path, error=problem)
                    for index, (path, problem) in enumerate(entries) if problem]
        tasks = (ImageTask(index, path, display=gradcam_dir is not None)
                 for index, (path, problem) in enumerate(entries) if not problem)
        prepared = self.preprocess_pool(workers).map(
            tasks, max_in_flight=3 * (batch_size or self.config.train.batch_size) + workers)
        return self._predict(itertools.chain(problems, prepared), len(entries), batch_size,
                             gradcam_dir)

    def predict_arrays(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None,
                       batch_size: int | None = None,
                       gradcam_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
        """Predict images given as arrays (2-D, any dtype :func:`mammohybrid.imaging.read_image`
        returns), pre-processed here; ``names`` fill the ``path`` column (default: the index)."""
        names = list(names) if names is not None else [str(i) for i in range(len(images))]
        if len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} images")
        processor = ImageProcessor(self.ensemble, self.config.limits, self.pixel_spacing_mm)
        items = (processor.from_array(i, name, image, display=gradcam_dir is not None)
                 for i, (name, image) in enumerate(zip(names, images, strict=True)))
        return self._predict(items, len(images), batch_size, gradcam_dir)

    def _predict(self, items: Iterable[PreparedOutcome], total: int, batch_size: int | None,
                 gradcam_dir: str | os.PathLike[str] | None) -> pd.DataFrame:
        batch_size = batch_size or self.config.train.batch_size
        if gradcam_dir is not None:
            save_config(self.config, Path(gradcam_dir) / "config.yaml")
        rows: list[dict[str, Any] | None] = [None] * total
        batch: list[PreparedOutcome] = []
        with progress_bar() as bar:
            task = bar.add_task("predicting", total=total)
            for item in items:
                if item.ok:
                    batch.append(item)
                else:
                    rows[item.index] = self._row(item)
                    bar.advance(task)
                if len(batch) == batch_size:
                    self._predict_batch_of(batch, rows, gradcam_dir)
                    bar.advance(task, len(batch))
                    batch = []
            if batch:
                self._predict_batch_of(batch, rows, gradcam_dir)
                bar.advance(task, len(batch))
        return self._frame([row for row in rows if row is not None])

    def _predict_batch_of(self, batch: list[PreparedOutcome], rows: list[dict[str, Any] | None],
                          gradcam_dir: str | os.PathLike[str] | None) -> None:
        """Run the model on one batch (every strategy) and fill its rows."""
        per_strategy: dict[str, np.ndarray] = {}
        explanation = None
        for strategy in self.strategies:
            inputs = self.model_inputs([item.outputs[strategy] for item in batch])
            if gradcam_dir is not None and strategy == self.ensemble.primary:
                # Grad-CAM's forward pass gives the probabilities too: no second forward.
                explanation = self.gradcam(inputs)
                per_strategy[strategy] = explanation.probabilities
            else:
                per_strategy[strategy] = self.predict_batch(inputs)
        probabilities = average_probabilities(per_strategy)
        labels = predict_labels(probabilities, self.threshold.value)
        batch_rows: list[dict[str, Any]] = []
        for k, item in enumerate(batch):
            row = self._row(item, float(probabilities[k]), int(labels[k]))
            if not self.ensemble.is_training_strategy:
                row.update({f"probability_{s}": float(p[k]) for s, p in per_strategy.items()})
            rows[item.index] = row
            batch_rows.append(row)
        if explanation is not None and gradcam_dir is not None:
            from mammohybrid.inference.gradcam import COMBINED, write_overlays

            # The maps explain the label reported (of the ensemble, when there is one).
            heatmaps = explanation.heatmaps(labels)
            for k, item in enumerate(batch):
                assert item.display is not None, "prepared without the display copy"
                written = write_overlays(gradcam_dir, Path(output_name(item.name)).stem,
                                         item.display,
                                         {name: maps[k] for name, maps in heatmaps.items()})
                batch_rows[k]["gradcam"] = str(written[COMBINED])

    def _row(self, item: PreparedOutcome, probability: float | None = None,
             label: int | None = None) -> dict[str, Any]:
        return {"path": item.name, "probability": probability, "label": label,
                "prediction": CLASS_NAMES[label] if label is not None else "",
                "threshold": self.threshold.value, "kept_fraction": item.kept_fraction,
                "roi_empty": item.roi_empty, "warnings": "; ".join(item.warnings),
                "error": item.error}

    def _frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        per_strategy = ([] if self.ensemble.is_training_strategy
                        else [f"probability_{s}" for s in self.strategies])
        gradcam = ["gradcam"] if any("gradcam" in row for row in rows) else []
        frame = pd.DataFrame(rows, columns=[*COLUMNS, *per_strategy, *gradcam])
        # Explicit dtypes: error rows hold None, which would otherwise make columns "object".
        for column in ("probability", "threshold", "kept_fraction", *per_strategy):
            frame[column] = frame[column].astype(float)
        frame["label"] = frame["label"].astype("Int64")
        frame["roi_empty"] = frame["roi_empty"].astype("boolean")
        for column in ("path", "prediction", "warnings", "error", *gradcam):
            frame[column] = frame[column].fillna("").astype(str)
        return frame


def _overridden(config: Config, overrides: Sequence[str]) -> Config:
    return with_overrides(config, list(overrides)) if overrides else config
