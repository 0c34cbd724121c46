"""The one configuration object that flows through data -> pre-processing -> model -> training ->
evaluation.

A config is built from defaults, then a YAML file (a path or the name of a preset shipped in
``mammohybrid/presets``), then ``key=value`` overrides from the command line, and is validated
at every step: unknown keys and out-of-range values raise :class:`ConfigError` naming the key.
Every command saves the resolved config beside its outputs (``save_config``) so a result can
be traced to its exact settings.

The modules: ``section`` (the strict base of every section, shared field types),
``preprocess`` and ``schema`` (the sections and :class:`Config`), ``yaml_text`` (strict YAML),
``presets`` (the shipped presets), ``load`` (defaults <- file or preset <- overrides) and
``dump`` (dict, dotted names, YAML, saved file). Import from this package.
"""

from mammohybrid.config.dump import config_to_dict, config_to_yaml, flatten, save_config
from mammohybrid.config.load import (
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
    with_overrides,
)
from mammohybrid.config.preprocess import (
    CLAHEConfig,
    GaussianConfig,
    IntensityConfig,
    MedianConfig,
    NLMConfig,
    PreprocessConfig,
    PreprocessStep,
    ROIConfig,
    WienerConfig,
)
from mammohybrid.config.presets import PRESET_ALIASES, preset_names
from mammohybrid.config.schema import (
    Config,
    DataConfig,
    EvaluateConfig,
    LimitsConfig,
    ModelConfig,
    TrainConfig,
)
from mammohybrid.config.section import OddInt, YamlWord
from mammohybrid.config.yaml_text import (
    MAX_CONFIG_BYTES,
    load_yaml,
    parse_yaml_mapping,
    read_text_file,
)

__all__ = [
    "MAX_CONFIG_BYTES",
    "PRESET_ALIASES",
    "CLAHEConfig",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "GaussianConfig",
    "IntensityConfig",
    "LimitsConfig",
    "MedianConfig",
    "ModelConfig",
    "NLMConfig",
    "OddInt",
    "PreprocessConfig",
    "PreprocessStep",
    "ROIConfig",
    "TrainConfig",
    "WienerConfig",
    "YamlWord",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "flatten",
    "load_config",
    "load_yaml",
    "parse_override",
    "parse_yaml_mapping",
    "preset_names",
    "read_text_file",
    "save_config",
    "with_overrides",
]
