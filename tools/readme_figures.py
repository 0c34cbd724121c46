"""The README's demo figures, from a finished demo folder.

    .venv/bin/python tools/readme_figures.py demo-output docs/images

Copies the test confusion matrix, ROC curve and training curves, builds the Grad-CAM montage
(one malignant and one benign test ROI: one column per backbone branch, then the combined map)
and screenshots the top of report.html with a headless Chromium when one is installed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mammohybrid.preprocess.batch import output_name

LABEL_HEIGHT = 28
TILE = 220  # overlays come at each ROI's own size; the montage shows them at one size


def gradcam_montage(demo: Path, out: Path) -> None:
    predictions = pd.read_csv(demo / "predict" / "test_predictions.csv")
    gradcam = demo / "predict" / "gradcam"
    rows = []
    for label in (1, 0):  # malignant first
        for path in predictions.loc[predictions["label"] == label, "path"]:
            combined = gradcam / f"{Path(output_name(path)).stem}_combined.png"
            if combined.is_file():
                rows.append(combined)
                break
    stem_of = {row: row.name[: -len("_combined.png")] for row in rows}
    branches = sorted({p.name[len(stem_of[rows[0]]) + 1: -len(".png")]
                       for p in gradcam.glob(f"{stem_of[rows[0]]}_*.png")} - {"combined"})
    columns = [*branches, "combined"]
    tiles = [[cv2.resize(cv2.imread(str(gradcam / f"{stem_of[row]}_{column}.png")),
                         (TILE, TILE), interpolation=cv2.INTER_AREA) for column in columns]
             for row in rows]
    width = TILE
    header = np.full((LABEL_HEIGHT, width * len(columns), 3), 255, np.uint8)
    for index, column in enumerate(columns):
        cv2.putText(header, column, (index * width + 6, LABEL_HEIGHT - 8),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    montage = np.vstack([header, *[np.hstack(row) for row in tiles]])
    cv2.imwrite(str(out / "demo_gradcam.png"), montage)


def report_screenshot(demo: Path, out: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no Chromium: demo_report.png left as it is")
        return
    subprocess.run([browser, "--headless", "--no-sandbox", "--hide-scrollbars",
                    f"--screenshot={out / 'demo_report.png'}", "--window-size=1100,880",
                    (demo / "report.html").resolve().as_uri()],
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path, help="a finished `mammohybrid demo` folder")
    parser.add_argument("out", type=Path, help="where the figures go (docs/images)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("confusion_matrix", "roc_curve", "training_curves"):
        shutil.copyfile(args.demo / f"{name}.png", args.out / f"demo_{name}.png")
    gradcam_montage(args.demo, args.out)
    report_screenshot(args.demo, args.out)
    print(f"figures written to {args.out}")


if __name__ == "__main__":
    main()
