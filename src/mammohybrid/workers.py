"""A process pool in which a worker that dies costs one task, not the batch.

A native decoder can kill its process (a segfault, an ``abort()``) where Python cannot catch
anything. ``concurrent.futures`` then fails every task in flight with ``BrokenProcessPool``
and ``multiprocessing.Pool`` waits forever; :class:`CrashSafePool` instead starts new workers,
runs each task that was in flight again alone, and reports the one that kills its worker again
through ``on_crash`` (an error row), then goes on with the rest.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

TaskT = TypeVar("TaskT")
ResultT = TypeVar("ResultT")

# What the error of a task whose worker died says.
WORKER_DIED = "the worker process died while handling this file (a decoder crashed)"


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask where the system has one (a
    container or ``taskset`` may allow fewer than the machine has), else every core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return max(1, os.cpu_count() or 1)


class CrashSafePool(Generic[TaskT, ResultT]):
    """``workers`` spawned processes (safe whatever threads the caller runs), each set up by
    ``initializer(*initargs)``, running ``function`` on tasks; ``on_crash(task)`` is the result
    of a task that kills its worker. Started on first use, kept until :meth:`close`."""

    def __init__(self, workers: int, function: Callable[[TaskT], ResultT],
                 on_crash: Callable[[TaskT], ResultT],
                 initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.function, self.on_crash = function, on_crash
        self.initializer, self.initargs = initializer, initargs
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes now (otherwise the first task does)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=self.initializer, initargs=self.initargs)

    def close(self) -> None:
        """Stop the worker processes, work in progress included (a later map starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> CrashSafePool[TaskT, ResultT]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _submit(self, task: TaskT) -> Future[ResultT]:
        self.start()
        assert self._pool is not None
        return self._pool.submit(self.function, task)

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _run_alone(self, task: TaskT) -> ResultT:
        try:
            return self._submit(task).result()
        except BrokenProcessPool:
            self._restart()
            return self.on_crash(task)

    def map_unordered(self, tasks: Iterable[TaskT], max_in_flight: int = 0) -> Iterator[ResultT]:
        """A result per task as each finishes (any order), with at most ``max_in_flight``
        (at least ``workers``) submitted at a time: memory stays flat however many tasks."""
        limit = max(max_in_flight, self.workers)
        pending: dict[Future[ResultT], TaskT] = {}
        remaining = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                try:
                    task = next(remaining)
                except StopIteration:
                    exhausted = True
                else:
                    pending[self._submit(task)] = task
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            crashed = False
            for future in done:
                task = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    crashed = True
                    pending[future] = task  # still to be done
                    continue
                yield result
            if crashed:
                # Every task in flight failed with the pool; which one killed it is unknown.
                suspects = list(pending.values())
                pending.clear()
                self._restart()
                for task in suspects:
                    yield self._run_alone(task)

