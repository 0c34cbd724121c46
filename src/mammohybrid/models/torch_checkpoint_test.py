"""Tests of the torch-free, restricted checkpoint reader: values written by torch itself in
both formats (``tools/torch_reference_outputs.py``), refused pickles, broken files."""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mammohybrid.errors import MammohybridError
from mammohybrid.models.torch_checkpoint import UnsafeCheckpointError, read_state_dict

TESTDATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_reads_the_values_torch_saved(fmt: str) -> None:
    tensors = read_state_dict(TESTDATA / f"torch_checkpoint_{fmt}.pt")
    assert set(tensors) == {"matrix", "transposed", "shared_view", "shared_base", "count",
                            "half", "bfloat", "flags"}
    np.testing.assert_array_equal(tensors["matrix"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert tensors["matrix"].dtype == np.float32
    np.testing.assert_array_equal(tensors["transposed"],
                                  np.arange(6, dtype=np.float64).reshape(2, 3).T)
    assert tensors["transposed"].dtype == np.float64
    np.testing.assert_array_equal(tensors["shared_view"], np.arange(4, 10).reshape(2, 3))
    np.testing.assert_array_equal(tensors["shared_base"], np.arange(12))
    assert tensors["count"].shape == () and int(tensors["count"]) == 7
    np.testing.assert_array_equal(tensors["half"], np.array([0.5, -2.0], dtype=np.float16))
    np.testing.assert_array_equal(tensors["bfloat"], np.array([1.5, -3.0], dtype=np.float32))
    np.testing.assert_array_equal(tensors["flags"], [True, False])


# The classic payload: os.system("echo pwned"), as protocol-0 opcodes.
RUNS_CODE = b"cos\nsystem\n(S'echo pwned'\ntR."
LEGACY_HEADER = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
                 + pickle.dumps(1001, protocol=2)
                 + pickle.dumps({"little_endian": True}, protocol=2))


@pytest.mark.parametrize("content", [RUNS_CODE, LEGACY_HEADER + RUNS_CODE],
                         ids=["bare", "after-a-valid-header"])
def test_a_pickle_that_runs_code_is_refused(content: bytes, tmp_path: Path,
                                            monkeypatch) -> None:
    import os

    calls: list[str] = []
    monkeypatch.setattr(os, "system", calls.append)
    malicious = tmp_path / "evil.pt"
    malicious.write_bytes(content)
    with pytest.raises(UnsafeCheckpointError, match=r"refused to load 'os\.system'"):
        read_state_dict(malicious)
    assert calls == []  # nothing ran


def test_the_refusal_holds_inside_a_zip_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(
            {"weight": __import__("collections").Counter("x")}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"collections\.Counter"):
        read_state_dict(path)


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_bytes(b"these are not weights")
    with pytest.raises(MammohybridError, match="not a readable torch checkpoint"):
        read_state_dict(text)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((TESTDATA / "torch_checkpoint_legacy.pt").read_bytes()[:-20])
    with pytest.raises(MammohybridError, match="truncated"):
        read_state_dict(truncated)


def test_a_forged_storage_size_is_refused_before_any_allocation(tmp_path: Path) -> None:
    source = TESTDATA / "torch_checkpoint_legacy.pt"
    with source.open("rb") as file:  # skip the five pickles (parsed, never executed)
        for _ in range(5):
            for _operation in pickletools.genops(file):
                pass
        first_size_field = file.tell()
    content = bytearray(source.read_bytes())
    content[first_size_field:first_size_field + 8] = np.int64(2**60).tobytes()
    forged = tmp_path / "forged.pt"
    forged.write_bytes(bytes(content))
    with pytest.raises(MammohybridError, match="1152921504606846976 elements on disk"):
        read_state_dict(forged)
