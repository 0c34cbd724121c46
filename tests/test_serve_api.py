"""``mammohybrid serve``'s HTTP API on a run directory made by ``train``: every route, the
results equal ``mammohybrid predict``'s (CSV byte for byte), every kind of bad upload gets its
own error while the others are predicted, the limits hold, nothing is left on disk, and the
page loads nothing from outside."""

from __future__ import annotations

import json
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mammohybrid.cli import app, main
from mammohybrid.cli.serve import is_loopback
from mammohybrid.data.synth import render_roi_crop
from mammohybrid.evaluation.evaluate import metrics_report
from mammohybrid.imaging import write_dicom, write_png
from mammohybrid.inference import COLUMNS, Predictor
from mammohybrid.serve.analysis import UploadLimits, safe_file_name
from mammohybrid.serve.app import app_for_run, page_html
from mammohybrid.serve.headless import free_port
from mammohybrid.serve.security import AccessPolicy

fastapi_testclient = pytest.importorskip("fastapi.testclient", reason="needs mammohybrid[web]")

# Small limits, so that oversize uploads are cheap to make.
LIMITS = UploadLimits(max_file_bytes=300_000, max_files=6, max_pixels=2_000_000)
# The Grad-CAM head runs in float32 apart from the model's own forward pass.
GRADCAM_TOLERANCE = 1e-5
# The address the tests' server is opened by, and its access token.
ORIGIN = "http://127.0.0.1:8000"
TOKEN = "test-token"
ACCESS = AccessPolicy.for_server("127.0.0.1", token=TOKEN)


