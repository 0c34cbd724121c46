"""The FastAPI application behind ``mammohybrid serve``.

Routes:

- ``GET /``: the page (one HTML file with its CSS and JavaScript inline; no external asset);
- ``GET /api/run``: the run panel (configuration, threshold, evaluations, upload limits);
- ``POST /api/predict``: multipart ``files`` -> per file the probability row, the pre-processing
  strip and Grad-CAM overlays, and the CSV ``mammohybrid predict`` writes for them.

Uploads are saved into a temporary folder made for the request and deleted with everything in
it before the response is sent; results travel inside the response (images as ``data:``
URIs), so the server keeps nothing. The request body is bounded (:class:`BodyLimit`, 413
beyond it), so are the bodies of all requests in flight together (503 beyond them), and so is
every file (an error for that file alone). Only the page's own requests are answered
(:mod:`mammohybrid.serve.security`). FastAPI's interactive docs are off: they load scripts
from a CDN.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from mammohybrid.inference import Predictor
from mammohybrid.serve.analysis import Upload, UploadAnalyser, UploadLimits, safe_file_name
from mammohybrid.serve.run_panel import run_panel
from mammohybrid.serve.security import (
    AccessGuard,
    AccessPolicy,
    ASGIApp,
    Message,
    Receive,
    Scope,
    SecurityHeaders,
    Send,
    security_headers,
)

# Bytes copied from an upload at a time.
COPY_CHUNK = 1 << 20
# Requests that bring no body: they pass the upload limits untouched.
BODILESS_METHODS = ("GET", "HEAD", "OPTIONS")


def page_html() -> str:
    """The page, as shipped in the package."""
    return resources.files("mammohybrid.serve").joinpath("static/index.html") \
        .read_text(encoding="utf-8")


class _BodyTooLarge(Exception):
    pass


class _ServerBusy(Exception):
    pass


class BodyLimit:
    """ASGI middleware bounding request bodies before the form parser spools them to disk.

    One body over ``max_bytes`` gets 413, whether its ``Content-Length`` says so or it streams
    past it. All bodies being received or held at once share ``max_bytes_in_flight`` (a
    declared length is reserved whole when the request arrives, a streamed body as it comes)
    and at most ``max_uploads`` requests with a body are in flight; a request beyond either
    gets 503. The limit per request alone would let a few concurrent uploads fill the
    temporary folder.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, max_bytes_in_flight: int,
                 max_uploads: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_bytes_in_flight = max_bytes_in_flight
        self.max_uploads = max_uploads
        # Requests run on one event loop: these change only between its steps.
        self.bytes_in_flight = 0
        self.uploads_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        declared_bytes = int(declared) if declared.isdigit() else 0
        if declared_bytes > self.max_bytes:
            await self._refuse_too_large(scope, send)
            return
        if self.uploads_in_flight >= self.max_uploads \
                or self.bytes_in_flight + declared_bytes > self.max_bytes_in_flight:
            await self._refuse_busy(scope, send)
            return
        self.uploads_in_flight += 1
        self.bytes_in_flight += declared_bytes
        reserved, received = declared_bytes, 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received, reserved
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge
            if received > reserved:
                if self.bytes_in_flight + received - reserved > self.max_bytes_in_flight:
                    raise _ServerBusy
                self.bytes_in_flight += received - reserved
                reserved = received
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except (_BodyTooLarge, _ServerBusy) as refusal:
            if started:
                raise
            if isinstance(refusal, _BodyTooLarge):
                await self._refuse_too_large(scope, send)
            else:
                await self._refuse_busy(scope, send)
        finally:
            self.uploads_in_flight -= 1
            self.bytes_in_flight -= reserved

    async def _refuse_too_large(self, scope: Scope, send: Send) -> None:
        response = JSONResponse({"error": f"the upload is over the server's limit of "
                                          f"{self.max_bytes / 2**20:.0f} MiB in all; send "
                                          "fewer or smaller files"}, status_code=413)
        await response(scope, _no_body, send)

    async def _refuse_busy(self, scope: Scope, send: Send) -> None:
        response = JSONResponse(
            {"error": f"the server is busy with other uploads (at most {self.max_uploads} at "
                      f"once, {self.max_bytes_in_flight / 2**20:.0f} MiB in all); try again "
                      "when they have finished"},
            status_code=503, headers={"Retry-After": "10"})
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def create_app(analyser: UploadAnalyser, panel: dict[str, Any],
               access: AccessPolicy) -> ASGIApp:
    """The application for one loaded run: ``analyser`` predicts, ``panel`` is the run
    panel's content (:func:`mammohybrid.serve.run_panel.run_panel`), ``access`` says whom it
    answers (:mod:`mammohybrid.serve.security`).

    Outermost first: the security headers (on every answer, refusals and server errors
    included), the access checks (before any body is read), the upload limits, the routes.
    """
    limits = analyser.limits
    app = FastAPI(title="mammohybrid", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes,
                       max_bytes_in_flight=limits.max_bytes_in_flight,
                       max_uploads=limits.max_uploads_at_once)
    app.add_middleware(AccessGuard, policy=access)
    # One request at a time through the model: Keras models are not thread-safe, and on a
    # CPU one prediction already uses every core.
    model_lock = threading.Lock()
    page = page_html()

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/run")
    def run_panel_with_limits() -> dict[str, Any]:
        return {**panel, "limits": {"max_file_bytes": limits.max_file_bytes,
                                      "max_files": limits.max_files,
                                      "max_pixels": limits.max_pixels}}

    @app.post("/api/predict")
    async def predict(request: Request) -> JSONResponse:
        try:
            async with request.form(max_files=limits.max_files,
                                    max_fields=limits.max_files) as form:
                files = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
                if not files:
                    return JSONResponse({"error": "no file in the upload (form field 'files')"},
                                        status_code=400)
                folder = Path(tempfile.mkdtemp(prefix="mammohybrid-serve-"))

                def analyse() -> dict[str, Any]:
                    uploads = [_save(item, folder / str(index), limits)
                               for index, item in enumerate(files)]
                    with model_lock:
                        return analyser.analyse(uploads, folder)

                try:
                    # In a worker thread: copying files and the model must not block the
                    # server's event loop.
                    return JSONResponse(await run_in_threadpool(analyse))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
        except HTTPException as error:  # the form parser's: too many files, a malformed form
            return JSONResponse({"error": f"upload refused: {error.detail}"},
                                status_code=error.status_code)

    return SecurityHeaders(app, security_headers(page))


