"""Safe file writing: a reader (or a run resumed after ``kill -9`` or a full disk) never sees
a half-written file, no command writes over its own inputs, and one writer at a time uses an
output folder.

Every write goes to a temporary file beside the target, is flushed and ``fsync``-ed, its size
checked against what was meant to be written (a short write on a full disk does not always
raise), and only then renamed onto the target.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mammohybrid.errors import DiskFullError, OutputConflictError

# errno values that mean "the output's file system cannot take more", and how to say so.
_FULL_DISK = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "over the disk quota",
              errno.EFBIG: "file too large for the file system"}


# What a path is when it is no regular file, by the file type bits of its mode.
_FILE_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a named pipe (FIFO)",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFSOCK: "a socket"}


def not_a_regular_file(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read or replaced as a file: ``no such file`` (a broken symbolic
    link included), ``a named pipe (FIFO), not a regular file`` and the like, or the system's
    reason it cannot be looked at; None for a regular file (links followed)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file (a broken symbolic link)" if os.path.islink(path) else "no such file"
    except OSError as error:
        return f"cannot be looked at ({error.strerror or error})"
    if stat.S_ISREG(mode):
        return None
    return f"{_FILE_KINDS.get(stat.S_IFMT(mode), 'a special file')}, not a regular file"


def _refuse_special_file(output: str | os.PathLike[str]) -> None:
    problem = not_a_regular_file(output)
    if problem is not None:
        raise OutputConflictError(f"output {output} is {problem}: choose a file to write")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so that ``os.replace`` is an atomic rename.
    A ``path`` that exists as something else than a regular file (a folder, ``/dev/full``, a
    named pipe) is refused with :class:`OutputConflictError`: the rename would replace it.
    """
    target = Path(path)
    if target.exists():
        _refuse_special_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + target.suffix,
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not every file system lets a folder be opened.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; raise :class:`OSError` (``ENOSPC``) if the file
    on disk is not exactly ``data``'s size after ``fsync``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        written = tmp.stat().st_size
        if written != len(data):
            raise OSError(errno.ENOSPC, f"short write: {written} of {len(data)} bytes", str(path))
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces ``path`` when the block exits cleanly."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
        written, meant = os.fstat(handle.fileno()).st_size, handle.tell()
        if written != meant:
            raise OSError(errno.ENOSPC, f"short write: {written} of {meant} bytes", str(path))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default)
    atomic_write_text(path, text + "\n")


def _json_default(value: Any) -> Any:
    # NumPy scalars and arrays, paths: the values our reports hold.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def is_disk_full(error: BaseException) -> bool:
    """True for an :class:`OSError` that means the file system is full or over quota."""
    return _full_disk_reason(error) is not None


def _full_disk_reason(error: BaseException) -> str | None:
    if isinstance(error, OSError) and error.errno is not None:
        return _FULL_DISK.get(error.errno)
    return None


@contextlib.contextmanager
def stop_on_full_disk(folder: str | os.PathLike[str],
                      then: str = "run the command again (finished files are kept)"
                      ) -> Iterator[None]:
    """Turn a full-disk :class:`OSError` raised in the block into one :class:`DiskFullError`
    naming ``folder`` (absolute) and what filled up, and saying to free some space and
    ``then``: by default, that the next run resumes from the finished files."""
    try:
        yield
    except OSError as error:
        reason = _full_disk_reason(error)
        if reason is None:
            raise
        raise DiskFullError(f"{Path(folder).absolute()}: {reason}; free some space and {then}"
                            ) from None


@dataclass(frozen=True)
class InputTree:
    """A folder a command reads files from, at any depth: those ``reads`` accepts (given a
    path inside ``folder``, which need not exist yet). :func:`refuse_overwriting_inputs`
    counts every such file as an input without listing the tree."""

    folder: Path
    reads: Callable[[Path], bool]


def refuse_overwriting_inputs(outputs: Iterable[str | os.PathLike[str]],
                              inputs: Iterable[str | os.PathLike[str] | InputTree]) -> None:
    """Raise :class:`OutputConflictError` before any work if an output file or folder is one of
    the inputs, holds one (a folder), or is a file the command reads in an input tree (an
    output named like the tree's images, inside it): a command never writes over what it
    reads. Paths are compared with symbolic links resolved. An output that exists as neither
    a regular file nor a folder (``/dev/full``, a named pipe) is refused too, as
    :func:`atomic_path` would refuse it once the work is done."""
    targets = [(output, Path(output).resolve()) for output in outputs]
    for output, target in targets:
        if target.exists() and not target.is_dir():
            _refuse_special_file(output)
    for item in inputs:
        tree = item if isinstance(item, InputTree) else None
        source = Path(item.folder if isinstance(item, InputTree) else item).resolve()
        for output, target in targets:
            if source == target or target in source.parents:
                what = "is" if source == target else "holds"
                kind = "input folder" if tree else "input"
                raise OutputConflictError(f"output {output} {what} the {kind} {source}: choose "
                                          "another output")
            if tree and source in target.parents and tree.reads(target):
                raise OutputConflictError(f"output {output} is a file the command reads in its "
                                          f"input folder {source}: choose another output")


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], name: str = ".lock",
                output: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` for the block; a second writer is refused at once
    with :class:`OutputConflictError` naming ``output`` (default: the folder) as an absolute
    path and the process holding it (the lock ends with its process, even after ``kill -9``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(folder / name)
            raise OutputConflictError(f"{Path(output or folder).absolute()} is in use by another "
                                      f"mammohybrid process{holder}; wait for it to finish or "
                                      "choose another output") from None
        # The holder's process id, for the message a second writer gets.
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _lock_holder(lock: Path) -> str:
    """`` (pid N: its command line)`` of the process a lock file names, or ``""``."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(lock.read_text(encoding="ascii").strip())
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            shown = command.decode(errors="replace").strip()
            if shown:
                return f" (pid {pid}: {shown[:200]})"
        return f" (pid {pid})"
    return ""