def serving(predictor: Predictor, run_dir: Path, limits: UploadLimits = LIMITS,
            access: AccessPolicy = ACCESS, **options):
    """A test client of the application, making its requests as the page does: to the
    server's own address, with the token."""
    application = app_for_run(predictor, run_dir, limits, access=access, **options)
    return fastapi_testclient.TestClient(application, base_url=ORIGIN,
                                         headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Predictor:
    with Predictor.from_run(run_dir) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def client(predictor: Predictor, run_dir: Path):
    with serving(predictor, run_dir) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic crops of each accepted kind, and bad files of each kind."""
    folder = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(3)
    malignant = render_roi_crop(rng, 80, malignant=True)
    files = {
        "dicom": write_dicom(folder / "mass.dcm", malignant, bits_stored=12),
        "png": write_png(folder / "benign.png",
                         (render_roi_crop(rng, 60, malignant=False) // 257).astype(np.uint8)),
        "pgm": folder / "mass16.pgm",
        "jpeg": folder / "mass8.jpg",
        "tiny": write_png(folder / "tiny.png", np.full((6, 7), 220, np.uint8)),
        "dark": write_png(folder / "dark.png", np.full((40, 40), 50, np.uint8)),
        "text": folder / "notes.png",
        "corrupt_dicom": folder / "corrupt.dcm",
        "bomb": folder / "bomb.png",
        "oversize": folder / "huge.pgm",
    }
    cv2.imwrite(str(files["pgm"]), render_roi_crop(rng, 50, malignant=True))
    cv2.imwrite(str(files["jpeg"]), (render_roi_crop(rng, 70, malignant=False) // 257)
                .astype(np.uint8))
    files["text"].write_text("this is no image\n")
    data = files["dicom"].read_bytes()
    files["corrupt_dicom"].write_bytes(data[: len(data) // 3])
    files["bomb"].write_bytes(png_declaring(100_000, 100_000))
    # A valid image, but more bytes than LIMITS allow per file.
    cv2.imwrite(str(files["oversize"]), rng.integers(0, 65535, (400, 400), dtype=np.uint16))
    assert files["oversize"].stat().st_size > LIMITS.max_file_bytes
    return files


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` 8-bit grey pixels (a
    decompression bomb's header; its data is one compressed row)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))


def upload(client, paths: list[Path]):
    """POST ``paths`` to /api/predict as the page does."""
    files = [("files", (path.name, path.read_bytes(), "application/octet-stream"))
             for path in paths]
    return client.post("/api/predict", files=files)


def predict_command_csv(run: Path, paths: list[Path], tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> str:
    """The CSV ``mammohybrid predict`` writes for ``paths``, run in their folder (so that the
    ``path`` column holds the bare names, as the page's does)."""
    monkeypatch.chdir(paths[0].parent)
    out = tmp_path / "predict.csv"
    result = CliRunner().invoke(app, ["predict", str(run), *(p.name for p in paths),
                                      "--out", str(out), "--workers", "0"])
    assert result.exit_code in (0, 3), result.output
    return out.read_text(encoding="utf-8")


def test_results_are_predicts_and_the_csv_is_byte_identical(client, crops, run_dir, predictor,
                                                            tmp_path, monkeypatch) -> None:
    paths = [crops[name] for name in ("dicom", "png", "pgm", "jpeg")]
    response = upload(client, paths)
    assert response.status_code == 200, response.text
    answer = response.json()

    expected = predict_command_csv(run_dir, paths, tmp_path, monkeypatch)
    assert answer["csv"] == expected
    frame = pd.read_csv(tmp_path / "predict.csv", keep_default_na=False)
    assert [r["name"] for r in answer["results"]] == [p.name for p in paths]
    for result, (_, row) in zip(answer["results"], frame.iterrows(), strict=True):
        assert result["error"] == ""
        assert result["probability"] == row["probability"]
        assert result["probability_text"] == f"{row['probability']:.4f}"
        assert result["label"] == row["label"] and result["prediction"] == row["prediction"]
        assert result["threshold"] == predictor.threshold.value
        assert result["kept_fraction"] == pytest.approx(row["kept_fraction"])


def test_each_result_has_the_pipeline_strip_and_gradcam(client, crops, predictor) -> None:
    result = upload(client, [crops["dicom"]]).json()["results"][0]
    # The tiny run uses the gaussian strategy.
    assert [step["title"] for step in result["steps"]] == [
        "input (8-bit)", "NLM", "ROI", "Gaussian filter", "CLAHE", "model input"]
    roi = result["steps"][2]["detail"]
    assert f"kept: {result['kept_fraction']:.1%}" in roi and "pixels > 193" in roi
    assert result["steps"][-1]["detail"].startswith(f"{predictor.input_size}x")
    for step in result["steps"]:
        assert _decoded(step["image"]).size > 0
    maps = result["gradcam"]["maps"]
    assert [m["name"] for m in maps] == predictor.gradcam.names
    base = _decoded(result["gradcam"]["base"])
    assert all(_decoded(m["image"]).shape[:2] == base.shape[:2] for m in maps)
    # Grad-CAM explains the very input the model saw: its own pass gives the same probability.
    assert result["gradcam"]["probability"] == pytest.approx(result["probability"],
                                                             abs=GRADCAM_TOLERANCE)


def _decoded(uri: str) -> np.ndarray:
    import base64

    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    image = cv2.imdecode(np.frombuffer(base64.b64decode(uri[len(prefix):]), np.uint8),
                         cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def test_bad_uploads_get_their_own_error_and_the_rest_is_predicted(client, crops, run_dir,
                                                                   tmp_path, monkeypatch) -> None:
    names = ["text", "png", "corrupt_dicom", "bomb", "oversize"]
    response = upload(client, [crops[name] for name in names])
    assert response.status_code == 200, response.text
    results = {crops[n].name: r for n, r in zip(names, response.json()["results"], strict=True)}
    assert results["benign.png"]["error"] == "" and results["benign.png"]["probability"] >= 0
    for name in ("notes.png", "corrupt.dcm", "bomb.png", "huge.pgm"):
        assert results[name]["error"].startswith(f"{name}:"), results[name]
        assert results[name]["probability"] is None and "steps" not in results[name]
    assert "over the server's limit" in results["huge.pgm"]["error"]
    # The files predict can read give predict's error rows too.
    readable = [crops[n] for n in ("text", "png", "corrupt_dicom", "bomb")]
    expected = pd.read_csv(pd.io.common.StringIO(
        predict_command_csv(run_dir, readable, tmp_path, monkeypatch)), keep_default_na=False)
    got = pd.read_csv(pd.io.common.StringIO(response.json()["csv"]), keep_default_na=False)
    assert list(got["path"]) == [crops[n].name for n in names]
    pd.testing.assert_frame_equal(got.iloc[:4].reset_index(drop=True), expected)
    # The server goes on serving.
    assert upload(client, [crops["png"]]).json()["results"][0]["error"] == ""


def test_pixel_limit(predictor, run_dir, crops) -> None:
    limits = UploadLimits(max_pixels=60 * 60)
    with serving(predictor, run_dir, limits) as small:
        results = upload(small, [crops["dicom"], crops["tiny"]]).json()["results"]
    assert "over the server's limit of 3,600" in results[0]["error"]
    assert results[1]["error"] == ""
    # Every file refused: the CSV still has predict's columns, one error row.
    with serving(predictor, run_dir, limits) as small:
        answer = upload(small, [crops["dicom"]]).json()
    frame = pd.read_csv(pd.io.common.StringIO(answer["csv"]), keep_default_na=False)
    assert list(frame.columns) == answer["columns"] == COLUMNS
    assert list(frame["path"]) == ["mass.dcm"] and frame["error"][0].startswith("mass.dcm:")


def test_filter_ensemble_is_predicts(run_dir, crops, tmp_path, monkeypatch) -> None:
    paths = [crops["dicom"], crops["png"]]
    with Predictor.from_run(run_dir, ["median", "wiener"]) as ensemble, \
            serving(ensemble, run_dir) as client:
        answer = upload(client, paths).json()
        run = client.get("/api/run").json()
    assert run["strategies"] == ["median", "wiener"] and run["training_strategy"] == "gaussian"
    monkeypatch.chdir(paths[0].parent)
    out = tmp_path / "ensemble.csv"
    result = CliRunner().invoke(app, ["predict", str(run_dir), *(p.name for p in paths),
                                      "--out", str(out), "--workers", "0",
                                      "--filters", "median,wiener"])
    assert result.exit_code == 0, result.output
    assert answer["csv"] == out.read_text(encoding="utf-8")
    for result in answer["results"]:
        assert set(result["strategies"]) == {"median", "wiener"}
        assert result["probability"] == pytest.approx(np.mean(list(result["strategies"]
                                                                   .values())))
        # The strip and Grad-CAM follow the primary strategy.
        assert "median filter" in [step["title"] for step in result["steps"]]


def test_the_onnx_backend_serves_the_same_rows_without_gradcam(client, run_dir, crops,
                                                               tmp_path) -> None:
    from mammohybrid.inference.export import PARITY_TOLERANCE, export_run

    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    export_run(copy, "onnx")
    paths = [crops["dicom"], crops["png"], crops["text"]]
    expected = upload(client, paths).json()["results"]
    with Predictor.from_run(copy, backend="onnxruntime") as onnx_predictor, \
            serving(onnx_predictor, copy) as onnx_client:
        results = upload(onnx_client, paths).json()["results"]
        assert ["backend", "onnxruntime"] in onnx_client.get("/api/run").json()["facts"]
    for got, want in zip(results, expected, strict=True):
        assert got["probability"] == pytest.approx(want["probability"], abs=PARITY_TOLERANCE)
        assert (got["label"], got["error"]) == (want["label"], want["error"])
        if not want["error"]:
            assert [s["title"] for s in got["steps"]] == [s["title"] for s in want["steps"]]
            assert "gradcam" not in got
            assert got["gradcam_error"].startswith("Grad-CAM unavailable: Grad-CAM is a Keras "
                                                   "feature")


# The page on an ONNX export, in a process without TensorFlow: one upload and the run panel.
SERVE_ONNX = """
import json, sys
from fastapi.testclient import TestClient
from mammohybrid.inference import Predictor
from mammohybrid.serve.app import app_for_run
from mammohybrid.serve.security import AccessPolicy

run, crop = sys.argv[1:]
predictor = Predictor.from_run(run, backend="onnxruntime")
access = AccessPolicy.for_server("127.0.0.1", token="t")
client = TestClient(app_for_run(predictor, run, access=access), base_url="http://127.0.0.1:8000",
                    headers={"Authorization": "Bearer t"})
answer = client.post("/api/predict", files=[("files", ("crop.png", open(crop, "rb").read()))])
result, = answer.json()["results"]
panel = client.get("/api/run").json()
print(json.dumps({"probability": result["probability"], "gradcam": result.get("gradcam_error"),
                  "card": panel["model_card"][:12], "imported": [name for name in sys.modules
                  if name.partition(".")[0] in ("tensorflow", "keras")]}))
"""


@pytest.mark.slow
def test_the_page_on_an_onnx_export_needs_no_tensorflow(client, run_dir, crops, tmp_path,
                                                        without_tensorflow) -> None:
    from mammohybrid.inference.export import PARITY_TOLERANCE, export_run

    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    export_run(copy, "onnx")
    completed = subprocess.run([sys.executable, "-c", SERVE_ONNX, str(copy), str(crops["png"])],
                               env=without_tensorflow, capture_output=True, text=True,
                               timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    seen = json.loads(completed.stdout.strip().splitlines()[-1])
    expected, = upload(client, [crops["png"]]).json()["results"]
    assert seen["probability"] == pytest.approx(expected["probability"], abs=PARITY_TOLERANCE)
    assert "Grad-CAM is a Keras feature" in seen["gradcam"]
    assert seen["card"] == "# Model card" and seen["imported"] == []


def test_a_decoder_that_raises_a_base_exception_fails_its_file_only(client, crops,
                                                                   monkeypatch) -> None:
    from mammohybrid.serve import analysis

    class DecoderPanic(BaseException):
        """What a native extension may raise: not an Exception."""

    real = analysis.read_image

    def read_image(path: Path, limits=None) -> np.ndarray:
        if Path(path).name == "mass.dcm":
            raise DecoderPanic("decoder state corrupted")
        return real(path, limits)

    monkeypatch.setattr(analysis, "read_image", read_image)
    results = upload(client, [crops["dicom"], crops["png"]]).json()["results"]
    assert results[0]["error"] == "mass.dcm: DecoderPanic: decoder state corrupted"
    assert results[1]["error"] == "" and results[1]["probability"] is not None


def test_tiny_images_and_empty_rois_are_warned_about(client, crops) -> None:
    result = upload(client, [crops["tiny"]]).json()["results"][0]
    assert result["error"] == ""
    assert any(w.startswith("tiny image: 7x6 px") for w in result["warnings"])
    dark = upload(client, [crops["dark"]]).json()["results"][0]
    assert dark["roi_empty"] is True and dark["kept_fraction"] == 0
    assert any(w.startswith("ROI empty: no pixel above 193") for w in dark["warnings"])


def test_request_limits(client, crops, tmp_path) -> None:
    assert client.post("/api/predict", files=[]).status_code == 400
    too_many = upload(client, [crops["png"]] * (LIMITS.max_files + 1))
    assert too_many.status_code == 400 and "Too many files" in too_many.json()["error"]
    body = tmp_path / "big.bin"
    body.write_bytes(b"\x00" * (LIMITS.max_request_bytes + 1))
    too_big = upload(client, [body])
    assert too_big.status_code == 413 and "over the server's limit" in too_big.json()["error"]


def test_a_streamed_body_over_the_limit_gets_413() -> None:
    """A body without Content-Length is cut off as soon as it passes the bound."""
    import asyncio

    from mammohybrid.serve.app import BodyLimit

    async def reader(scope, receive, send) -> None:  # an ASGI app
        while (await receive()).get("more_body"):
            pass
        raise AssertionError("the whole body was read")

    chunks = [{"type": "http.request", "body": b"x" * 100, "more_body": True}] * 5
    sent: list[dict] = []

    async def receive() -> dict:
        return chunks.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "headers": []}
    asyncio.run(BodyLimit(reader, max_bytes=250, max_bytes_in_flight=10_000,
                          max_uploads=2)(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert len(chunks) == 2  # stopped at the third chunk


def test_nothing_is_left_on_disk(client, crops, tmp_path, monkeypatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert upload(client, [crops["png"], crops["text"]]).status_code == 200
    assert list(scratch.iterdir()) == []


def test_run_panel(client, predictor, run_dir, tmp_path) -> None:
    run = client.get("/api/run").json()
    threshold = json.loads((run_dir / "threshold.json").read_text())
    assert run["threshold"] == threshold
    assert run["config_yaml"] == (run_dir / "config.yaml").read_text()
    assert ["pre-processing", "gaussian"] in run["facts"]
    assert ["backend", "keras"] in run["facts"]
    assert run["evaluations"] == []
    assert run["model_card"].startswith("# Model card") and "Not evaluated yet" in run["model_card"]
    assert run["limits"] == {"max_file_bytes": LIMITS.max_file_bytes,
                             "max_files": LIMITS.max_files, "max_pixels": LIMITS.max_pixels}

    # An evaluation's metrics.json, with its bootstrap intervals, is shown (in a copy: other
    # tests share the run).
    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    folder = copy / "evaluation-test"
    folder.mkdir()
    predictions = pd.DataFrame({"patient": [f"P{i // 2}" for i in range(40)],
                                "label": [i % 2 for i in range(40)],
                                "probability": np.linspace(0.05, 0.95, 40)})
    config = predictor.config.evaluate.model_copy(update={"bootstrap_samples": 200})
    metrics = metrics_report(predictions, predictor.threshold, config, 0, "test")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    with serving(predictor, copy) as fresh:
        summary = fresh.get("/api/run").json()
    evaluation, = summary["evaluations"]
    assert evaluation["split"] == "test" and evaluation["n"] == 40
    # The model card shows the same evaluation.
    assert "**test split**: 40 images of 20 patients" in summary["model_card"]
    assert f"| ROC AUC | {metrics['auc']:.3f} |" in summary["model_card"]
    auc = next(row for row in evaluation["metrics"] if row["metric"] == "ROC AUC")
    assert auc["value"] == metrics["auc"]
    assert [auc["low"], auc["high"]] == metrics["auc_ci95"]


def test_the_page_loads_nothing_from_outside(client) -> None:
    response = client.get("/")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    page = response.text
    assert page == page_html()
    # No absolute or protocol-relative URL anywhere: not in markup, CSS or script.
    assert re.findall(r"(?:[a-z][a-z0-9+.-]*:)?//[\w.-]+\.\w", page, re.IGNORECASE) == []
    assert "@import" not in page

    class References(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.found += [value or "" for name, value in attrs if name in ("src", "href")]

    parser = References()
    parser.feed(page)
    assert parser.found, "the parser found no reference at all"
    assert all(ref.startswith(("data:", "#")) for ref in parser.found), parser.found
    for url in re.findall(r"url\(([^)]*)\)", page):
        assert url.strip("'\" ").startswith("data:"), url
    for url in re.findall(r"fetch\(\s*['\"`]([^'\"`]+)", page):
        assert url.startswith("/api/"), url


def test_interactive_docs_are_off(client) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


def test_missing_web_extra_is_one_line(run_dir, monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fastapi" else real(name, *a))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(run_dir)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "pip install 'mammohybrid[web]'" in error and "Traceback" not in error


def _serve_command(run_dir: Path, monkeypatch: pytest.MonkeyPatch, *options: str) -> dict:
    """``mammohybrid serve RUN_DIR OPTIONS`` up to the point it would start serving: what it
    hands uvicorn (``app``, ``host``, ``port``) and the ``predictor`` it serves."""
    import uvicorn

    from mammohybrid.serve import app as serve_app

    served: dict = {}
    real_app_for_run = serve_app.app_for_run

    def app_for_run(predictor, *args, **kwargs):
        served["predictor"] = predictor
        return real_app_for_run(predictor, *args, **kwargs)

    monkeypatch.setattr(serve_app, "app_for_run", app_for_run)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(run_dir), *options])
    assert exit_info.value.code == 0
    return served


@pytest.mark.parametrize(("host", "warned"), [("127.0.0.1", False), ("0.0.0.0", True)])
def test_the_command_serves_the_run_and_warns_off_localhost(run_dir, monkeypatch, capsys,
                                                             host: str, warned: bool) -> None:
    port = free_port()
    served = _serve_command(run_dir, monkeypatch, "--host", host, "--port", str(port),
                            "--max-upload-mb", "2", "--max-files", "3", "--max-megapixels",
                            "0.5")
    output = capsys.readouterr()
    address = re.search(rf"serving {re.escape(str(run_dir))} at (http://\S+) ", output.out)
    assert address, output.out
    assert address[1].startswith(f"http://{host}:{port}/?token=")
    token = address[1].split("?token=")[1]
    assert len(token) >= 32
    assert ("warning: listening on 0.0.0.0" in output.err) is warned
    assert (served["host"], served["port"]) == (host, port)
    # The predictor was built with the limit: its reads refuse larger images.
    assert served["predictor"].config.limits.max_image_pixels == 500_000
    with fastapi_testclient.TestClient(served["app"], base_url=f"http://{host}:{port}") \
            as client:
        assert client.get("/api/run").status_code == 403
        # The printed address sets the token's cookie; the page's requests then carry it.
        page = client.get(address[1])
        assert page.status_code == 200 and page.text == page_html()
        assert client.get("/api/run").json()["limits"] == {
            "max_file_bytes": 2 * 2**20, "max_files": 3, "max_pixels": 500_000}


def test_the_command_takes_a_token_or_none(run_dir, monkeypatch, capsys) -> None:
    port = free_port()
    served = _serve_command(run_dir, monkeypatch, "--port", str(port), "--token", "chosen")
    assert f"at http://127.0.0.1:{port}/?token=chosen " in capsys.readouterr().out
    with fastapi_testclient.TestClient(served["app"], base_url=f"http://127.0.0.1:{port}") \
            as client:
        assert client.get("/api/run").status_code == 403
        assert client.get("/api/run", headers={"Authorization": "Bearer chosen"}) \
            .status_code == 200

    monkeypatch.setenv("MAMMOHYBRID_SERVE_TOKEN", "from-the-environment")
    _serve_command(run_dir, monkeypatch, "--port", str(port))
    assert "?token=from-the-environment " in capsys.readouterr().out
    monkeypatch.delenv("MAMMOHYBRID_SERVE_TOKEN")

    served = _serve_command(run_dir, monkeypatch, "--port", str(port), "--no-token",
                            "--allow-host", "mammo.lan")
    output = capsys.readouterr()
    assert f"at http://127.0.0.1:{port}/ (Ctrl+C stops)" in output.out
    assert "warning: --no-token" in output.err
    with fastapi_testclient.TestClient(served["app"], base_url=f"http://mammo.lan:{port}") \
            as client:
        assert client.get("/api/run").status_code == 200
        # The Host and Origin checks stay.
        assert client.get("/api/run", headers={"Host": "evil.example"}).status_code == 403
        assert client.get("/api/run", headers={"Origin": "http://evil.example"}) \
            .status_code == 403


@pytest.mark.parametrize("options", [["--token", "x", "--no-token"], ["--token", " "],
                                     ["--max-upload-mb", "inf"], ["--max-megapixels", "inf"]])
def test_bad_serve_options_are_one_line(run_dir, capsys, options: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(run_dir), "--port", str(free_port()), *options])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {options[0]}") and "Traceback" not in error
    assert len(error.strip().splitlines()) == 2  # the error and the --debug hint


def test_not_a_run_is_one_line(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(tmp_path), "--port", str(free_port())])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "not a run directory (no config.yaml)" in error and "Traceback" not in error


@pytest.mark.parametrize(("content", "problem"), [("[" * 100_000 + "]" * 100_000,
                                                   "nested too deeply"),
                                                  ("[1, 2]", "'list' object has no attribute")])
def test_a_bad_metrics_file_is_one_line_naming_it(run_dir, tmp_path, capsys, content: str,
                                                  problem: str) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(run_dir), "--port", str(free_port()), "--metrics", str(metrics)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: {metrics}: not a metrics.json written by evaluate (")
    assert problem in error and "Traceback" not in error


def test_a_port_in_use_is_one_line(run_dir, capsys) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            main(["serve", str(run_dir), "--port", str(port)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1 port {port}" in error and "Traceback" not in error


def test_the_cli_starts_without_the_web_stack() -> None:
    code = ("import sys; import mammohybrid.cli; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--filters", "--metrics", "--max-upload-mb",
                   "--max-files", "--max-megapixels", "--allow-host", "--token", "--no-token"):
        assert option in result.output


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True),
                                                ("::1", True), ("127.0.0.2", True),
                                                ("0.0.0.0", False), ("192.168.1.5", False),
                                                ("example.org", False)])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("name", "safe"), [("crop.dcm", "crop.dcm"),
                                            ("C:\\scans\\a b.png", "a b.png"),
                                            ("../../etc/passwd", "passwd"), ("", "upload"),
                                            ("..", "upload"), ("a:b?.png", "a_b_.png")])
def test_safe_file_names(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


# ------------------------------------------------------------------ who the server answers
ROUTES = [("GET", "/"), ("GET", "/api/run"), ("POST", "/api/predict")]
REFUSALS = {
    "foreign Host": {"Host": "rebind.attacker.example:8000"},
    "foreign Origin": {"Origin": "http://evil.example"},
    "Origin null": {"Origin": "null"},
    "no token": {"Authorization": ""},
    "wrong token": {"Authorization": "Bearer not-the-token"},
}
# Refused on the API; following a link to the page from elsewhere sends them too, and is fine.
API_REFUSALS = {
    "foreign Referer": {"Referer": "http://evil.example/page.html"},
    "cross-site fetch": {"Sec-Fetch-Site": "cross-site"},
}
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy",
                    "x-frame-options")


def _send(client, method: str, path: str, crops: dict[str, Path], **headers: str):
    files = ([("files", (crops["png"].name, crops["png"].read_bytes()))]
             if method == "POST" else None)
    return client.request(method, path, files=files, headers=headers)


@pytest.fixture()
def analysed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The names of every upload the analyser is given, as the requests go."""
    from mammohybrid.serve.analysis import UploadAnalyser

    calls: list[list[str]] = []
    real = UploadAnalyser.analyse

    def analyse(self, uploads, folder):
        calls.append([upload.name for upload in uploads])
        return real(self, uploads, folder)

    monkeypatch.setattr(UploadAnalyser, "analyse", analyse)
    return calls


@pytest.mark.parametrize(("method", "path", "case"),
                         [(method, path, case) for method, path in ROUTES for case in REFUSALS]
                         + [(method, path, case) for method, path in ROUTES[1:]
                            for case in API_REFUSALS])
def test_every_route_refuses_other_hosts_origins_and_tokens(client, crops, analysed,
                                                            method: str, path: str,
                                                            case: str) -> None:
    response = _send(client, method, path, crops, **{**REFUSALS, **API_REFUSALS}[case])
    assert response.status_code == 403, response.text
    assert analysed == []  # no work done, no prediction
    assert all(name in response.headers for name in SECURITY_HEADERS)
    if path.startswith("/api/"):
        assert response.json()["error"]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_the_pages_own_requests_are_answered(client, crops, analysed, method: str,
                                             path: str) -> None:
    """What the browser sends for the page: its own origin, same-origin fetches."""
    own = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"} if method == "POST" else \
        {"Sec-Fetch-Site": "same-origin" if path.startswith("/api/") else "none"}
    response = _send(client, method, path, crops, **own)
    assert response.status_code == 200, response.text
    assert analysed == ([[crops["png"].name]] if method == "POST" else [])


def test_a_page_load_from_a_link_elsewhere_needs_the_token_only(client) -> None:
    response = client.get("/", headers={"Referer": "http://wiki.example/",
                                        "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200


def test_the_printed_address_sets_the_token_cookie(predictor, run_dir) -> None:
    application = app_for_run(predictor, run_dir, LIMITS, access=ACCESS)
    with fastapi_testclient.TestClient(application, base_url=ORIGIN,
                                       follow_redirects=False) as browser:
        assert browser.get("/").status_code == 403
        assert browser.get("/?token=wrong").status_code == 403
        assert "set-cookie" not in browser.get("/?token=wrong").headers
        landing = browser.get(f"/?token={TOKEN}")
        # Redirected to the bare address: the token leaves the address bar and history.
        assert landing.status_code == 303 and landing.headers["location"] == "/"
        cookie = landing.headers["set-cookie"]
        assert cookie.startswith(f"mammohybrid-token-8000={TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        # From then on the cookie alone lets the page and its requests through.
        assert browser.get("/").text == page_html()
        assert browser.get("/api/run").status_code == 200
        assert browser.get("/api/run", headers={"Host": "evil.example"}).status_code == 403


def test_a_chosen_token_of_any_characters_survives_the_address_and_the_cookie(predictor,
                                                                          run_dir) -> None:
    token = 'a b;c"d=&e'
    access = AccessPolicy.for_server("127.0.0.1", token=token)
    with fastapi_testclient.TestClient(app_for_run(predictor, run_dir, LIMITS, access=access),
                                       base_url=ORIGIN) as browser:
        assert browser.get(access.address("127.0.0.1", 8000)).text == page_html()
        assert browser.get("/api/run").status_code == 200
        browser.cookies.clear()
        assert browser.get("/api/run").status_code == 403


@pytest.mark.parametrize("host", ["localhost:8000", "[::1]:8000", "127.0.0.1", "LOCALHOST"])
def test_this_machines_names_are_answered(client, host: str) -> None:
    assert client.get("/api/run", headers={"Host": host}).status_code == 200


def test_every_answer_carries_the_security_headers(client, crops, tmp_path) -> None:
    import base64
    import hashlib

    body = tmp_path / "big.bin"
    body.write_bytes(b"\x00" * (LIMITS.max_request_bytes + 1))
    answers = [client.get("/"), client.get("/api/run"), client.get("/nowhere"),
               upload(client, [crops["png"]]), upload(client, [body]),
               client.get("/api/run", headers={"Authorization": ""})]
    assert [a.status_code for a in answers] == [200, 200, 404, 200, 413, 403]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        policy = dict(part.strip().split(" ", 1)
                      for part in answer.headers["content-security-policy"].split(";"))
        # Only the page's own inline script and style; nothing from anywhere else.
        script, = re.findall(r"<script>(.*?)</script>", page_html(), re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert policy["script-src"] == f"'sha256-{digest}'"
        assert policy["style-src"].startswith("'sha256-") and " " not in policy["style-src"]
        assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
        assert policy["img-src"] == "data:" and policy["frame-ancestors"] == "'none'"


# ------------------------------------------------------------------ uploads in flight
def test_uploads_in_flight_share_one_budget() -> None:
    """A body the budget of all uploads in flight cannot take gets 503 at once, as does an
    upload beyond the number taken at once; what a finished upload held is given back."""
    import asyncio

    from mammohybrid.serve.app import BodyLimit

    async def scenario() -> list[int]:
        inside, release = asyncio.Event(), asyncio.Event()

        async def holder(scope, receive, send) -> None:  # reads its body, then waits
            while (await receive()).get("more_body"):
                pass
            if scope["path"] == "/hold":
                inside.set()
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        limit = BodyLimit(holder, max_bytes=1000, max_bytes_in_flight=1000, max_uploads=2)

        async def post(path: str, size: int, declared: bool = True) -> int:
            chunks = [{"type": "http.request", "body": b"x" * 100, "more_body": True}
                      for _ in range(size // 100)] + [{"type": "http.request", "body": b""}]
            headers = [(b"content-length", str(size).encode())] if declared else []
            sent: list[dict] = []

            async def receive() -> dict:
                return chunks.pop(0)

            async def send(message: dict) -> None:
                sent.append(message)

            await limit({"type": "http", "method": "POST", "path": path,
                         "headers": headers}, receive, send)
            return sent[0]["status"]

        held = asyncio.create_task(post("/hold", 600))
        await inside.wait()
        statuses = [await post("/", 600), await post("/", 600, declared=False),
                    await post("/", 300)]
        second = asyncio.create_task(post("/hold", 300))
        await asyncio.sleep(0)
        statuses.append(await post("/", 10))  # a third upload at once, however small
        release.set()
        statuses += [await held, await second, await post("/", 600)]
        return statuses

    assert asyncio.run(scenario()) == [503, 503, 200, 503, 200, 200, 200]


# ------------------------------------------------------------------ file names
def test_names_over_255_bytes_cost_nothing(client, crops, analysed) -> None:
    data = crops["png"].read_bytes()
    names = ["a" * 260 + ".png", "\u4e73" * 86, "benign.png"]
    response = client.post("/api/predict", files=[("files", (name, data)) for name in names])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["error"] for r in results] == ["", "", ""]
    shown = [r["name"] for r in results]
    assert all(len(name.encode()) <= 255 for name in shown)
    assert shown[0].startswith("a" * 200) and shown[0].endswith("\u2026.png")
    assert shown[1].startswith("\u4e73" * 80) and shown[2] == "benign.png"


def test_a_file_that_cannot_be_saved_costs_that_file(client, crops, monkeypatch) -> None:
    import errno

    from mammohybrid.serve import app as app_module

    def full_for_one(path, *args, **kwargs):
        if Path(path).name == "mass.dcm":
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, *args, **kwargs)

    monkeypatch.setattr(app_module, "open", full_for_one, raising=False)
    results = upload(client, [crops["dicom"], crops["png"]]).json()["results"]
    assert results[0]["error"] == ("mass.dcm: cannot be saved on the server (No space left on "
                                   "device)")
    assert results[1]["error"] == "" and results[1]["probability"] is not None


def test_names_a_spreadsheet_would_run_are_neutralised_in_the_csv(client, crops) -> None:
    data = crops["png"].read_bytes()
    names = ["=HYPERLINK(A1).png", "+1.png", "-2.png", "@SUM(A1).png", "plain.png"]
    answer = client.post("/api/predict",
                         files=[("files", (name, data)) for name in names]).json()
    assert [r["name"] for r in answer["results"]] == names  # the page shows them as they are
    frame = pd.read_csv(pd.io.common.StringIO(answer["csv"]), keep_default_na=False)
    assert list(frame["path"]) == [f"'{name}" for name in names[:4]] + ["plain.png"]
