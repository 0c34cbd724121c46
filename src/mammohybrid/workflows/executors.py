"""Where the trainings of a grid or a cross-validation run: one after the other in this process
(``serial``), or as tasks of a Ray cluster (``ray``), one task per grid cell or fold.

Both write the same resumable layout under the output folder, so a run interrupted on a
cluster resumes like a local one (and either executor can resume the other's run). With Ray,
the output folder and the manifest's images must be on a file system every node sees (a shared
or network mount), because each task reads and writes them where the driver named them.

A task function must be a module-level function and its argument picklable (Ray sends both to
the worker); its result comes back in the order of the tasks.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mammohybrid.errors import ConfigError
from mammohybrid.tensorflow_env import configure_tensorflow, tensorflow_environment
from mammohybrid.workflows.reachable import split_address, unreachable

log = logging.getLogger(__name__)

Task = TypeVar("Task")
Result = TypeVar("Result")

RAY_INSTALL_HINT = "pip install 'mammohybrid[ray]'"
EXECUTORS = ("serial", "ray")


class Executor(Protocol):
    """Runs ``function(task)`` for every task and returns the results in the tasks' order."""

    name: str

    def map(self, function: Callable[[Task], Result], tasks: Sequence[Task]) -> list[Result]:
        ...


class SerialExecutor:
    """Every task in this process, in order: the default, and the only one that can pass Keras
    callbacks (live objects) to the trainings."""

    name = "serial"

    def map(self, function: Callable[[Task], Result], tasks: Sequence[Task]) -> list[Result]:
        return [function(task) for task in tasks]


@dataclass(frozen=True)
class RayResources:
    """What each task asks the cluster for. ``gpus`` None: one GPU when the cluster has any,
    else none; ``cpus`` None: one. A CPU-only task's TensorFlow uses ``cpus`` threads, so that
    the trainings Ray packs onto one node do not compete for its cores."""

    cpus: float | None = None
    gpus: float | None = None


class RayExecutor:
    """Each task is a Ray task; results are collected in the tasks' order. Interrupting the
    driver (Ctrl-C) cancels the tasks still running; run the command again to resume."""

    name = "ray"

    def __init__(self, ray: Any, resources: RayResources):
        self._ray = ray
        cluster = ray.cluster_resources()
        gpus = resources.gpus if resources.gpus is not None else (
            1.0 if cluster.get("GPU", 0) >= 1 else 0.0)
        cpus = resources.cpus if resources.cpus is not None else 1.0
        if gpus > cluster.get("GPU", 0) or cpus > cluster.get("CPU", 0):
            raise ConfigError(f"each task asks for {cpus:g} CPU(s) and {gpus:g} GPU(s) but the "
                              f"Ray cluster has {cluster.get('CPU', 0):g} CPU(s) and "
                              f"{cluster.get('GPU', 0):g} GPU(s)")
        threads = max(1, int(cpus))
        # The driver's TensorFlow settings (the user's, else the product's) travel to the workers.
        env = tensorflow_environment(quiet=True)
        if not gpus:
            env |= {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
                    "OMP_NUM_THREADS": str(threads)}
        self.cpus, self.gpus = cpus, gpus
        self._options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 0,
                                         "runtime_env": {"env_vars": env}}
        log.info("ray: %s, each task asks for %g CPU(s), %g GPU(s)", cluster, cpus, gpus)

    def map(self, function: Callable[[Task], Result], tasks: Sequence[Task]) -> list[Result]:
        remote = self._ray.remote(_in_ray_worker).options(**self._options)
        refs = [remote.remote(function, task) for task in tasks]
        try:
            return [self._ray.get(ref) for ref in refs]
        except BaseException:
            for ref in refs:  # leave nothing running on the cluster
                with contextlib.suppress(Exception):
                    self._ray.cancel(ref, force=True)
            raise


def _in_ray_worker(function: Callable[[Task], Result], task: Task) -> Result:
    """A Ray task: ``function(task)`` with TensorFlow started as the command line starts it
    (the worker process may be fresh, or have run an earlier task)."""
    configure_tensorflow(quiet=True)
    return function(task)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ConfigError(f"--executor ray needs Ray: {RAY_INSTALL_HINT}") from error
    return ray


@contextlib.contextmanager
def open_executor(name: str = "serial", address: str | None = None,
                  resources: RayResources = RayResources()) -> Iterator[Executor]:
    """``with open_executor("ray", "auto") as executor:``. Ray: connects to the cluster at
    ``address`` (``auto``: the one this machine belongs to, ``HOST:PORT``: the head node, or
    ``ray://HOST:10001`` through Ray Client; None: ``RAY_ADDRESS``, else a new local instance),
    or uses the Ray already initialised in this process; a connection it made is closed at the
    end."""
    if name == "serial":
        if address is not None:
            raise ConfigError("--address is for --executor ray")
        yield SerialExecutor()
        return
    if name != "ray":
        raise ConfigError(f"unknown executor '{name}' (choose: {', '.join(EXECUTORS)})")
    ray = import_ray()
    connected_here = not ray.is_initialized()
    if connected_here:
        address = address or os.environ.get("RAY_ADDRESS")
        check_ray_address(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, configure_logging=False)
        except ConnectionError as error:
            raise ConfigError(f"cannot reach the Ray cluster at {address}: {error}") from error
    try:
        yield RayExecutor(ray, resources)
    finally:
        if connected_here:
            ray.shutdown()


def check_ray_address(address: str | None) -> None:
    """Raise :class:`ConfigError` in a few seconds if nothing answers at a ``HOST:PORT`` or
    ``ray://HOST:PORT`` address: Ray itself would retry it for minutes, deaf to Ctrl-C
    (``auto``, ``local`` and no address are Ray's to find)."""
    where = split_address(address) if address else None
    if where is None:
        return
    problem = unreachable(*where)
    if problem is not None:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {problem} (is its head "
                          "node started, with `ray start --head`? without --address, Ray "
                          "starts on this machine)")


def check_callbacks(executor: Executor, callbacks: Sequence[Any]) -> None:
    """Keras callbacks are live objects of this process: only the serial executor runs them."""
    if callbacks and executor.name != "serial":
        raise ConfigError(f"training callbacks run in this process only; the {executor.name} "
                          "executor cannot take them")
