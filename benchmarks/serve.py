"""Benchmark of ``mammohybrid serve``: seconds per upload of one crop (saved, decoded,
pre-processed, predicted by the Predictor, every step's image encoded, Grad-CAM per branch),
against ``Predictor.predict_paths`` alone on the same file (what ``predict`` does for it).

    .venv/bin/python benchmarks/serve.py demo-output/run CROP.dcm [CROP ...] [--repeats 9]

All the crops go in one upload. Requests go through FastAPI's test client (the whole
application, no network). The first request (graph tracing) is printed apart; every other
figure is the median of ``--repeats``, upload and predict-alone alternating so that a change in
the machine's load hits both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from fastapi.testclient import TestClient

from mammohybrid.inference import Predictor
from mammohybrid.serve.app import app_for_run
from mammohybrid.serve.security import AccessPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished run directory")
    parser.add_argument("crops", type=Path, nargs="+", help="crops to upload, all at once")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    crops = args.crops
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in crops]
    # The page's requests, as the browser makes them: to its own address, with no token asked.
    access = AccessPolicy.for_server("127.0.0.1", token=None)
    with Predictor.from_run(args.run) as predictor, \
            TestClient(app_for_run(predictor, args.run, access=access),
                       base_url="http://127.0.0.1:8000") as client:
        def upload() -> float:
            started = time.perf_counter()
            response = client.post("/api/predict", files=files)
            assert response.status_code == 200 and not any(
                r["error"] for r in response.json()["results"]), response.text
            return time.perf_counter() - started

        def predict_alone() -> float:
            started = time.perf_counter()
            predictor.predict_paths(crops, workers=0)
            return time.perf_counter() - started

        first = upload()
        predict_alone()
        uploads, alone = [], []
        for _ in range(args.repeats):
            uploads.append(upload())
            alone.append(predict_alone())
    print(f"{len(crops)} crop(s) per upload, model {' + '.join(predictor.config.model.backbones)}"
          f" at {predictor.input_size} px")
    print(f"first upload (tracing): {first:.2f} s")
    print(f"upload with strip and Grad-CAM: {statistics.median(uploads):.3f} s "
          f"(median of {args.repeats})")
    print(f"predict_paths alone: {statistics.median(alone):.3f} s")


if __name__ == "__main__":
    main()