def _save(item: UploadFile, folder: Path, limits: UploadLimits) -> Upload:
    """Copy one upload (spooled by the form parser) into ``folder``, its own so that equal
    names do not collide, unless it is over the size limit. Whatever goes wrong (a name the
    file system refuses, a full disk) costs this file alone; its spooled copy is dropped as
    soon as it is copied, so the upload is not held twice on disk."""
    name = safe_file_name(item.filename or "")
    path = folder / name
    copied = 0
    try:
        folder.mkdir()
        item.file.seek(0)
        with open(path, "wb") as handle:
            while (chunk := item.file.read(COPY_CHUNK)) and copied <= limits.max_file_bytes:
                copied += len(chunk)
                handle.write(chunk)
    except OSError as error:
        path.unlink(missing_ok=True)
        return Upload(name, error=f"{name}: cannot be saved on the server "
                                  f"({error.strerror or type(error).__name__})")
    finally:
        item.file.close()
    if copied > limits.max_file_bytes:
        path.unlink()
        return Upload(name, error=f"{name}: over the server's limit of "
                                  f"{limits.max_file_bytes:,} bytes per file")
    return Upload(name, path)


def app_for_run(predictor: Predictor, run_dir: str | os.PathLike[str],
                limits: UploadLimits | None = None,
                metrics_files: Sequence[str | os.PathLike[str]] = (), *,
                access: AccessPolicy) -> ASGIApp:
    """The application for a run loaded as ``predictor`` from ``run_dir``, answering as
    ``access`` says."""
    analyser = UploadAnalyser(predictor, limits or UploadLimits())
    return create_app(analyser, run_panel(run_dir, predictor, metrics_files), access)
