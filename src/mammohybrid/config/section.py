"""What every configuration section shares: the strict base model and the field types that the
YAML a user writes needs (odd window sizes, ``off``/``on`` words that YAML reads as booleans)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict


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


class Section(BaseModel):
    """Base of every section: unknown keys are errors, assignments are validated too, and types
    are strict wherever a coercion would change meaning (``true`` is no 1, ``0`` no False,
    ``0.9999999999999999999`` no integer, NaN and infinity no number)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True,
                              allow_inf_nan=False)
