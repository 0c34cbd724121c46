"""``mammohybrid serve``: a local web page over a finished run (a thin layer over
:mod:`mammohybrid.serve`, which needs the optional extra ``mammohybrid[web]``)."""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

from mammohybrid.cli.app import app, limit_overrides
from mammohybrid.errors import MammohybridError

# Modules of the optional extra `web`, as imported (python-multipart is `python_multipart`).
WEB_MODULES = ("fastapi", "uvicorn", "python_multipart")


def is_loopback(host: str) -> bool:
    """True for a host name or address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    filters: Annotated[Optional[str], typer.Option(
        "--filters", metavar="LIST", help="Test-time filter ensemble, as in predict: "
                                          "comma-separated strategies whose probabilities are "
                                          "averaged.")] = None,
    metrics: Annotated[Optional[list[Path]], typer.Option(
        "--metrics", metavar="FILE", help="metrics.json of an evaluation written outside the "
                                          "run directory (repeatable); RUN_DIR/evaluation-*/ "
                                          "are found by themselves.")] = None,
    max_upload_mb: Annotated[float, typer.Option(
        min=0.001, help="Largest file accepted, in MiB.")] = 50.0,
    max_files: Annotated[int, typer.Option(min=1, help="Most files in one upload.")] = 32,
    max_megapixels: Annotated[float, typer.Option(
        min=0.000001, help="Largest decoded image accepted, in millions of pixels.")] = 25.0,
) -> None:
    """Serve a web page to try a trained run on crops: drop DICOM, PNG, JPEG or PGM
    files and see each one's probability and label (as predict gives them), the
    image after every pre-processing step and Grad-CAM per backbone branch; the
    batch as a table and predict's CSV; the run's configuration, threshold and
    evaluations.

    Listens on 127.0.0.1 (this machine only) unless --host says otherwise. Uploads
    live in a temporary folder for the length of their request; nothing is kept.
    Needs the optional extra: pip install 'mammohybrid[web]'.
    """
    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise MammohybridError(f"mammohybrid serve needs the optional extra 'web' "
                               f"({', '.join(missing)} missing): pip install 'mammohybrid[web]'")
    check_can_listen(host, port)
    max_pixels = max(1, round(max_megapixels * 1e6))

    import uvicorn

    from mammohybrid.config import with_overrides
    from mammohybrid.imaging import set_read_limits
    from mammohybrid.inference import Predictor, parse_strategies
    from mammohybrid.serve.analysis import UploadLimits
    from mammohybrid.serve.app import app_for_run

    limits = UploadLimits(max_file_bytes=max(1, round(max_upload_mb * 2**20)),
                          max_files=max_files, max_pixels=max_pixels)
    with Predictor.from_run(run_dir, parse_strategies(filters)) as predictor:
        # Every read - the Predictor's and the pipeline strip's - refuses larger images from
        # their header, before decoding them (imaging.decode_image).
        predictor.config = with_overrides(predictor.config, limit_overrides(max_pixels, None))
        set_read_limits(predictor.config.limits)
        web_app = app_for_run(predictor, run_dir, limits, metrics or [])
        if not is_loopback(host):
            typer.echo(f"warning: listening on {host}, not this machine only: whoever reaches "
                       f"port {port} can upload images and read the run's configuration "
                       "(there is no authentication)", err=True)
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"serving {run_dir} at http://{shown}:{port}/ (Ctrl+C stops)")
        uvicorn.run(web_app, host=host, port=port, log_level="warning")
