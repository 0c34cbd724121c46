"""``mammohybrid export``: a finished run's inference graph as ONNX or a TensorFlow SavedModel,
with what prediction needs besides the graph.

The graph is the run's model without its augmentation block
(:func:`mammohybrid.models.hybrid.inference_graph`: traced for export, Keras' random
layers would augment every image, with random ops ONNX has no kernel for), with the input
scaling of every
backbone inside and, when ``model.tta`` is ``dihedral``, the averaging over the eight views
(:func:`mammohybrid.models.tta.with_test_time_augmentation`). Input: (N, S, S, 3) float32 in
[0, 255], the pre-processed 8-bit grey image replicated to three channels; output: (N, 1), the
probability of malignancy.

Beside the graph (:class:`ExportedRun`): the run's configuration (its ``preprocess`` section
is what an image must go through first), the decision threshold, the input size, the
test-time augmentation inside the graph, the SHA-256 of the ``model.keras`` it came from, the
run's ``run.json`` and model card. ONNX keeps them in the model's ``metadata_props``
(``mammohybrid.<field>``; text as it is, other values as JSON); a SavedModel in
``assets.extra/mammohybrid.json`` (and ``assets.extra/model_card.md``), the folder TensorFlow
leaves to its users.

Keras writes the file (``model.export``; ONNX through tf2onnx), and the export is checked
before it is kept: the written model is loaded back (ONNX Runtime, or TensorFlow for a
SavedModel) and must give the Keras model's probabilities to :data:`PARITY_TOLERANCE` on
:data:`PROBE_IMAGES` probe images; a graph that does not load or does not agree is refused and
nothing is written. The Keras side imports lazily: reading an export
(:func:`load_onnx_export`) imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mammohybrid import __version__
from mammohybrid.config import Config, config_from_dict, config_to_dict, with_overrides
from mammohybrid.decision import ThresholdChoice, select_threshold
from mammohybrid.errors import ExportError, MammohybridError
from mammohybrid.fileio import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    refuse_overwriting_inputs,
)
from mammohybrid.inference.backends import OnnxScorer
from mammohybrid.run_dir import RunDir, parse_threshold
from mammohybrid.tensorflow_env import LOG_LEVEL_VARIABLE

ExportFormat = Literal["onnx", "savedmodel"]
FORMATS: tuple[ExportFormat, ...] = ("onnx", "savedmodel")
# Python modules the exporter needs per format, as imported, and what installs them.
EXPORTER_MODULES = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "savedmodel": ("tensorflow",)}
EXTRA_ADVICE = {"onnx": "pip install 'mammohybrid[onnx]'", "savedmodel": "pip install tensorflow"}
# The largest |probability difference| an export may show against the Keras model on the
# probe images: the parity the product promises between the two backends.
PARITY_TOLERANCE = 1e-5
PROBE_IMAGES = 4
METADATA_PREFIX = "mammohybrid."
# The metadata layout; a reader refuses a version it does not know.
METADATA_VERSION = 1
SAVED_MODEL_METADATA = Path("assets.extra") / "mammohybrid.json"
SAVED_MODEL_CARD = Path("assets.extra") / "model_card.md"
INPUT_DESCRIPTION = ("float32 (N, S, S, 3) in [0, 255]: the image after the configuration's "
                     "preprocess chain (8-bit grey, S x S), replicated to 3 channels")
OUTPUT_DESCRIPTION = "float32 (N, 1): probability of malignancy; malignant if >= threshold"


@dataclass(frozen=True)
class ExportedRun:
    """What an exported model carries besides its graph."""

    config: Config  # model.tta says what the graph holds
    threshold: ThresholdChoice
    input_size: int
    source_model_sha256: str
    run_info: dict[str, Any] = field(default_factory=dict)
    model_card: str = ""
    parity_max_abs_diff: float | None = None
    package_version: str = __version__

    @property
    def tta(self) -> str:
        return self.config.model.tta

    def fields(self) -> dict[str, Any]:
        """The fields as JSON values (SavedModel's ``mammohybrid.json``)."""
        return {"metadata_version": METADATA_VERSION, "package_version": self.package_version,
                "config": config_to_dict(self.config), "threshold": self.threshold.to_dict(),
                "input_size": self.input_size, "tta": self.tta, "input": INPUT_DESCRIPTION,
                "output": OUTPUT_DESCRIPTION, "source_model_sha256": self.source_model_sha256,
                "parity_max_abs_diff": self.parity_max_abs_diff, "run_info": self.run_info,
                "model_card": self.model_card}

    def metadata(self) -> dict[str, str]:
        """The fields as ONNX ``metadata_props``: ``mammohybrid.<field>``, text as it is and
        everything else as JSON."""
        return {METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
                for key, value in self.fields().items()}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], where: str) -> ExportedRun:
        """Read :meth:`fields` back; a one-line :class:`ExportError` for anything missing or
        invalid."""
        advice = "; export the run again with mammohybrid export"
        version = fields.get("metadata_version")
        if version != METADATA_VERSION:
            raise ExportError(f"{where}: no mammohybrid export metadata of version "
                              f"{METADATA_VERSION} (found {version!r:.40}){advice}")
        try:
            config = config_from_dict(dict(fields["config"]), f"{where} (config)")
            threshold = parse_threshold(json.dumps(fields["threshold"]),
                                        f"{where} (threshold)", advice)
            return cls(config=config, threshold=threshold, input_size=int(fields["input_size"]),
                       source_model_sha256=str(fields["source_model_sha256"]),
                       run_info=dict(fields.get("run_info") or {}),
                       model_card=str(fields.get("model_card") or ""),
                       parity_max_abs_diff=fields.get("parity_max_abs_diff"),
                       package_version=str(fields.get("package_version", "?")))
        except MammohybridError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise ExportError(f"{where}: invalid export metadata ({type(error).__name__}: "
                              f"{error}){advice}") from None

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str], where: str) -> ExportedRun:
        """Read :meth:`metadata` back (one-line errors, as :meth:`from_fields`)."""
        fields: dict[str, Any] = {}
        for key, value in metadata.items():
            if not key.startswith(METADATA_PREFIX):
                continue
            name = key[len(METADATA_PREFIX):]
            try:
                fields[name] = value if name in _TEXT_FIELDS else json.loads(value)
            except ValueError:
                raise ExportError(f"{where}: metadata {key} is not JSON; export the run again "
                                  "with mammohybrid export") from None
        return cls.from_fields(fields, where)


