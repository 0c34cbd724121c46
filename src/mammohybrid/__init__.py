"""mammohybrid: breast-mass classification after Boudouh & Bouakkaz (2023)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mammohybrid")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
