"""Command-line interface: a thin layer over the library (see :mod:`mammohybrid.cli.app`).

Importing a command module registers its commands on the app, in this order in ``--help``:
the pipeline's order.
"""

# isort: off
from mammohybrid.cli import demo  # noqa: F401
from mammohybrid.cli import data  # noqa: F401
from mammohybrid.cli import preprocess  # noqa: F401
from mammohybrid.cli import model  # noqa: F401
from mammohybrid.cli import evaluation  # noqa: F401
from mammohybrid.cli import predict  # noqa: F401
from mammohybrid.cli import export  # noqa: F401
from mammohybrid.cli import serve  # noqa: F401
from mammohybrid.cli import config_cmd  # noqa: F401
from mammohybrid.cli import devices  # noqa: F401
# isort: on
from mammohybrid.cli.app import app, main

__all__ = ["app", "main"]