_TEXT_FIELDS = {"package_version", "tta", "input", "output", "source_model_sha256",
                "model_card"}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote."""

    path: Path
    format: ExportFormat
    exported: ExportedRun
    seconds: float
    bytes: int


# --------------------------------------------------------------------------- reading
def load_onnx_export(path: str | os.PathLike[str],
                     run: RunDir | None = None) -> tuple[OnnxScorer, ExportedRun]:
    """An ONNX export on ONNX Runtime and what it carries. With ``run`` (the folder the model
    was found in), an export of another ``model.keras`` than the run's (trained again since) is
    refused. Imports no TensorFlow."""
    scorer = OnnxScorer(path)
    exported = ExportedRun.from_metadata(scorer.metadata, str(path))
    if scorer.input_size != exported.input_size \
            or exported.input_size != exported.config.preprocess.output_size:
        raise ExportError(f"{path}: the graph takes {scorer.input_size}-px images, its metadata "
                          f"says {exported.input_size} and the pre-processing gives "
                          f"{exported.config.preprocess.output_size}; export the run again")
    if run is not None and run.model.is_file() \
            and file_sha256(run.model) != exported.source_model_sha256:
        raise ExportError(f"{path} was exported from another model.keras than {run.model} (the "
                          f"run was trained again since?); export it again: mammohybrid export "
                          f"{run.root} --format onnx")
    return scorer, exported


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- writing
def default_output(run: RunDir, fmt: ExportFormat) -> Path:
    """Where :func:`export_run` writes without ``out``: ``model.onnx`` or ``saved_model/`` in
    the run directory (where ``predict --backend onnxruntime RUN_DIR`` looks)."""
    return run.onnx_model if fmt == "onnx" else run.saved_model


def check_exportable(run: RunDir, config: Config, fmt: ExportFormat) -> None:
    """Refuse, in one line and before any work, what cannot be exported: an unknown format, a
    missing exporter, a Keras backend other than TensorFlow, a model whose input is resized
    from the pre-processing output (training's antialiased resize has no ONNX operator)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    missing = [name for name in EXPORTER_MODULES[fmt] if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"export --format {fmt} needs {', '.join(missing)}: "
                          f"{EXTRA_ADVICE[fmt]}")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow":
        raise ExportError(f"export runs on Keras' TensorFlow backend (KERAS_BACKEND is "
                          f"'{backend}'): unset KERAS_BACKEND")
    if config.model.input_size != config.preprocess.output_size:
        raise ExportError(
            f"{run.root}: the model takes {config.model.input_size}-px images resized from the "
            f"{config.preprocess.output_size}-px pre-processing output with antialiasing, "
            "which no ONNX operator reproduces; train with model.input_size = "
            "preprocess.output_size to export")


