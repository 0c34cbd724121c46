"""What decoders print is kept off the terminal and handed back, a few lines at most."""

from __future__ import annotations

import os
import warnings

from mammohybrid.imaging.decoder_output import (
    SHOW_DECODER_OUTPUT_ENV,
    decoder_output_kept,
    with_decoder_output,
)


def test_file_descriptor_2_and_warnings_are_kept(capfd, monkeypatch) -> None:
    monkeypatch.delenv(SHOW_DECODER_OUTPUT_ENV, raising=False)
    said: list[str] = []
    with decoder_output_kept(said):
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n")
        warnings.warn("odd header", UserWarning, stacklevel=1)
        for line in range(10):
            os.write(2, f"line {line}\n".encode())
    assert capfd.readouterr().err == ""
    assert said == ["libpng warning: iCCP: known incorrect sRGB profile", "line 0", "line 1",
                    "line 2", "line 3"]


def test_debug_lets_decoders_write_to_the_terminal(capfd, monkeypatch) -> None:
    monkeypatch.setenv(SHOW_DECODER_OUTPUT_ENV, "1")
    said: list[str] = []
    with decoder_output_kept(said):
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n" and said == []


def test_the_error_stays_one_line_with_what_decoders_said() -> None:
    assert with_decoder_output("a.png: cannot decode", []) == "a.png: cannot decode"
    assert with_decoder_output("a.png: bad\nheader", ["one", "two"]) == \
        "a.png: bad header [decoder: one | two]"
