"""The devices TensorFlow trains on, and whether the installed TensorFlow can use the NVIDIA
GPU the machine has (``mammohybrid devices``; ``train`` prints the same warnings).

On Linux x86_64 the package depends on ``tensorflow-cpu``; GPU training needs the
``tensorflow`` wheel with its CUDA libraries (``tensorflow[and-cuda]``) instead. Both wheels
install the same ``tensorflow`` module, so the one installed last wins and uninstalling either
removes files the other needs: the fix removes both, then installs the GPU build of the same
version (docs/gpu.md).
"""

from __future__ import annotations

import functools
import importlib.metadata
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mammohybrid.tensorflow_env import ONEDNN_VARIABLE
from mammohybrid.workers import usable_cores

TENSORFLOW_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")
# Written by the NVIDIA kernel driver: a GPU is there whether or not CUDA is installed.
NVIDIA_DRIVER_FILE = Path("/proc/driver/nvidia/version")


def nvidia_gpu_present() -> bool:
    """True when the machine has an NVIDIA driver loaded (or ``nvidia-smi`` on the PATH)."""
    return NVIDIA_DRIVER_FILE.exists() or shutil.which("nvidia-smi") is not None


def installed_tensorflow() -> dict[str, str]:
    """The TensorFlow distributions installed, name -> version (both may be)."""
    found = {}
    for name in TENSORFLOW_DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def gpu_install_command(version: str) -> str:
    """The one line that puts the GPU build of TensorFlow ``version`` in place of whatever
    TensorFlow wheels are installed."""
    return (f'pip uninstall -y tensorflow-cpu tensorflow && '
            f'pip install "tensorflow[and-cuda]=={version}"')


def cpu_install_command(version: str) -> str:
    """The one line that leaves only the CPU build of TensorFlow ``version``."""
    return f'pip uninstall -y tensorflow-cpu tensorflow && pip install "tensorflow-cpu=={version}"'


def device_warnings(tensorflow_version: str, distributions: Mapping[str, str],
                    built_with_cuda: bool, gpus: int, nvidia_present: bool) -> list[str]:
    """What is wrong with this TensorFlow installation for this machine, each with its fix
    (empty when nothing is)."""
    fix = (gpu_install_command if nvidia_present else cpu_install_command)(tensorflow_version)
    warnings = []
    if len(distributions) > 1:
        warnings.append("tensorflow and tensorflow-cpu are both installed; they share the "
                        "tensorflow module, the one installed last overwrote the other's "
                        f"files. Fix: {fix}")
    if nvidia_present and not gpus:
        if not built_with_cuda:
            installed = ", ".join(f"{name} {version}" for name, version in distributions.items())
            warnings.append(f"this machine has an NVIDIA GPU but the installed TensorFlow "
                            f"({installed or tensorflow_version}) is built without CUDA: "
                            f"training runs on the CPU. Fix: {fix}")
        else:
            warnings.append("this machine has an NVIDIA GPU but TensorFlow (built with CUDA) "
                            "finds none: the CUDA libraries are missing or do not match the "
                            "driver (TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's reason). "
                            f"Fix: {fix}")
    return warnings


@functools.cache
def installation_warnings() -> tuple[str, ...]:
    """:func:`device_warnings` for this process's TensorFlow on this machine, worked out once:
    the installation does not change while the process runs, and a grid or a cross-validation
    starts dozens of trainings."""
    import tensorflow as tf

    return tuple(device_warnings(
        tf.__version__, installed_tensorflow(),
        bool(tf.sysconfig.get_build_info().get("is_cuda_build", False)),
        len(tf.config.list_physical_devices("GPU")), nvidia_gpu_present()))


def cpu_kernels() -> str:
    """The CPU kernels this process's TensorFlow runs: ``onednn``, ``eigen``, or ``unknown``
    (:mod:`mammohybrid.tensorflow_env` says why it matters)."""
    try:  # TensorFlow answers this only through a module of its own (no public API)
        from tensorflow.python.util import _pywrap_util_port

        enabled = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        return "unknown"
    return "onednn" if enabled else "eigen"


KERNEL_DESCRIPTIONS = {
    "onednn": "oneDNN",
    "eigen": (f"Eigen (oneDNN is off: {ONEDNN_VARIABLE}=0, a TensorFlow build without it, or "
              f"TensorFlow imported before {ONEDNN_VARIABLE}=1 was set)"),
    "unknown": "unknown (this TensorFlow does not say)",
}


@dataclass(frozen=True)
class DeviceReport:
    """What TensorFlow sees on this machine (:func:`describe_devices`)."""

    tensorflow_version: str
    distributions: dict[str, str]
    built_with_cuda: bool
    cuda_version: str
    cudnn_version: str
    gpus: list[str]
    nvidia_present: bool
    usable_cores: int
    cpu_kernels: str
    warnings: list[str] = field(default_factory=list)

    @property
    def mixed_precision_auto(self) -> bool:
        """What ``train.mixed_precision: auto`` resolves to here: on exactly with a GPU."""
        return bool(self.gpus)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mixed_precision_auto": self.mixed_precision_auto}

    def lines(self) -> list[str]:
        """The report as ``mammohybrid devices`` prints it."""
        installed = ", ".join(f"{name} {version}" for name, version in
                              self.distributions.items()) or "no TensorFlow distribution found"
        cuda = (f"built with CUDA {self.cuda_version or '?'}, cuDNN {self.cudnn_version or '?'}"
                if self.built_with_cuda else "built without CUDA (CPU only)")
        lines = [f"tensorflow {self.tensorflow_version} ({installed}); {cuda}",
                 f"NVIDIA driver: {'present' if self.nvidia_present else 'not found'}",
                 f"GPUs TensorFlow sees: {len(self.gpus)}"]
        lines += [f"  {gpu}" for gpu in self.gpus]
        lines += [f"CPU cores usable: {self.usable_cores}",
                  f"CPU kernels: {KERNEL_DESCRIPTIONS[self.cpu_kernels]}",
                  f"train.mixed_precision auto: {'on' if self.mixed_precision_auto else 'off'}"]
        return lines + [f"WARNING: {warning}" for warning in self.warnings]


def describe_devices() -> DeviceReport:
    """Ask TensorFlow (imported here) what it sees, and check it against the machine."""
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    physical = tf.config.list_physical_devices("GPU")
    gpus = []
    for device in physical:
        details = tf.config.experimental.get_device_details(device)
        capability = details.get("compute_capability")
        gpus.append(f"{device.name}: {details.get('device_name', 'GPU')}"
                    + (f" (compute capability {capability[0]}.{capability[1]})"
                       if capability else ""))
    distributions = installed_tensorflow()
    built_with_cuda = bool(build.get("is_cuda_build", False))
    nvidia = nvidia_gpu_present()
    return DeviceReport(
        tensorflow_version=tf.__version__, distributions=distributions,
        built_with_cuda=built_with_cuda, cuda_version=str(build.get("cuda_version", "")),
        cudnn_version=str(build.get("cudnn_version", "")), gpus=gpus, nvidia_present=nvidia,
        usable_cores=usable_cores(), cpu_kernels=cpu_kernels(),
        warnings=device_warnings(tf.__version__, distributions, built_with_cuda, len(gpus),
                                 nvidia))
