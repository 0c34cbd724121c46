"""The sections outside pre-processing (data, model, training, evaluation, input limits) and
:class:`Config`, the whole configuration that holds them all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mammohybrid.config.preprocess import PreprocessConfig
from mammohybrid.config.section import Section, YamlWord


# --------------------------------------------------------------------------- data
class DataConfig(Section):
    """Where the data is and how it is split.

    ``manifest`` is the (pre-processed) manifest training and evaluation read. Validation is
    carved out of the training patients (``val_fraction``); datasets without an official test
    split also get ``test_fraction`` of patients as test. Splits are stratified and grouped by
    patient.
    """

    manifest: Path | None = Field(None, strict=False)  # YAML gives paths as text
    benign_without_callback: Literal["benign", "malignant", "exclude"] = "benign"
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    n_folds: int = Field(5, ge=2, le=20)
    split_seed: int = 42


# --------------------------------------------------------------------------- model
_TRAINABLE = re.compile(r"^(all|none|last:[1-9][0-9]*)$")


class ModelConfig(Section):
    """The hybrid model: backbones in parallel on one input, dropout per branch, concatenation,
    global pooling, dropout, Dense(1, sigmoid)."""

    backbones: list[str] = Field(default_factory=lambda: ["resnet50v2", "efficientnetb7"],
                                 min_length=1)
    pooling: Literal["avg", "max"] = "avg"
    branch_dropout: float = Field(0.2, ge=0, lt=1)
    head_dropout: float = Field(0.2, ge=0, lt=1)
    input_size: int = Field(229, ge=32, le=1024)
    weights: str | None = Field(
        "imagenet", description="'imagenet', None/'none' (random), or a path to a weights file")
    trainable: str = Field("all", description="'all', 'none' or 'last:N' (last N layers of "
                                              "each backbone)")
    augment: Literal["paper", "strong", "none"] = Field(
        "paper", description="training augmentation: 'paper' (Table 2), 'strong' (any rotation, "
                             "both flips, wider zoom and shifts: fine-tuning on few crops), "
                             "'none'")
    tta: Literal["none", "dihedral"] = Field(
        "none", description="test-time augmentation: 'dihedral' averages the pooled features "
                            "over the 8 rotations/flips of each image at prediction")

    @field_validator("weights", mode="before")
    @classmethod
    def _none_string(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"none", "null", ""}:
            return None
        return value

    @field_validator("trainable")
    @classmethod
    def _trainable(cls, value: str) -> str:
        if not _TRAINABLE.match(value):
            raise ValueError("must be 'all', 'none' or 'last:N' with N >= 1")
        return value


# --------------------------------------------------------------------------- training
class TrainConfig(Section):
    """Training as the paper's Table 3: SGD with Nesterov momentum, binary cross-entropy on the
    sigmoid output (``from_logits=False``: the paper's 'from logits: True' contradicts its own
    sigmoid layer)."""

    epochs: int = Field(100, ge=1, le=10000)
    batch_size: int = Field(8, ge=1, le=4096)
    learning_rate: float = Field(1e-4, gt=0, le=10)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="constant (the paper) or cosine decay to 1 % of learning_rate "
                                "over all epochs (steadier from-scratch training)")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    class_weight: Literal["none", "balanced"] = "none"
    cache: bool = Field(True, description="cache decoded images in memory (tf.data)")
    feature_cache: Annotated[Literal["auto", "off"], YamlWord] = Field(
        "auto", description="frozen backbones: train the head on cached features")
    augment_copies: int = Field(
        4, ge=1, le=100,
        description="augmented copies per image in the frozen-backbone feature cache")
    head: Literal["keras", "logistic"] = Field(
        "keras", description="'keras': the head trained by Keras with the optimiser above; "
                             "'logistic': an L2 logistic regression (scikit-learn) fitted on the "
                             "frozen backbones' pooled features (needs model.trainable: none)")
    logistic_c: list[float] = Field(
        default_factory=lambda: [0.001, 0.01, 0.1, 1.0, 10.0], min_length=1,
        description="inverse regularisation strengths tried by the inner cross-validation of "
                    "the logistic head")
    inner_folds: int = Field(
        5, ge=2, le=20, description="patient-grouped folds of the logistic head's inner "
                                    "cross-validation (fewer when a class has fewer patients)")
    distribute: bool = False
    mixed_precision: Annotated[Literal["auto", "on", "off"], YamlWord] = "auto"
    deterministic: bool = Field(
        True, description="deterministic TensorFlow ops: same seed, same weights; exact "
                          "--resume (switch off for speed on a GPU)")

    @field_validator("logistic_c")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(not value > 0 for value in values):
            raise ValueError("every value must be > 0")
        return values


# --------------------------------------------------------------------------- evaluation
class EvaluateConfig(Section):
    """How the decision threshold is chosen (on validation only, never on test) and how
    confidence intervals are computed."""

    threshold: Literal["fixed", "youden", "sensitivity"] = "fixed"
    fixed_threshold: float = Field(0.5, gt=0, lt=1)
    target_sensitivity: float = Field(0.9, gt=0, le=1)
    bootstrap_samples: int = Field(2000, ge=0, le=100000)
    ci_level: float = Field(0.95, gt=0, lt=1)


# --------------------------------------------------------------------------- input limits
class LimitsConfig(Section):
    """Budgets every image read checks before decoding (see README, "Robustness"): the pixel
    count its header declares (DICOM: Rows x Columns x frames) and its file size. The defaults
    admit every real full-field mammogram (tens of megapixels) and refuse decompression bombs."""

    max_image_pixels: int = Field(100_000_000, ge=1, le=2_000_000_000)
    max_file_mb: float = Field(1024.0, gt=0, le=65536)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


class Config(Section):
    """The whole configuration."""

    seed: int = 42
    data: DataConfig = DataConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    limits: LimitsConfig = LimitsConfig()

    @model_validator(mode="after")
    def _logistic_head_needs_frozen_backbones(self) -> Config:
        if self.train.head == "logistic" and self.model.trainable != "none":
            raise ValueError("train.head: logistic fits the head on frozen features; set "
                             "model.trainable: none")
        return self
