"""The process-wide read budgets :func:`~mammohybrid.imaging.decode_image` applies when it is
given none."""

from __future__ import annotations

from mammohybrid.config import LimitsConfig

_limits = LimitsConfig()


def read_limits() -> LimitsConfig:
    """The budgets :func:`~mammohybrid.imaging.decode_image` applies when it is given none."""
    return _limits


def set_read_limits(limits: LimitsConfig) -> None:
    """Set the budgets of every later read in this process that is given none (a command sets
    its config's ``limits`` once; worker processes are handed theirs explicitly)."""
    global _limits
    _limits = limits
