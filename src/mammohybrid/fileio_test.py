import os
import stat

import pytest

from mammohybrid.errors import OutputConflictError
from mammohybrid.fileio import (
    InputTree,
    atomic_open,
    atomic_write_json,
    atomic_write_text,
    refuse_overwriting_inputs,
)


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "kept")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def _png_tree(folder):
    return InputTree(folder, lambda path: path.suffix == ".png")


@pytest.mark.parametrize(("output", "refused"), [
    ("in/a.png", "is a file the command reads in its input folder"),
    ("in/sub/new.png", "is a file the command reads in its input folder"),
    ("in", "is the input folder"),
    (".", "holds the input folder"),
    ("in/notes.csv", None),
    ("elsewhere/a.png", None),
])
def test_outputs_inside_an_input_tree(tmp_path, output, refused):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"x")
    outputs, inputs = [tmp_path / output], [_png_tree(tmp_path / "in")]
    if refused is None:
        refuse_overwriting_inputs(outputs, inputs)
    else:
        with pytest.raises(OutputConflictError, match=refused):
            refuse_overwriting_inputs(outputs, inputs)


def test_an_input_tree_is_compared_through_symbolic_links(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "in")
    with pytest.raises(OutputConflictError, match="reads in its input folder"):
        refuse_overwriting_inputs([tmp_path / "link" / "a.png"], [_png_tree(tmp_path / "in")])


def test_an_output_that_is_no_regular_file_is_refused_untouched(tmp_path):
    """os.replace would swap a named pipe, a folder or a device node (``/dev/full``, as root)
    for a regular file."""
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    with pytest.raises(OutputConflictError, match="is a named pipe \\(FIFO\\), not a regular"):
        atomic_write_text(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(OutputConflictError, match="is a folder, not a regular file"):
        atomic_write_text(tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_an_output_that_is_a_device_or_a_pipe_is_refused_before_any_work(tmp_path):
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    for output, said in [(fifo, "a named pipe \\(FIFO\\)"), ("/dev/full", "a character device")]:
        with pytest.raises(OutputConflictError, match=f"output {output} is {said}, not a regular"):
            refuse_overwriting_inputs([output], [])
    refuse_overwriting_inputs([tmp_path], [])  # a folder output is fine
