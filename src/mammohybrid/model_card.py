"""The model card of a run (``model_card.md``, after Mitchell et al., "Model Cards for Model
Reporting", 2019): what the model is, what it was trained and measured on, what it is for and
what it is not for, in one page a reader can take with the model.

Every training writes one (:func:`write_model_card`, before ``DONE``); ``evaluate`` writes it
again with the evaluation's figures and intervals, and ``serve`` shows it. Everything is read
from the run directory - ``config.yaml``, ``threshold.json``, ``run.json``, whose ``data``
entry (:func:`data_summary`) training records from the manifest it read - so the card can be
written again at any time without the data. The evaluation section is given by the caller
(:mod:`mammohybrid.evaluation.run_evaluations` reads the run's evaluations); without one the card
says how to get it. NumPy/pandas only, like :mod:`mammohybrid.run_dir`: reading or writing a
card imports no TensorFlow (``serve`` on an ONNX export shows it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mammohybrid import __version__
from mammohybrid.config import Config, config_to_dict
from mammohybrid.decision import ThresholdChoice
from mammohybrid.fileio import atomic_write_text
from mammohybrid.run_dir import RunDir

# Columns that name the kind of lesion a row shows (CBIS-DDSM's abnormality type, MIAS' class).
LESION_TYPE_COLUMNS = ("abnormality_type", "mias_class")
# What `mammohybrid synth` writes at the root of a synthetic dataset.
SYNTH_MARKER = "synth.json"
SYNTH_GENERATOR = "mammohybrid synth"


# --------------------------------------------------------------------------- the data
def data_summary(splits: Mapping[str, pd.DataFrame],
                 manifest: str | os.PathLike[str] | None) -> dict[str, Any]:
    """What ``run.json`` records of the training data (JSON-ready): the manifest, images,
    patients and classes per split, the sources (``dataset`` column), the lesion types seen,
    and the marker of a synthetic dataset when the images come from one."""
    counts = {}
    for name, frame in splits.items():
        labels = frame["label"].astype(int)
        counts[name] = {"images": len(frame), "patients": int(frame["patient_id"].nunique()),
                        "benign": int((labels == 0).sum()), "malignant": int((labels == 1).sum())}
    everything = pd.concat(list(splits.values()), ignore_index=True)
    return {
        "manifest": str(manifest) if manifest is not None else None,
        "splits": counts,
        "patients": int(everything["patient_id"].nunique()) if len(everything) else 0,
        "datasets": _value_counts(everything, "dataset"),
        "lesion_types": next((_value_counts(everything, column) for column in LESION_TYPE_COLUMNS
                              if column in everything.columns), {}),
        "synthetic_marker": _synthetic_marker(everything),
    }


def _value_counts(frame: pd.DataFrame, column: str) -> dict[str, int]:
    if column not in frame.columns:
        return {}
    return {str(k): int(v) for k, v in frame[column].dropna().astype(str).value_counts()
            .sort_index().items()}


def _synthetic_marker(frame: pd.DataFrame) -> str | None:
    """The ``synth.json`` of ``mammohybrid synth`` above the images' sources (the original
    files of a pre-processed manifest), or None: then nothing says the images are synthetic."""
    column = "source_path" if "source_path" in frame.columns else "image_path"
    paths = [os.path.abspath(p) for p in frame[column].dropna().astype(str) if p]
    if not paths:
        return None
    try:
        folder = Path(os.path.commonpath(paths))
    except ValueError:  # paths on different drives
        return None
    for candidate in [folder, *folder.parents]:
        marker = candidate / SYNTH_MARKER
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("generator") == SYNTH_GENERATOR:
                return str(marker)
        except (OSError, ValueError, AttributeError):
            continue
    return None


# --------------------------------------------------------------------------- the card
def render_model_card(run: RunDir, evaluation: str = "") -> str:
    """The card of ``run`` as Markdown; ``evaluation``: the evaluation section's body (empty:
    not evaluated yet)."""
    config = run.load_config()
    info = json.loads(run.info.read_text(encoding="utf-8")) if run.info.is_file() else {}
    threshold = run.load_threshold()
    data = info.get("data") or {}
    sections = [
        f"# Model card: {run.root.resolve().name}\n\n"
        f"Written by mammohybrid {__version__} on "
        f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} from the run directory "
        f"`{run.root.resolve()}` (`config.yaml`, `threshold.json`, `run.json`).",
        _intended_use(),
        _data(data, config),
        _preprocessing(config),
        _model(config),
        _choices(config, info, threshold),
        "## Evaluation\n\n" + (evaluation.strip() or
                               "Not evaluated yet: `mammohybrid evaluate "
                               f"{run.root}` measures it on the test split (patient-bootstrap "
                               "intervals) and writes this card again with the figures."),
        _limits(data, config),
        _environment(info, config),
    ]
    return "\n\n".join(section.strip() for section in sections) + "\n"


def write_model_card(run: RunDir, evaluation: str = "") -> Path:
    """Write :func:`render_model_card` to ``run.model_card`` (atomically)."""
    atomic_write_text(run.model_card, render_model_card(run, evaluation))
    return run.model_card


def _intended_use() -> str:
    return (
        "## Intended use\n\n"
        "- **For research** on breast-mass classification in mammography: reproducing and "
        "testing the hybrid transfer-learning approach of Boudouh & Bouakkaz (2023).\n"
        "- **Input: a region-of-interest crop** around one lesion already found (as in the "
        "training data), pre-processed as below; not a whole mammogram, not a screening "
        "decision on a breast or a patient.\n"
        "- **Output: a probability of malignancy** and a label at the stored threshold.\n"
        "- **Not a diagnosis.** Not a medical device, not validated clinically: do not use it "
        "to decide the care of a patient.")


def _data(data: Mapping[str, Any], config: Config) -> str:
    if not data:
        return ("## Data\n\n"
                f"Manifest `{config.data.manifest}`; its counts were not recorded (a run trained "
                "before model cards): see the evaluation report's dataset section.")
    rows = ["| split | images | patients | benign | malignant |", "|---|---:|---:|---:|---:|"]
    for name, split in data.get("splits", {}).items():
        rows.append(f"| {name} | {split['images']} | {split['patients']} | "
                    f"{split['benign']} | {split['malignant']} |")
    marker = data.get("synthetic_marker")
    origin = (f"**synthetic** (rendered lesions, written by `mammohybrid synth`: `{marker}`)"
              if marker else "not marked synthetic (no `synth.json` of `mammohybrid synth` "
                             "above the images): real images, unless another generator made "
                             "them")
    return (
        "## Data\n\n"
        "What the model was trained and validated on: the train and val splits of the "
        "manifest (its test split is held out for the evaluation).\n\n"
        f"- Manifest: `{data.get('manifest')}`\n"
        f"- Source: {_counts(data.get('datasets')) or 'not recorded (no dataset column)'}\n"
        f"- Synthetic or real: {origin}\n"
        f"- Patients: {data.get('patients')}, each in one split only (checked when the "
        "manifest is read)\n"
        f"- Classes: benign (0) and malignant (1); CBIS-DDSM's BENIGN_WITHOUT_CALLBACK counted "
        f"as `{config.data.benign_without_callback}`\n"
        f"- Lesion types: {_counts(data.get('lesion_types')) or 'not recorded in the manifest'}"
        "\n\n" + "\n".join(rows))


def _preprocessing(config: Config) -> str:
    section = json.dumps(config_to_dict(config)["preprocess"], indent=2)
    return ("## Pre-processing\n\n"
            f"Strategy `{config.preprocess.strategy}` to {config.preprocess.output_size} x "
            f"{config.preprocess.output_size} px, 8-bit grey (`mammohybrid predict` and an "
            "export apply the same chain). The `preprocess` section of `config.yaml`:\n\n"
            f"```json\n{section}\n```")


def _model(config: Config) -> str:
    model = config.model
    head = ("a logistic regression fitted by scikit-learn on the frozen backbones' pooled "
            "features, folded into the Dense layer" if config.train.head == "logistic"
            else "Dense(1, sigmoid) trained by Keras")
    return (
        "## Model and weights\n\n"
        f"- Backbones: {' + '.join(model.backbones)} (hybrid: concatenated feature maps, global "
        f"{model.pooling} pooling, dropout, {head})\n"
        f"- Input: {model.input_size} x {model.input_size} x 3, values 0-255 (the grey image "
        "in three channels; each backbone scales its input inside the model)\n"
        f"- Initial weights: {model.weights or 'random'}; trainable layers: {model.trainable}\n"
        f"- Training augmentation: {model.augment}; test-time augmentation: {model.tta}")


def _choices(config: Config, info: Mapping[str, Any], threshold: ThresholdChoice | None) -> str:
    if config.train.head == "logistic":
        epoch = ("No epochs: the head is fitted once on the train and validation rows; "
                 f"{info.get('logistic_selection', 'its strength C as train.logistic_c says')}.")
    else:
        auc = info.get("best_val_auc")
        epoch = (f"Trained {info.get('epochs', '?')} of {config.train.epochs} epochs; the kept "
                 f"model (`model.keras`) is epoch {info.get('best_epoch', '?')}, the one with "
                 "the highest validation AUC (exact, on the whole validation split after every "
                 "epoch; ties to the lower validation loss)"
                 + (f": {auc:.3f}." if isinstance(auc, (int, float)) else "."))
    if threshold is None:
        chosen = f"fixed at {config.evaluate.fixed_threshold:g} (no `threshold.json`)"
    else:
        chosen = (f"{threshold.value:.4g}, method `{threshold.method}` on split "
                  f"`{threshold.split}`" + (f" ({threshold.detail})" if threshold.detail else ""))
    return ("## How the epoch and the threshold were chosen\n\n"
            f"- Epoch: {epoch}\n"
            f"- Threshold: {chosen}. A probability at or above it is labelled malignant. It is "
            "never chosen on the test split.")


def _limits(data: Mapping[str, Any], config: Config) -> str:
    limits = []
    if data.get("synthetic_marker"):
        limits.append("Trained on synthetic images: its figures say how the method behaves, "
                      "not how well it reads real mammograms.")
    lesions = data.get("lesion_types")
    if lesions:
        limits.append(f"Lesion types seen in training: {', '.join(lesions)}. Other findings "
                      "(calcifications, distortions, asymmetries, normal tissue, whichever are "
                      "not listed) were never shown to it: its output on them means nothing.")
    else:
        limits.append("The manifest does not say which lesion types the crops show: check "
                      "that new crops are of the kinds it was trained on.")
    patients = data.get("patients")
    if isinstance(patients, int):
        limits.append(f"{patients} patients in training and validation, from the source(s) "
                      "above: other sites' scanners and populations may not behave alike, and "
                      "the evaluation's intervals say how precisely it was measured here.")
    limits.append("The threshold was chosen on this data's validation split; another site, "
                  "scanner or pre-processing may need its own.")
    limits.append(f"A crop is expected as the training crops were made (the "
                  f"{config.preprocess.strategy} chain above, around one lesion); whole "
                  "mammograms or crops framed otherwise are outside what it was trained on.")
    return "## Known limits\n\n" + "\n".join(f"- {limit}" for limit in limits)


def _environment(info: Mapping[str, Any], config: Config) -> str:
    runtime = info.get("runtime") or {}
    environment = info.get("environment") or {}
    items = [("mammohybrid", info.get("package_version")), ("Python", environment.get("python")),
             ("platform", environment.get("platform")),
             ("TensorFlow", runtime.get("tensorflow")), ("Keras", runtime.get("keras")),
             ("devices", ", ".join(runtime.get("devices") or []) or None),
             ("mixed precision", runtime.get("mixed_precision")),
             ("deterministic ops", runtime.get("deterministic")), ("seed", config.seed),
             ("finished", info.get("finished"))]
    return "## Environment (training)\n\n" + "\n".join(
        f"- {name}: {value}" for name, value in items if value is not None)


def _counts(counts: Mapping[str, int] | None) -> str:
    return ", ".join(f"{name} ({count})" for name, count in (counts or {}).items())
