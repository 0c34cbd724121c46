"""The FastAPI application behind ``mammohybrid serve``.

Routes:

- ``GET /``: the page (one HTML file with its CSS and JavaScript inline; no external asset);
- ``GET /api/run``: the run summary (configuration, threshold, evaluations, upload limits);
- ``POST /api/predict``: multipart ``files`` -> per file the probability row, the pre-processing
  strip and Grad-CAM overlays, and the CSV ``mammohybrid predict`` writes for them.

Uploads are saved into a temporary folder made for the request and deleted with everything in
it before the response is sent; results travel inside the response (images as ``data:``
URIs), so the server keeps nothing. The request body is bounded (:class:`BodyLimit`, 413
beyond it) and so is every file (an error for that file alone). FastAPI's interactive docs are
off: they load scripts from a CDN.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
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
from mammohybrid.serve.summary import run_summary

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Bytes copied from an upload at a time.
COPY_CHUNK = 1 << 20


def page_html() -> str:
    """The page, as shipped in the package."""
    return resources.files("mammohybrid.serve").joinpath("static/index.html") \
        .read_text(encoding="utf-8")


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request whose body is over ``max_bytes`` gets 413, whether it says
    so in ``Content-Length`` or streams past it, before the form parser spools it to disk."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        response = JSONResponse({"error": f"the upload is over the server's limit of "
                                          f"{self.max_bytes / 2**20:.0f} MiB in all; send "
                                          "fewer or smaller files"}, status_code=413)
        await response(scope, _no_body, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def create_app(analyser: UploadAnalyser, summary: dict[str, Any]) -> FastAPI:
    """The application for one loaded run: ``analyser`` predicts, ``summary`` is the run
    panel's content (:func:`mammohybrid.serve.summary.run_summary`)."""
    limits = analyser.limits
    app = FastAPI(title="mammohybrid", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    # One request at a time through the model: Keras models are not thread-safe, and on a
    # CPU one prediction already uses every core.
    model_lock = threading.Lock()
    page = page_html()

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/run")
    def run_panel() -> dict[str, Any]:
        return {**summary, "limits": {"max_file_bytes": limits.max_file_bytes,
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

    return app


def _save(item: UploadFile, folder: Path, limits: UploadLimits) -> Upload:
    """Copy one upload (spooled by the form parser) into ``folder``, its own so that equal
    names do not collide, unless it is over the size limit."""
    name = safe_file_name(item.filename or "")
    folder.mkdir()
    path = folder / name
    copied = 0
    item.file.seek(0)
    with open(path, "wb") as handle:
        while (chunk := item.file.read(COPY_CHUNK)) and copied <= limits.max_file_bytes:
            copied += len(chunk)
            handle.write(chunk)
    if copied > limits.max_file_bytes:
        path.unlink()
        return Upload(name, error=f"{name}: over the server's limit of "
                                  f"{limits.max_file_bytes:,} bytes per file")
    return Upload(name, path)


def app_for_run(predictor: Predictor, run_dir: str | os.PathLike[str],
                limits: UploadLimits | None = None,
                metrics_files: Sequence[str | os.PathLike[str]] = ()) -> FastAPI:
    """The application for a run loaded as ``predictor`` from ``run_dir``."""
    analyser = UploadAnalyser(predictor, limits or UploadLimits())
    return create_app(analyser, run_summary(run_dir, predictor, metrics_files))
