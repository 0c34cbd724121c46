"""What every array transform shares: the record it reports into, input checks, and how it is
configured.

A transform is a small callable object, ``transform(image, record=None) -> image``, usable
alone (MONAI style) or inside a :class:`~mammohybrid.preprocess.chain.Chain`. Transforms that
learn something about the image on the way (the ROI step's kept-pixel fraction, the noise
level NLM estimated) write it into the optional :class:`Record` passed along the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from mammohybrid.errors import ConfigError, InvalidImageError

SectionT = TypeVar("SectionT", bound=BaseModel)


@dataclass
class Record:
    """What is known about one image as it goes through a chain: given with it, and what the
    steps report.

    Given with the image (None when unknown): ``pixel_spacing_mm``, millimetres per pixel (a
    manifest's ``pixel_spacing_mm`` or a DICOM header); ``center``, the lesion centre as
    (row, column) in the image's pixels (None: the image centre).

    Reported by the steps: ``kept_fraction`` is the fraction of pixels the ROI mask kept (1.0
    when there is no ROI step or the ROI mode is ``off``); ``roi_empty`` is True when it kept
    none; ``roi_threshold`` is the 8-bit threshold used (None without ROI step or in mode
    ``off``); ``nlm_h`` the NLM filter strength used.
    """

    pixel_spacing_mm: float | None = None
    center: tuple[float, float] | None = None
    kept_fraction: float = 1.0
    roi_empty: bool = False
    roi_threshold: float | None = None
    nlm_h: float | None = None
    warnings: list[str] = field(default_factory=list)


class Transform(Protocol):
    """An array transform: ``name`` labels it in QA figures and error messages."""

    name: str

    def __call__(self, image: np.ndarray, record: Record | None = None) -> np.ndarray: ...


def check_image(image: Any, step: str, dtypes: tuple[type, ...] | None = None) -> np.ndarray:
    """Return ``image`` as a contiguous 2-D array, or raise :class:`InvalidImageError`.

    ``dtypes`` lists the accepted NumPy scalar types (None: any). A trailing channel axis of
    size 1 is dropped.
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"{step}: expected a NumPy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2:
        raise InvalidImageError(f"{step}: expected a 2-D greyscale image, got shape {image.shape}")
    if image.size == 0:
        raise InvalidImageError(f"{step}: empty image of shape {image.shape}")
    if dtypes is not None and image.dtype.type not in dtypes:
        names = ", ".join(np.dtype(t).name for t in dtypes)
        raise InvalidImageError(f"{step}: expected dtype {names}, got {image.dtype}"
                                + (" (apply ToUint8 first)" if np.uint8 in dtypes else ""))
    return np.ascontiguousarray(image)


def section(cls: type[SectionT], config: SectionT | None, overrides: dict[str, Any]) -> SectionT:
    """A transform's settings: its config section (defaults when None) with keyword overrides,
    validated, so that ``MedianFilter(ksize=5)`` and ``MedianFilter(config.median)`` both work."""
    base = config if config is not None else cls()
    if not overrides:
        return base
    try:
        return cls(**{**base.model_dump(), **overrides})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise ConfigError(f"invalid {cls.__name__} settings: {problems}") from None
