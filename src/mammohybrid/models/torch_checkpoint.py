"""Read PyTorch ``torch.save`` checkpoints (state dicts) into NumPy arrays, without torch and
without unrestricted unpickling.

A ``.pt`` / ``.pth`` file is a pickle, and unpickling runs whatever callable the file names: a
checkpoint from the internet can execute code. This reader uses an unpickler that resolves only
the globals a state dict of tensors needs (``collections.OrderedDict``, torch's tensor-rebuild
functions and its typed-storage classes, each mapped to a NumPy stand-in, never to torch
itself) and refuses every other global with :class:`UnsafeCheckpointError`.

Both on-disk formats are read:

- legacy (``_use_new_zipfile_serialization=False``, torch < 1.6): four pickles in a row (magic
  number, protocol version, system info, the object), a pickled list of storage keys, then each
  storage as an int64 element count followed by its raw little-endian bytes;
- zip (torch >= 1.6): ``<archive>/data.pkl`` plus one ``<archive>/data/<key>`` entry of raw
  bytes per storage.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mammohybrid.errors import MammohybridError

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# Tensors may share a storage (tied weights), so what they hold together may exceed the file;
# never by more than this factor, whatever their shapes and strides claim.
MAX_TENSOR_BYTES_PER_FILE_BYTE = 4

# torch's typed storages -> the NumPy dtype of their bytes (bfloat16 is widened on reading).
STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"), "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"), "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


class UnsafeCheckpointError(MammohybridError):
    """The checkpoint asks the unpickler for something a tensor state dict never needs."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    """A storage named in the pickle; its bytes are read after the pickle (legacy) or from its
    own zip entry."""

    key: str
    storage_type: _StorageType
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=object))

    @property
    def nbytes(self) -> int:
        return self.numel * self.storage.storage_type.dtype.itemsize

    def check(self) -> np.ndarray:
        """The storage's elements, after checking that shape and stride stay inside them."""
        data = self.storage.data
        if data is None:
            raise MammohybridError(f"checkpoint storage {self.storage.key} has no data")
        if any(n < 0 for n in self.shape) or len(self.shape) != len(self.stride):
            raise MammohybridError(f"checkpoint tensor has an invalid shape {self.shape} or "
                                   f"stride {self.stride}")
        if any(n == 0 for n in self.shape):
            return data
        needed = self.offset + sum((n - 1) * s
                                   for n, s in zip(self.shape, self.stride, strict=True)) + 1
        # A weight never has more elements than its storage holds: a zero or overlapping
        # stride would otherwise expand a few bytes of file into gigabytes of copy.
        if (self.offset < 0 or needed > data.size or any(s < 0 for s in self.stride)
                or self.numel > data.size - self.offset):
            raise MammohybridError(
                f"checkpoint tensor of shape {self.shape} and stride {self.stride} addresses "
                f"more than its storage holds ({data.size} elements)")
        return data

    def materialise(self) -> np.ndarray:
        data = self.check()
        if any(n == 0 for n in self.shape):
            return np.zeros(self.shape, dtype=data.dtype)
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.shape,
            strides=tuple(s * data.itemsize for s in self.stride), writeable=False)
        return np.array(view)  # a compact copy, independent of the storage


def _rebuild_tensor(storage: _Storage, storage_offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> _TensorRef:
    """Stands in for ``torch._utils._rebuild_tensor(_v2)``; the extra arguments
    (requires_grad, backward hooks, metadata) do not matter for weights."""
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    """Stands in for ``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of :data:`_ALLOWED_GLOBALS`; storages go through
    ``persistent_load``, whose record layout differs between the two formats."""

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage], legacy: bool) -> None:
        super().__init__(file)
        self._storages = storages
        self._legacy = legacy

    def find_class(self, module: str, name: str) -> Any:  # pickle's API
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refused to load '{module}.{name}': a weights checkpoint holds only tensors, "
                "and this file asks for code to run") from None

    def persistent_load(self, saved_id: Any) -> _Storage:  # pickle's API
        if not isinstance(saved_id, tuple) or not saved_id or _text(saved_id[0]) != "storage":
            raise UnsafeCheckpointError(f"unexpected persistent record {saved_id!r:.80}")
        if self._legacy:  # ('storage', type, key, location, numel, view_metadata)
            storage_type, key, _location, numel, view = saved_id[1:6]
            if view is not None:
                raise MammohybridError("storage views (pre-1.0 torch checkpoints) are not read")
        else:  # ('storage', type, key, location, numel)
            storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unexpected storage type {storage_type!r:.80}")
        key = _text(key)
        return self._storages.setdefault(key, _Storage(key, storage_type, int(numel)))


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The tensors of a ``torch.save``-d state dict as ``{name: numpy array}`` (bfloat16 comes
    back as float32). Raises :class:`UnsafeCheckpointError` for a file asking for any other
    global, :class:`MammohybridError` for a file that is not a torch checkpoint."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            result = _read_zip(path)
        else:
            with path.open("rb") as file:
                result = _read_legacy(file)
        references = _tensor_references(result)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError,
            zipfile.BadZipFile, RecursionError, OverflowError) as error:
        raise MammohybridError(f"{path} is not a readable torch checkpoint: "
                               f"{type(error).__name__}: {error}") from None
    if not references:
        raise MammohybridError(f"{path} holds no tensors")
    for reference in references.values():
        reference.check()
    total = sum(reference.nbytes for reference in references.values())
    limit = MAX_TENSOR_BYTES_PER_FILE_BYTE * path.stat().st_size
    if total > limit:
        raise MammohybridError(f"{path}: its tensors claim {total} bytes, more than "
                               f"{MAX_TENSOR_BYTES_PER_FILE_BYTE}x the file's size; refused")
    return {name: _to_array(reference) for name, reference in references.items()}


