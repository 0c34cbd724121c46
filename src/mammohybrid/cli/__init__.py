"""Command-line interface: a thin layer over the library (see :mod:`mammohybrid.cli.app`)."""

from mammohybrid.cli import config_cmd  # noqa: F401  (registers commands)
from mammohybrid.cli.app import app, main

__all__ = ["app", "main"]
