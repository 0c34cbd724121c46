"""``python -m mammohybrid.cli``: the ``mammohybrid`` command where its script is not on the
PATH (a checkout run with ``PYTHONPATH=src``)."""

from mammohybrid.cli import main

main()
