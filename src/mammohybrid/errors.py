"""Exceptions the command line turns into one clear line (``--debug`` shows the traceback)."""


class MammohybridError(Exception):
    """Base class of every error that is the user's to fix (bad input, bad config, missing file)."""


class ConfigError(MammohybridError):
    """A configuration value is unknown, out of range or inconsistent."""


class ImageReadError(MammohybridError):
    """An image file is missing, unreadable, corrupt or of an unsupported kind."""


class ManifestError(MammohybridError):
    """A manifest lacks required columns, holds invalid values, or leaks patients across splits."""


class EmptyROIError(MammohybridError):
    """The ROI threshold kept no pixel and the empty-mask policy is ``error``."""


class RunNotFinishedError(MammohybridError):
    """A run directory has no finished model (training not run, still running or killed)."""


class WeightsUnavailableError(MammohybridError):
    """Pretrained weights cannot be downloaded or loaded."""


class InvalidImageError(MammohybridError, ValueError):
    """An image array has a shape, dtype or value range a processing step cannot handle."""


class DatasetError(MammohybridError):
    """A dataset to ingest is missing, laid out wrongly, or yields no usable image."""


class DiskFullError(MammohybridError):
    """The file system of an output folder is full (or over quota): the run stops."""


class OutputConflictError(MammohybridError):
    """An output would overwrite one of the command's inputs, or another process is writing
    to the same output folder."""


class ExportError(MammohybridError):
    """A run cannot be exported (ONNX, SavedModel), or an exported model does not belong to the
    run or the product."""
