"""The README's screenshot of ``mammohybrid serve``, taken on a finished demo folder.

    .venv/bin/python tools/serve_screenshot.py demo-output docs/images/serve_page.png

Starts ``mammohybrid serve DEMO/run``, uploads raw test crops of the demo (a malignant and a
benign one, copied under their case names since every CBIS-DDSM crop is called ``1-1.dcm``)
in the system's headless Chromium, waits for the results and saves the top of the page (as a
256-colour PNG).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mammohybrid.serve.headless import (
    chromium_driver,
    free_port,
    start_serving,
    wait_until_serving,
)

WIDTH = 1280
MAX_HEIGHT = 1900


def test_crops(demo: Path, folder: Path, per_class: int) -> list[Path]:
    """``per_class`` raw test crops of each class from the demo's manifest, copied into
    ``folder`` as ``<case>.dcm``, malignant first."""
    manifest = demo / "data" / "preprocessed" / "manifest.csv"
    frame = pd.read_csv(manifest)
    frame = frame[(frame["split"] == "test") & frame["source_path"].str.contains("cropped")]
    copies = []
    for label in (1, 0):
        for _, row in frame[frame["label"] == label].head(per_class).iterrows():
            source = (manifest.parent / row["source_path"]).resolve()
            copies.append(Path(shutil.copyfile(source, folder / f"{row['case_id']}.dcm")))
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path, help="a finished `mammohybrid demo` folder")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--per-class", type=int, default=1, help="crops of each class")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        crops = test_crops(args.demo, scratch, args.per_class)
        port = free_port()
        server = start_serving(args.demo / "run", port, scratch / "serve.log")
        try:
            address = wait_until_serving(scratch / "serve.log", lambda: server.poll() is None,
                                         300)
            if address is None:
                raise SystemExit((scratch / "serve.log").read_text())
            driver = chromium_driver(scratch / "profile", WIDTH, MAX_HEIGHT)
            try:
                driver.get(address)
                wait = WebDriverWait(driver, 300)
                wait.until(lambda d: d.find_element(By.ID, "threshold-value").text)
                driver.find_element(By.ID, "file-input").send_keys(
                    "\n".join(str(p) for p in crops))
                wait.until(lambda d: d.find_element(By.ID, "status")
                           .get_attribute("data-state") == "done")
                height = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(WIDTH, min(height, MAX_HEIGHT))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.out))
                # A 256-colour palette: a third of the size, no visible change on this page.
                Image.open(args.out).convert("RGB").quantize(256).save(args.out, optimize=True)
                print(driver.find_element(By.ID, "status").text)
            finally:
                driver.quit()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