def _read_legacy(file: BinaryIO) -> Any:
    def load_next(storages: dict[str, _Storage]) -> Any:
        return _RestrictedUnpickler(file, storages, legacy=True).load()

    if load_next({}) != LEGACY_MAGIC_NUMBER:
        raise MammohybridError("not a torch checkpoint (bad magic number)")
    if load_next({}) != LEGACY_PROTOCOL_VERSION:
        raise MammohybridError("unsupported torch checkpoint protocol")
    system = load_next({})
    if isinstance(system, dict) and not system.get("little_endian", True):
        raise MammohybridError("big-endian torch checkpoints are not read")
    storages: dict[str, _Storage] = {}
    result = load_next(storages)
    keys = load_next({})
    for key in keys:
        storage = storages[_text(key)]
        (numel,) = np.frombuffer(_read_exactly(file, 8), dtype="<i8")
        if numel != storage.numel:
            raise MammohybridError(f"storage {storage.key}: {numel} elements on disk, "
                                   f"{storage.numel} announced")
        dtype = storage.storage_type.dtype
        storage.data = np.frombuffer(_read_exactly(file, int(numel) * dtype.itemsize), dtype)
    return result


def _read_exactly(file: BinaryIO, size: int) -> bytes:
    # Check against what is left before reading: a forged element count must not make us
    # allocate it.
    remaining = os.fstat(file.fileno()).st_size - file.tell()
    if size < 0 or size > remaining:
        raise MammohybridError("the checkpoint is truncated")
    data = file.read(size)
    if len(data) != size:
        raise MammohybridError("the checkpoint is truncated")
    return data


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        pickle_names = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if not pickle_names:
            raise MammohybridError("zip file without a data.pkl: not a torch checkpoint")
        (pickle_name,) = pickle_names
        # torch stores entries uncompressed: none can be larger than the archive (a deflate
        # bomb would be).
        archive_size = path.stat().st_size
        oversized = [i.filename for i in archive.infolist() if i.file_size > archive_size]
        if oversized:
            raise MammohybridError(f"zip entry {oversized[0]} claims more bytes than the file")
        prefix = pickle_name[: -len("data.pkl")]
        if f"{prefix}byteorder" in archive.namelist() \
                and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise MammohybridError("big-endian torch checkpoints are not read")
        storages: dict[str, _Storage] = {}
        result = _RestrictedUnpickler(io.BytesIO(archive.read(pickle_name)), storages,
                                      legacy=False).load()
        for storage in storages.values():
            dtype = storage.storage_type.dtype
            data = np.frombuffer(archive.read(f"{prefix}data/{storage.key}"), dtype)
            if data.size != storage.numel:
                raise MammohybridError(f"storage {storage.key}: {data.size} elements on disk, "
                                       f"{storage.numel} announced")
            storage.data = data
    return result


def _tensor_references(value: Any, prefix: str = "") -> dict[str, _TensorRef]:
    """Tensors of nested dicts (``{"state_dict": {...}}`` included), keys joined by dots; not
    yet copied out of their storages."""
    if isinstance(value, _TensorRef):
        return {prefix: value}
    if isinstance(value, dict):
        tensors: dict[str, _TensorRef] = {}
        for key, item in value.items():
            tensors.update(_tensor_references(item, f"{prefix}.{key}" if prefix else str(key)))
        return tensors
    return {}  # numbers, strings and other metadata beside the tensors


def _to_array(reference: _TensorRef) -> np.ndarray:
    array = reference.materialise()
    if reference.storage.storage_type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array
