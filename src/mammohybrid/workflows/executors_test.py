import builtins

import pytest

from mammohybrid.errors import ConfigError
from mammohybrid.workflows.executors import SerialExecutor, check_callbacks, open_executor


def test_serial_executor_keeps_the_order_of_the_tasks():
    with open_executor("serial") as executor:
        assert executor.map(lambda x: x * x, [3, 1, 2]) == [9, 1, 4]


def test_executor_choices_are_checked():
    with pytest.raises(ConfigError, match="unknown executor 'dask'.*serial, ray"):
        with open_executor("dask"):
            pass
    with pytest.raises(ConfigError, match="--address is for --executor ray"):
        with open_executor("serial", "auto"):
            pass


def test_ray_missing_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'mammohybrid\[ray\]'"):
        with open_executor("ray"):
            pass


def test_only_the_serial_executor_takes_callbacks():
    check_callbacks(SerialExecutor(), [object()])

    class Remote:
        name = "ray"

    check_callbacks(Remote(), [])
    with pytest.raises(ConfigError, match="the ray executor cannot take them"):
        check_callbacks(Remote(), [object()])
