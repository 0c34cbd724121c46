"""Rich progress bars shared by every loop over images."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

# Progress and status go to stderr so that stdout stays clean for results.
console = Console(stderr=True)
# A loop over fewer cheap items than this (no image decoded) ends within about a second: no bar.
QUICK_ITEMS = 10_000


def progress_bar(disable: bool = False) -> Progress:
    """A progress bar with count, elapsed and remaining time, drawn on stderr (not at all
    with ``disable``: a step too quick to report)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items`` while drawing a progress bar."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def in_blocks(items: Sequence[T], bar: Progress, task: TaskID,
              block: int = 20_000) -> Iterator[Sequence[T]]:
    """``items`` a block at a time, advancing ``task`` of ``bar`` after each: a loop over a
    million cheap items, reported without paying for a bar update per item."""
    for start in range(0, len(items), block):
        chunk = items[start:start + block]
        yield chunk
        bar.advance(task, len(chunk))
