"""Tests of the device report: the wrong-wheel warnings from given inputs, and the report of
this machine (no GPU here)."""

from __future__ import annotations

import importlib.metadata
import platform

import pytest

from mammohybrid.training import devices
from mammohybrid.training.devices import (
    describe_devices,
    device_warnings,
    gpu_install_command,
    installed_tensorflow,
    nvidia_gpu_present,
)

GPU_FIX = 'pip uninstall -y tensorflow-cpu tensorflow && pip install "tensorflow[and-cuda]==2.21.0"'


def test_the_gpu_fix_installs_the_same_version() -> None:
    assert gpu_install_command("2.21.0") == GPU_FIX


def test_tensorflow_cpu_on_an_nvidia_machine_is_reported_with_the_fix() -> None:
    (warning,) = device_warnings("2.21.0", {"tensorflow-cpu": "2.21.0"}, built_with_cuda=False,
                                 gpus=0, nvidia_present=True)
    assert "built without CUDA" in warning and "tensorflow-cpu 2.21.0" in warning
    assert warning.endswith(f"Fix: {GPU_FIX}")


def test_a_cuda_build_that_finds_no_gpu_is_reported() -> None:
    (warning,) = device_warnings("2.21.0", {"tensorflow": "2.21.0"}, built_with_cuda=True,
                                 gpus=0, nvidia_present=True)
    assert "finds none" in warning and warning.endswith(GPU_FIX)


def test_both_wheels_installed_is_reported_on_any_machine() -> None:
    both = {"tensorflow": "2.21.0", "tensorflow-cpu": "2.21.0"}
    (on_cpu,) = device_warnings("2.21.0", both, built_with_cuda=False, gpus=0,
                                nvidia_present=False)
    assert "both installed" in on_cpu and on_cpu.endswith('pip install "tensorflow-cpu==2.21.0"')
    (on_gpu,) = device_warnings("2.21.0", both, built_with_cuda=True, gpus=1,
                                nvidia_present=True)
    assert on_gpu.endswith(GPU_FIX)


@pytest.mark.parametrize("distributions, built_with_cuda, gpus, nvidia", [
    ({"tensorflow-cpu": "2.21.0"}, False, 0, False),  # a CPU machine with the default install
    ({"tensorflow": "2.21.0"}, True, 2, True),  # a GPU machine after the fix
    ({"tensorflow": "2.21.0"}, True, 0, False),  # the GPU build on a machine without a GPU
])
def test_working_installations_give_no_warning(distributions, built_with_cuda, gpus,
                                               nvidia) -> None:
    assert device_warnings("2.21.0", distributions, built_with_cuda, gpus, nvidia) == []


def test_nvidia_driver_is_found_by_its_proc_file_or_nvidia_smi(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_FILE", tmp_path / "version")
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    assert not nvidia_gpu_present()
    (tmp_path / "version").write_text("NVRM version: 550.54\n")
    assert nvidia_gpu_present()
    (tmp_path / "version").unlink()
    monkeypatch.setattr(devices.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert nvidia_gpu_present()


def test_installed_distributions_are_read_from_package_metadata(monkeypatch) -> None:
    versions = {"tensorflow-cpu": "2.21.0"}

    def version(name: str) -> str:
        if name not in versions:
            raise importlib.metadata.PackageNotFoundError(name)
        return versions[name]

    monkeypatch.setattr(devices.importlib.metadata, "version", version)
    assert installed_tensorflow() == {"tensorflow-cpu": "2.21.0"}


def test_an_nvidia_machine_with_tensorflow_cpu_gets_the_warning_in_the_report(
        monkeypatch) -> None:
    import tensorflow as tf

    monkeypatch.setattr(devices, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(devices, "installed_tensorflow", lambda: {"tensorflow-cpu": tf.__version__})
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(tf.sysconfig, "get_build_info", lambda: {"is_cuda_build": False})
    report = describe_devices()
    assert not report.gpus and not report.mixed_precision_auto
    (warning,) = report.warnings
    assert warning.endswith(gpu_install_command(tf.__version__))
    assert report.lines()[-1] == f"WARNING: {warning}"
    assert report.as_dict()["warnings"] == [warning]


def test_the_report_names_the_cpu_kernels(monkeypatch) -> None:
    monkeypatch.setattr(devices, "cpu_kernels", lambda: "eigen")
    report = describe_devices()
    assert report.as_dict()["cpu_kernels"] == "eigen"
    (line,) = [line for line in report.lines() if line.startswith("CPU kernels: ")]
    assert "TF_ENABLE_ONEDNN_OPTS=0" in line


@pytest.mark.skipif(platform.machine().lower() not in {"x86_64", "amd64"},
                    reason="TensorFlow's oneDNN kernels are checked on x86 builds")
def test_the_tests_run_tensorflow_on_onednn_as_the_command_line_does() -> None:
    assert devices.cpu_kernels() == "onednn"  # conftest.py starts TensorFlow like the CLI
