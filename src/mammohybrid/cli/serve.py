"""``mammohybrid serve``: a local web page over a finished run (a thin layer over
:mod:`mammohybrid.serve`, which needs the optional extra ``mammohybrid[web]``)."""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import socket
from pathlib import Path
from typing import Annotated

import typer

from mammohybrid.cli.app import Backend, BackendOption, app, limit_overrides
from mammohybrid.errors import MammohybridError

# Modules of the optional extra `web`, as imported (python-multipart is `python_multipart`).
WEB_MODULES = ("fastapi", "uvicorn", "python_multipart")
# Where --token may come from instead of the command line.
TOKEN_ENV = "MAMMOHYBRID_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """True for a host name or address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_warnings(host: str, port: int, token: bool) -> list[str]:
    """What the user must know about who can reach the page."""
    warnings = []
    if not is_loopback(host):
        warnings.append(
            f"listening on {host}, not this machine only: "
            + ("the token is all that keeps others on the network out, and it travels "
               "unencrypted (plain HTTP)" if token else
               f"whoever reaches port {port} can upload images and read the run's "
               "configuration")
            + "; other machines must use a host name given with --allow-host")
    if not token:
        warnings.append("--no-token: every program and web page that can reach the port "
                        "under an allowed host name can use it")
    return warnings


def finite_amount(value: float, unit: float, option: str, unit_name: str) -> int:
    """``value`` units as a whole number (at least 1), or a one-line error for infinity or
    NaN, which no limit can be."""
    if not math.isfinite(value):
        raise MammohybridError(f"{option} {value}: give a finite number of {unit_name}")
    return max(1, round(value * unit))


def check_can_listen(host: str, port: int) -> None:
    """Raise a one-line error now if ``host:port`` cannot be listened on (taken, or no such
    address here), rather than after the model has loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, port), family=family):
            pass
    except OSError as error:
        raise MammohybridError(f"cannot listen on {host} port {port}: "
                               f"{error.strerror or error} (another server there? try "
                               "another --port)") from None


@app.command("serve")
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (from train).")],
    host: Annotated[str, typer.Option(help="Address to listen on; anything but a loopback "
                                           "address lets other machines in.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    filters: Annotated[str | None, typer.Option(
        "--filters", metavar="LIST", help="Test-time filter ensemble, as in predict: "
                                          "comma-separated strategies whose probabilities are "
                                          "averaged.")] = None,
    metrics: Annotated[list[Path] | None, typer.Option(
        "--metrics", metavar="FILE", help="metrics.json of an evaluation written outside the "
                                          "run directory (repeatable); RUN_DIR/evaluation-*/ "
                                          "are found by themselves.")] = None,
    max_upload_mb: Annotated[float, typer.Option(
        min=0.001, help="Largest file accepted, in MiB.")] = 50.0,
    max_files: Annotated[int, typer.Option(min=1, help="Most files in one upload.")] = 32,
    max_megapixels: Annotated[float, typer.Option(
        min=0.000001, help="Largest decoded image accepted, in millions of pixels.")] = 25.0,
    allow_host: Annotated[list[str] | None, typer.Option(
        "--allow-host", metavar="NAME", help="Another host name the page may be opened by "
                                             "(repeatable); 127.0.0.1, localhost, [::1] and "
                                             "--host are always allowed.")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", metavar="VALUE", envvar=TOKEN_ENV,
        help=f"The access token (default: a new random one, shown in the address printed at "
             f"start; also from ${TOKEN_ENV}, which other users cannot read in the process "
             "list).")] = None,
    no_token: Annotated[bool, typer.Option(
        "--no-token", help="Ask for no token: anyone who can reach the port may use the "
                           "page.")] = False,
    backend: BackendOption = Backend.keras,
) -> None:
    """Serve a web page to try a trained run on crops: drop DICOM, PNG, JPEG or PGM
    files and see each one's probability and label (as predict gives them), the
    image after every pre-processing step and Grad-CAM per backbone branch; the
    batch as a table and predict's CSV; the run's configuration, threshold and
    evaluations.

    Listens on 127.0.0.1 (this machine only) unless --host says otherwise, and
    answers only its own page: requests naming another host, coming from another
    web site, or without the access token of the printed address are refused.
    Uploads live in a temporary folder for the length of their request; nothing
    is kept. Needs the optional extra: pip install 'mammohybrid[web]'.

    With --backend onnxruntime the run's ONNX export (RUN_DIR/model.onnx)
    computes the probabilities, without TensorFlow; the page then has no
    Grad-CAM.
    """
    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MammohybridError(f"mammohybrid serve needs the optional extra 'web' "
                               f"({', '.join(missing)} missing): pip install 'mammohybrid[web]'")
    if not run_dir.is_dir():
        raise MammohybridError(f"{run_dir}: serve needs a run directory (the page shows its "
                               "configuration, evaluations and model card)")
    if no_token and token is not None:
        raise MammohybridError("--token and --no-token exclude each other")
    if token is not None and not token.strip():
        raise MammohybridError("--token is empty: give a value, or --no-token")
    max_upload_bytes = finite_amount(max_upload_mb, 2**20, "--max-upload-mb", "MiB")
    max_pixels = finite_amount(max_megapixels, 1e6, "--max-megapixels", "million pixels")
    check_can_listen(host, port)

    import uvicorn

    from mammohybrid.inference import Predictor, parse_strategies
    from mammohybrid.serve import AccessPolicy, UploadLimits, app_for_run, new_token

    limits = UploadLimits(max_file_bytes=max_upload_bytes, max_files=max_files,
                          max_pixels=max_pixels)
    access = AccessPolicy.for_server(host, allow_host or [],
                                     None if no_token else (token or new_token()).strip())
    # Every read - the Predictor's and the pipeline strip's, both with the predictor's
    # config.limits - refuses larger images from their header, before decoding them
    # (imaging.decode_image).
    with Predictor.from_run(run_dir, parse_strategies(filters), backend=backend.value,
                            overrides=limit_overrides(max_pixels, None)) as predictor:
        web_app = app_for_run(predictor, run_dir, limits, metrics or [], access=access)
        for warning in access_warnings(host, port, access.token is not None):
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"serving {run_dir} at {access.address(host, port)} (Ctrl+C stops)")
        uvicorn.run(web_app, host=host, port=port, log_level="warning")
