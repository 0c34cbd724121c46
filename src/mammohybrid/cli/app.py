"""The Typer application, its global ``--debug`` flag and the options commands share.

Commands live in the sibling modules (one per pipeline stage) and stay thin: they parse
arguments, build the config and call the library. Heavy imports (TensorFlow) happen inside the
commands so that ``--help`` is instant.
"""

from __future__ import annotations

import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.config import Config, load_config
from mammohybrid.tensorflow_env import configure_tensorflow
from mammohybrid.workers import usable_cores

app = typer.Typer(
    name="mammohybrid",
    help="Breast-mass classification in mammography after Boudouh & Bouakkaz (2023): "
         "pre-processing, hybrid ResNet50V2 + EfficientNetB7 model, honest evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug
    if debug:
        from mammohybrid.imaging import SHOW_DECODER_OUTPUT_ENV

        # Inherited by worker processes too: decoders may then print to the terminal.
        os.environ[SHOW_DECODER_OUTPUT_ENV] = "1"


def is_debug() -> bool:
    """Whether ``--debug`` was given: commands then leave the libraries' own logging on."""
    return _state["debug"]


ConfigOption = Annotated[
    str | None,
    typer.Option("--config", "-c", help="YAML config file or preset name "
                                         "(see `mammohybrid config presets`)."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="Override a config value, e.g. --set train.epochs=5 (repeatable)."),
]

MlflowOption = Annotated[
    str | None,
    typer.Option("--mlflow", metavar="URI",
                 help="Log parameters, per-epoch metrics and artefacts to MLflow at URI "
                      "(file:/path/mlruns, a folder, sqlite:///mlflow.db, http://host:5000). "
                      "Needs the optional extra: pip install 'mammohybrid[mlflow]'."),
]


MaxPixelsOption = Annotated[
    int | None,
    typer.Option("--max-pixels", min=1, metavar="N",
                 help="Refuse images whose header declares more pixels than this "
                      "(limits.max_image_pixels; default 100 megapixels)."),
]
MaxFileMbOption = Annotated[
    float | None,
    typer.Option("--max-file-mb", min=0.001, metavar="MB",
                 help="Refuse image files larger than this (limits.max_file_mb; default "
                      "1024)."),
]

class Backend(StrEnum):
    """``mammohybrid.inference.backends.BACKENDS`` (listed here: the CLI starts without
    importing inference)."""

    keras = "keras"
    onnxruntime = "onnxruntime"


BackendOption = Annotated[
    Backend,
    typer.Option("--backend", help="What runs the model: keras (the run's model.keras) or "
                                   "onnxruntime (its ONNX export from `mammohybrid export`: the "
                                   "same probabilities to 1e-5, no TensorFlow needed, no "
                                   "Grad-CAM)."),
]

# Exit statuses of commands that handle many items: 0 all done, 3 some failed (each with an
# error row), 1 nothing done (or a fatal error).
EXIT_NOTHING_DONE = 1
EXIT_SOME_FAILED = 3


def limit_overrides(max_pixels: int | None, max_file_mb: float | None) -> list[str]:
    """``--set`` overrides for the ``--max-pixels`` and ``--max-file-mb`` options given."""
    return ([f"limits.max_image_pixels={max_pixels}"] if max_pixels is not None else []) + \
        ([f"limits.max_file_mb={max_file_mb}"] if max_file_mb is not None else [])


def exit_for_items(done: int, failed: int) -> None:
    """End a command over many items with the status its counts call for (see above)."""
    if failed and not done:
        raise typer.Exit(code=EXIT_NOTHING_DONE)
    if failed:
        raise typer.Exit(code=EXIT_SOME_FAILED)


def default_workers() -> int:
    """The default number of worker processes: one per usable CPU core (pre-processing, NLM
    above all, is one core's work per image)."""
    return usable_cores()


def resolve_config(config: str | Path | None, overrides: list[str] | None) -> Config:
    """The config a command runs with: defaults <- file/preset <- --set overrides."""
    return load_config(config, overrides or [])


def _start_tensorflow_environment(debug: bool) -> None:
    """Before TensorFlow is imported (it reads its environment once): oneDNN CPU kernels on
    and, unless ``--debug``, TensorFlow's chatter off the terminal: the C++ start-up lines
    (oneDNN, CPU features, absl) and the Python warnings (``tf.function`` retracing)."""
    configure_tensorflow(quiet=not debug)
    if not debug:
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: errors become one line on stderr and a non-zero exit code.

    Typer's standalone mode handles usage errors, ``--help`` and ``typer.Exit`` codes (it ends
    the process itself); what reaches the ``except`` is an error of ours or of a library.
    """
    from rich.markup import escape

    from mammohybrid.progress import console

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    _start_tensorflow_environment(debug)
    try:
        app(args=argv)
    except Exception as error:  # the one place every error is turned into a line
        if debug or _state["debug"]:
            raise
        message = str(error) or type(error).__name__
        # Escaped: a message may hold brackets, e.g. pip install 'mammohybrid[web]'.
        console.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False,
                      markup=True, soft_wrap=True)
        console.print("(run with --debug for the full traceback)", style="dim")
        sys.exit(1)