def export_run(run_dir: str | os.PathLike[str], fmt: ExportFormat,
               out: str | os.PathLike[str] | None = None, tta: str | None = None,
               quiet: bool = True) -> ExportResult:
    """Export the finished run ``run_dir`` as ``fmt`` to ``out`` (default
    :func:`default_output`), checked against the Keras model before it is kept. ``tta``
    (``none``/``dihedral``) overrides the run's ``model.tta`` inside the graph (the stored
    configuration says which); ``quiet`` keeps the converters' logging off the terminal."""
    run = RunDir.at(run_dir)
    config = run.load_config()
    run.require_finished()
    check_exportable(run, config, fmt)
    if tta is not None and tta != config.model.tta:
        config = with_overrides(config, [f"model.tta={tta}"])
    target = Path(out) if out is not None else default_output(run, fmt)
    refuse_overwriting_inputs([target], [run.config, run.model, run.threshold, run.info,
                                         run.model_card])
    _check_target(target, fmt)
    started = time.perf_counter()
    threshold = run.load_threshold() or select_threshold(np.empty(0), np.empty(0),
                                                         config.evaluate)
    graph, reference = _graph_to_export(run, config)
    exported = ExportedRun(
        config=config, threshold=threshold, input_size=config.model.input_size,
        source_model_sha256=file_sha256(run.model),
        run_info=json.loads(run.info.read_text(encoding="utf-8")) if run.info.is_file() else {},
        model_card=(run.model_card.read_text(encoding="utf-8")
                    if run.model_card.is_file() else ""))
    with _converter_output(quiet):
        if fmt == "onnx":
            exported = _write_onnx(graph, target, exported, reference)
        else:
            exported = _write_saved_model(graph, target, exported, reference)
    size = (target.stat().st_size if target.is_file()
            else sum(p.stat().st_size for p in target.rglob("*") if p.is_file()))
    return ExportResult(target, fmt, exported, time.perf_counter() - started, size)


