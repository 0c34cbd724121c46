"""What image decoders print (C libraries on file descriptor 2, pydicom's warnings) kept off the
terminal and handed back as lines, for a row's warnings or an error message."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator

# Set (to anything) to let decoders write to the terminal: the CLI's --debug does.
SHOW_DECODER_OUTPUT_ENV = "MAMMOHYBRID_SHOW_DECODER_OUTPUT"
# What a decoder may say about one file that is kept for its row.
_MAX_DECODER_LINES, _MAX_DECODER_BYTES = 5, 8192


@contextlib.contextmanager
def decoder_output_kept(lines: list[str]) -> Iterator[None]:
    """Keep what decoders print on file descriptor 2 (C libraries) and warn (pydicom) in the
    block; append it to ``lines`` when the block ends. A no-op under ``--debug``."""
    if os.environ.get(SHOW_DECODER_OUTPUT_ENV):
        yield
        return
    # File descriptor 2 and the warning filters are the process's: threads (a server calling
    # Predictor from several) take turns, or one would restore another's redirection.
    with _decoder_output_lock:
        yield from _kept_output(lines)


_decoder_output_lock = threading.RLock()


def _kept_output(lines: list[str]) -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(_MAX_DECODER_BYTES).decode("utf-8", errors="replace")
            said = [line.strip() for line in text.splitlines() if line.strip()]
            said += [f"{w.category.__name__}: {w.message}" for w in caught]
            lines.extend(list(dict.fromkeys(said))[:_MAX_DECODER_LINES])


def with_decoder_output(message: str, said: list[str]) -> str:
    """The error's one line: decoders' messages appended, line breaks folded."""
    message = f"{message} [decoder: {' | '.join(said)}]" if said else message
    return " ".join(message.splitlines())
