import builtins

import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.tensorflow_env import LOG_LEVEL_VARIABLE, ONEDNN_VARIABLE
from mammohybrid.workflows.executors import (
    RayExecutor,
    RayResources,
    SerialExecutor,
    check_callbacks,
    open_executor,
)


def test_serial_executor_keeps_the_order_of_the_tasks():
    with open_executor("serial") as executor:
        assert executor.map(lambda x: x * x, [3, 1, 2]) == [9, 1, 4]


def test_executor_choices_are_checked():
    with (pytest.raises(ConfigError, match=r"unknown executor 'dask'.*serial, ray"),
          open_executor("dask")):
        pass
    with (pytest.raises(ConfigError, match="--address is for --executor ray"),
          open_executor("serial", "auto")):
        pass


def test_ray_missing_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with (pytest.raises(ConfigError, match=r"pip install 'mammohybrid\[ray\]'"),
          open_executor("ray")):
        pass


def test_only_the_serial_executor_takes_callbacks():
    check_callbacks(SerialExecutor(), [object()])

    class Remote:
        name = "ray"

    check_callbacks(Remote(), [])
    with pytest.raises(ConfigError, match="the ray executor cannot take them"):
        check_callbacks(Remote(), [object()])


class FakeRay:
    """Runs each task at once in this process, recording the options it was given."""

    def __init__(self, cluster):
        self.cluster, self.options = cluster, None

    def cluster_resources(self):
        return self.cluster

    def remote(self, function):
        fake = self

        class Remote:
            def options(self, **options):
                fake.options = options
                return self

            def remote(self, *args):
                return function(*args)

        return Remote()

    def get(self, ref):
        return ref


def test_ray_tasks_start_tensorflow_with_the_drivers_settings(monkeypatch):
    monkeypatch.setenv(ONEDNN_VARIABLE, "0")  # the user's choice travels to the workers
    ray = FakeRay({"CPU": 2.0})
    executor = RayExecutor(ray, RayResources(cpus=2))
    assert executor.map(lambda x: x + 1, [1, 2]) == [2, 3]
    env_vars = ray.options["runtime_env"]["env_vars"]
    assert env_vars[ONEDNN_VARIABLE] == "0" and env_vars[LOG_LEVEL_VARIABLE] == "2"
    assert env_vars["TF_NUM_INTRAOP_THREADS"] == "2" and ray.options["num_gpus"] == 0.0


def test_a_ray_address_nobody_answers_at_fails_at_once_naming_it(monkeypatch, closed_port):
    """Ray would retry it for minutes, deaf to Ctrl-C: it is never handed the address."""
    ray = pytest.importorskip("ray")
    def never(**kwargs):
        raise AssertionError(f"ray.init was called with {kwargs}")

    monkeypatch.setattr(ray, "init", never)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    address = f"127.0.0.1:{closed_port}"
    with (pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at {address}: "
                                           "connection refused"),
          open_executor("ray", address)):
        pass
    monkeypatch.setenv("RAY_ADDRESS", f"ray://{address}")
    with (pytest.raises(ConfigError, match=f"at ray://{address}: connection refused"),
          open_executor("ray")):
        pass
