"""The one configuration object that flows through data -> pre-processing -> model -> training ->
evaluation.

A config is built from defaults, then a YAML file (a path or the name of a preset shipped in
``mammohybrid/presets``), then ``key=value`` overrides from the command line, and is validated
at every step: unknown keys and out-of-range values raise :class:`ConfigError` naming the key.
Every command saves the resolved config beside its outputs (``save_config``) so a result can
be traced to its exact settings.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mammohybrid.errors import ConfigError
from mammohybrid.fileio import atomic_write_text


def _odd(value: int | None) -> int | None:
    if value is not None and value % 2 == 0:
        raise ValueError("must be odd")
    return value


# Window and kernel sizes: OpenCV (and MATLAB) centre them on a pixel.
OddInt = Annotated[int, AfterValidator(_odd)]


def _yaml_boolean_as_word(value: Any) -> Any:
    # YAML 1.1 reads a bare on/off/yes/no as a boolean: `mode: off` arrives as False.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# Put before the Literal of every choice that offers ``off`` or ``on``, so that the YAML boolean
# turns back into the word that was written.
YamlWord = BeforeValidator(_yaml_boolean_as_word)


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, assignments are validated too, and types
    are strict wherever a coercion would change meaning (``true`` is no 1, ``0`` no False,
    ``0.9999999999999999999`` no integer, NaN and infinity no number)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True,
                              allow_inf_nan=False)


# --------------------------------------------------------------------------- pre-processing
class IntensityConfig(_Section):
    """How a 16-bit or float image is brought to the 8-bit scale on which the ROI threshold
    (193 in the paper) is defined.

    - ``full_range`` (default): value * 255 / 65535 for 16-bit input (MATLAB ``im2uint8``), value *
      255 for float input in [0, 1]. Absolute grey levels keep their meaning across images, which a
      fixed threshold needs. DICOM pixel data stored in fewer bits (``BitsStored`` < 16) is put on
      the full 16-bit scale when it is read (see :func:`mammohybrid.imaging.read_image`).
    - ``minmax``: per-image stretch of [min, max] to [0, 255] (MATLAB ``mat2gray``).
    - ``percentile``: per-image stretch of [low_percentile, high_percentile] to [0, 255], clipped.
    8-bit input is never rescaled.
    """

    mode: Literal["full_range", "minmax", "percentile"] = "full_range"
    low_percentile: float = Field(0.5, ge=0, lt=50)
    high_percentile: float = Field(99.5, gt=50, le=100)


class NLMConfig(_Section):
    """Non-Local-Means denoising (OpenCV ``fastNlMeansDenoising``).

    ``h`` is the filter strength in 8-bit grey levels; ``None`` estimates it per image as the
    noise standard deviation, which is what MATLAB ``imnlmfilt`` (the paper's tool) does by
    default. Window sizes default to MATLAB's (5x5 comparison, 21x21 search).
    """

    h: float | None = Field(None, gt=0, le=100)
    h_min: float = Field(1.0, gt=0, le=100, description="lower bound of the estimated h")
    template_window: OddInt = Field(5, ge=3, le=21)
    search_window: OddInt = Field(21, ge=3, le=51)


class ROIConfig(_Section):
    """ROI extraction by grey-level threshold: output = image * (image > threshold).

    ``fixed`` is the paper's (level 193 on the 8-bit scale). ``percentile`` keeps the brightest
    (100 - percentile) % of each image; ``otsu`` uses Otsu's threshold per image; ``off`` keeps
    everything. When the mask keeps no pixel, ``empty_policy`` decides: ``keep`` the paper's black
    image, ``fallback`` to the unmasked image, ``otsu`` re-threshold that image at its own Otsu
    threshold (a dark lesion is then masked like the others), or ``error``.
    """

    mode: Annotated[Literal["fixed", "percentile", "otsu", "off"], YamlWord] = "fixed"
    threshold: int = Field(193, ge=0, le=254)
    percentile: float = Field(50.0, gt=0, lt=100)
    empty_policy: Literal["keep", "fallback", "otsu", "error"] = "keep"


class MedianConfig(_Section):
    """Median filter; 3x3 is MATLAB ``medfilt2``'s default."""

    ksize: OddInt = Field(3, ge=3, le=31)


class GaussianConfig(_Section):
    """Gaussian filter; sigma 0.5 with a 3x3 kernel is MATLAB ``imgaussfilt``'s default."""

    sigma: float = Field(0.5, gt=0, le=20)
    ksize: OddInt | None = Field(None, ge=3, le=61,
                                 description="None: 2*ceil(2*sigma)+1 as MATLAB")


class WienerConfig(_Section):
    """Adaptive Wiener filter as MATLAB ``wiener2`` (3x3 window by default); ``noise`` None means
    the mean of the local variances."""

    window: OddInt = Field(3, ge=3, le=31)
    noise: float | None = Field(None, ge=0)


class CLAHEConfig(_Section):
    """CLAHE (OpenCV). The paper used MATLAB ``adapthisteq`` (8x8 tiles, ClipLimit 0.01); see
    ``docs/preprocessing.md`` for how ``clip_limit`` approximates it."""

    clip_limit: float = Field(3.0, gt=0, le=100)
    tile_grid: int = Field(8, ge=1, le=64)


PreprocessStep = Literal["nlm", "roi", "median", "gaussian", "wiener", "clahe"]


class PreprocessConfig(_Section):
    """The pre-processing chain. ``strategy`` names a chain in the strategy registry (``median``,
    ``gaussian``, ``wiener`` = the paper's three; ``none``) or ``custom``, in which case ``steps``
    lists the steps in order. Every chain starts by bringing the image to 8 bits (``intensity``),
    then to its working size (``working_max_side``) or, with ``field_of_view_mm``, to a fixed
    physical scale, and ends by resizing to ``output_size`` and replicating to 3 channels."""

    strategy: str = "median"
    steps: list[PreprocessStep] | None = None
    intensity: IntensityConfig = IntensityConfig()
    working_max_side: int | None = Field(
        512, ge=64, le=8192,
        description="downscale larger crops to this side before denoising (None: full size; "
                    "512 changes the 229-px output by < 0.5 grey level on average, see "
                    "docs/preprocessing.md)")
    nlm: NLMConfig = NLMConfig()
    roi: ROIConfig = ROIConfig()
    median: MedianConfig = MedianConfig()
    gaussian: GaussianConfig = GaussianConfig()
    wiener: WienerConfig = WienerConfig()
    clahe: CLAHEConfig = CLAHEConfig()
    output_size: int = Field(229, ge=32, le=1024)
    field_of_view_mm: float | None = Field(
        None, gt=0, le=1000,
        description="physical scale: each crop is resampled so that a square of this many mm "
                    "centred on the lesion fills output_size pixels (background where the "
                    "image ends), so the model sees the lesion's real size; needs every "
                    "image's pixel spacing (manifest column pixel_spacing_mm, or the DICOM "
                    "header). None: each crop is stretched to output_size whatever its size, "
                    "as in the paper")

    @model_validator(mode="after")
    def _custom_needs_steps(self) -> PreprocessConfig:
        if self.strategy == "custom" and not self.steps:
            raise ValueError("strategy 'custom' needs preprocess.steps (a list of step names)")
        if self.strategy != "custom" and self.steps is not None:
            raise ValueError("preprocess.steps is only used with strategy 'custom'")
        return self


# --------------------------------------------------------------------------- data
class DataConfig(_Section):
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


class ModelConfig(_Section):
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
class TrainConfig(_Section):
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
class EvaluateConfig(_Section):
    """How the decision threshold is chosen (on validation only, never on test) and how
    confidence intervals are computed."""

    threshold: Literal["fixed", "youden", "sensitivity"] = "fixed"
    fixed_threshold: float = Field(0.5, gt=0, lt=1)
    target_sensitivity: float = Field(0.9, gt=0, le=1)
    bootstrap_samples: int = Field(2000, ge=0, le=100000)
    ci_level: float = Field(0.95, gt=0, lt=1)


# --------------------------------------------------------------------------- input limits
class LimitsConfig(_Section):
    """Budgets every image read checks before decoding (see README, "Robustness"): the pixel
    count its header declares (DICOM: Rows x Columns x frames) and its file size. The defaults
    admit every real full-field mammogram (tens of megapixels) and refuse decompression bombs."""

    max_image_pixels: int = Field(100_000_000, ge=1, le=2_000_000_000)
    max_file_mb: float = Field(1024.0, gt=0, le=65536)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


class Config(_Section):
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


# --------------------------------------------------------------------------- loading
def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return f"invalid configuration ({source}): " + "; ".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a nested dict into a :class:`Config`."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration ({source}): expected a mapping at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None
    except RecursionError:
        raise ConfigError(f"invalid configuration ({source}): nested too deeply") from None


# Other names of shipped presets: the paper's headline row is also its best median-filter row.
PRESET_ALIASES = {"paper-median": "paper"}


def preset_names() -> list[str]:
    """Names of the configuration presets shipped with the package (aliases included)."""
    folder = resources.files("mammohybrid") / "presets"
    files = [p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")]
    return sorted(files + list(PRESET_ALIASES))


# A config is a few kilobytes; anything much larger is not one.
MAX_CONFIG_BYTES = 1 << 20


def read_text_file(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A small UTF-8 text file (config, run file); :class:`ConfigError` naming it otherwise."""
    try:
        if path.stat().st_size > max_bytes:
            raise ConfigError(f"{path}: larger than {max_bytes} bytes; not a config file")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: "
                          f"{error.object[error.start:error.start + 1]!r})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None


def _read_yaml(source: str | Path) -> tuple[dict[str, Any], str]:
    """Read a YAML mapping from a file path or a preset name."""
    path = Path(source)
    if path.is_file():
        text, label = read_text_file(path), str(path)
    else:
        name = PRESET_ALIASES.get(str(source), str(source))
        preset = resources.files("mammohybrid") / "presets" / f"{name}.yaml"
        if not preset.is_file():
            raise ConfigError(
                f"config '{source}' is neither a file nor a preset "
                f"(presets: {', '.join(preset_names())})")
        text, label = preset.read_text(encoding="utf-8"), f"preset {source}"
    return parse_yaml_mapping(text, label), label


class _StrictYAMLLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without the YAML 1.1 readings that surprise: integers are decimal
    only (``0x1F``, ``0o17``, ``017``, ``1_000`` and ``1:30`` stay text, which an integer key
    then refuses), and aliases (``*name``, the way to a billion-laughs bomb) are refused."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # PyYAML's API
        if self.check_event(yaml.events.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted",
                                              mark)
        return super().compose_node(parent, index)


_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_StrictYAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
# No leading zero: PyYAML would read 0229 as octal (and fail on its 9).
_StrictYAMLLoader.add_implicit_resolver("tag:yaml.org,2002:int",
                                        re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                                        list("-+0123456789"))
# YAML 1.2 floats (1e-3 included, which YAML 1.1 leaves as text); .inf and .nan are read, and
# then refused by every numeric key.
_StrictYAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def load_yaml(text: str, label: str) -> Any:  # any YAML value
    """Parse YAML with :class:`_StrictYAMLLoader`; :class:`ConfigError` naming ``label``."""
    try:
        return yaml.load(text, Loader=_StrictYAMLLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        raise ConfigError(f"{label} is not valid YAML: {_yaml_problem(error)}") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply to be a config") from None
    except (ValueError, OverflowError) as error:  # a constructor's, e.g. the date 2001-02-30
        raise ConfigError(f"{label} is not valid YAML: {error}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: the problem and where."""
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or str(error)
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def parse_yaml_mapping(text: str, label: str) -> dict[str, Any]:
    """YAML text that must hold a mapping (empty text: an empty one); ``label`` names it in
    errors."""
    data = load_yaml(text, label)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, found "
                          f"{type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, booleans, lists, null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    try:
        value = load_yaml(raw, f"override '{text}'") if raw.strip() else None
    except ConfigError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key=value`` overrides applied (nested keys by dots)."""
    merged = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = merged
        for part in keys[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
            node = child
        node[keys[-1]] = value
    return merged


def load_config(source: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file or preset ``source`` <- ``overrides`` (``key=value`` strings)."""
    data, label = _read_yaml(source) if source is not None else ({}, "defaults")
    if overrides:
        data = apply_overrides(data, overrides)
        label += " with overrides " + ", ".join(overrides)
    return config_from_dict(data, label)


def with_overrides(config: Config, overrides: list[str]) -> Config:
    """A new config: ``config`` with ``key=value`` overrides applied and validated."""
    return config_from_dict(apply_overrides(config_to_dict(config), overrides), "overrides")


def config_to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": value}``, the dotted names ``key=value`` overrides use
    (``prefix``: a first name part for every key)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def save_config(config: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) and return its path."""
    path = Path(path)
    atomic_write_text(path, config_to_yaml(config))
    return path