def probe_inputs(size: int, count: int = PROBE_IMAGES) -> np.ndarray:
    """Model inputs the export is checked on: grey images of smooth blobs and noise, the same
    every time."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size
    images = []
    for _ in range(count):
        centre, radius = rng.uniform(0.3, 0.7, 2), rng.uniform(0.1, 0.3)
        blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * radius ** 2))
        grey = np.clip(rng.uniform(30, 90) + 150 * blob + rng.normal(0, 12, (size, size)),
                       0, 255)
        images.append(np.round(grey))
    return np.repeat(np.stack(images)[..., None], 3, axis=-1).astype(np.float32)


def _graph_to_export(run: RunDir, config: Config) -> tuple[Any, np.ndarray]:
    """The graph to export, and the probabilities the run's Keras model (as ``predict`` runs
    it) gives on the probe images."""
    from mammohybrid.inference.backends import KerasScorer
    from mammohybrid.models import inference_graph, load_model, with_test_time_augmentation

    model = load_model(run.model)
    probe = probe_inputs(config.model.input_size)
    reference = KerasScorer(model, config.model.tta).probabilities(probe)
    graph = with_test_time_augmentation(inference_graph(model), config.model.tta)
    graph.predict_on_batch(probe)  # Keras exports only a model that has been called
    return graph, reference


def _check_target(target: Path, fmt: ExportFormat) -> None:
    """A SavedModel goes into a folder that is absent, empty or an earlier SavedModel (which
    it replaces); an ONNX file onto a path that is no folder."""
    if fmt == "onnx" and target.is_dir():
        raise ExportError(f"{target} is a folder: give the ONNX file's path with --out")
    if fmt == "savedmodel" and target.exists():
        if not target.is_dir():
            raise ExportError(f"{target} exists and is no folder: a SavedModel is a folder")
        if any(target.iterdir()) and not (target / "saved_model.pb").is_file():
            raise ExportError(f"{target} is a folder that holds something else than a "
                              "SavedModel: choose another --out")


def _check_parity(name: str, probabilities: np.ndarray, reference: np.ndarray) -> float:
    difference = float(np.max(np.abs(np.asarray(probabilities).reshape(-1) - reference)))
    if not difference <= PARITY_TOLERANCE:
        raise ExportError(f"the {name} export gives other probabilities than the Keras model "
                          f"(max |difference| {difference:.3g} on {len(reference)} probe images, "
                          f"more than {PARITY_TOLERANCE:g}): not written")
    return difference


def _write_onnx(graph: Any, target: Path, exported: ExportedRun,
                reference: np.ndarray) -> ExportedRun:
    import onnx

    with atomic_path(target) as tmp:
        try:
            graph.export(str(tmp), format="onnx", verbose=False)
        except Exception as error:  # the converter raises many kinds
            raise ExportError(f"the model cannot be converted to ONNX ({type(error).__name__}: "
                              f"{str(error).strip()[:300]})") from None
        try:
            converted = OnnxScorer(tmp)
        except MammohybridError as error:  # an operator without an ONNX Runtime kernel
            raise ExportError(f"the converted model does not run on ONNX Runtime: {error}") \
                from None
        difference = _check_parity("ONNX", converted.probabilities(probe_inputs(
            exported.input_size)), reference)
        exported = _with_parity(exported, difference)
        proto = onnx.load(str(tmp))
        for key, value in exported.metadata().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
        load_onnx_export(tmp)  # the file as predict will read it
    return exported


def _write_saved_model(graph: Any, target: Path, exported: ExportedRun,
                       reference: np.ndarray) -> ExportedRun:
    import tensorflow as tf

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        graph.export(str(tmp), format="tf_saved_model", verbose=False)
        loaded = tf.saved_model.load(str(tmp))
        output = loaded.serve(tf.constant(probe_inputs(exported.input_size)))
        exported = _with_parity(exported, _check_parity("SavedModel", np.asarray(output),
                                                        reference))
        atomic_write_json(tmp / SAVED_MODEL_METADATA, exported.fields())
        atomic_write_text(tmp / SAVED_MODEL_CARD, exported.model_card)
        _replace_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return exported


def _with_parity(exported: ExportedRun, difference: float) -> ExportedRun:
    return replace(exported, parity_max_abs_diff=difference)


def _replace_folder(source: Path, target: Path) -> None:
    """Put the finished folder ``source`` at ``target``, an earlier one there removed: two
    renames, so ``target`` is never a half-written export."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _converter_output(quiet: bool) -> Iterator[None]:
    """tf2onnx sets ``TF_CPP_MIN_LOG_LEVEL`` for the whole process when it is imported (the
    processes started afterwards would inherit it): restored after the conversion. It also
    logs every conversion step at INFO and warns about NumPy 2: kept off the terminal when
    ``quiet`` (the command's default; ``--debug`` shows it)."""
    saved = os.environ.get(LOG_LEVEL_VARIABLE)
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    try:
        with warnings.catch_warnings():
            if quiet:
                logger.setLevel(logging.ERROR)
                warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if saved is None:
            os.environ.pop(LOG_LEVEL_VARIABLE, None)
        else:
            os.environ[LOG_LEVEL_VARIABLE] = saved
