"""The pre-processing sections: how an image is brought to 8 bits, denoised, masked, filtered,
enhanced and resized (``preprocess`` and its sub-sections)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mammohybrid.config.section import OddInt, Section, YamlWord


class IntensityConfig(Section):
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


class NLMConfig(Section):
    """Non-Local-Means denoising (OpenCV ``fastNlMeansDenoising``).

    ``h`` is the filter strength in 8-bit grey levels; ``None`` estimates it per image as the
    noise standard deviation, which is what MATLAB ``imnlmfilt`` (the paper's tool) does by
    default. Window sizes default to MATLAB's (5x5 comparison, 21x21 search).
    """

    h: float | None = Field(None, gt=0, le=100)
    h_min: float = Field(1.0, gt=0, le=100, description="lower bound of the estimated h")
    template_window: OddInt = Field(5, ge=3, le=21)
    search_window: OddInt = Field(21, ge=3, le=51)


class ROIConfig(Section):
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


class MedianConfig(Section):
    """Median filter; 3x3 is MATLAB ``medfilt2``'s default."""

    ksize: OddInt = Field(3, ge=3, le=31)


class GaussianConfig(Section):
    """Gaussian filter; sigma 0.5 with a 3x3 kernel is MATLAB ``imgaussfilt``'s default."""

    sigma: float = Field(0.5, gt=0, le=20)
    ksize: OddInt | None = Field(None, ge=3, le=61,
                                 description="None: 2*ceil(2*sigma)+1 as MATLAB")


class WienerConfig(Section):
    """Adaptive Wiener filter as MATLAB ``wiener2`` (3x3 window by default); ``noise`` None means
    the mean of the local variances."""

    window: OddInt = Field(3, ge=3, le=31)
    noise: float | None = Field(None, ge=0)


class CLAHEConfig(Section):
    """CLAHE (OpenCV). The paper used MATLAB ``adapthisteq`` (8x8 tiles, ClipLimit 0.01); see
    ``docs/preprocessing.md`` for how ``clip_limit`` approximates it."""

    clip_limit: float = Field(3.0, gt=0, le=100)
    tile_grid: int = Field(8, ge=1, le=64)


PreprocessStep = Literal["nlm", "roi", "median", "gaussian", "wiener", "clahe"]


class PreprocessConfig(Section):
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
