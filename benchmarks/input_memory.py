"""Peak memory of the worst inputs the default limits admit, and of the bombs they refuse.

Each file is at most 10 MB on disk. For each, a fresh process reads it (``read_image``) and
runs the default pre-processing chain on it, then reports its peak RSS (``VmHWM``); the target
is under 2 GB for every one. The accepted files sit at the pixel budget (100 megapixels) in the
widest layout each format allows (16-bit RGBA PNG, 16-bit grey PNG and TIFF, 8-bit JPEG).

    .venv/bin/python benchmarks/input_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

SIDE = 10_000  # 100 megapixels: the default limits.max_image_pixels

MAKE = """
import sys, cv2, numpy as np
side, kind, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = np.arange(side, dtype=np.uint32)[:, None] % 4096
if kind == "png-rgba16":
    image = np.zeros((side, side, 4), np.uint16); image[..., 0] = rows * 16
elif kind in ("png-grey16", "tiff-grey16"):
    image = np.broadcast_to((rows * 16).astype(np.uint16), (side, side)).copy()
else:
    image = np.broadcast_to((rows % 256).astype(np.uint8), (side, side)).copy()
assert cv2.imwrite(path, image)
"""

MEASURE = """
import re, sys
from mammohybrid.errors import ImageReadError
from mammohybrid.imaging import read_image
from mammohybrid.preprocess import preprocess_image
try:
    result = "accepted, output " + str(preprocess_image(read_image(sys.argv[1])).image.shape)
except ImageReadError as error:
    result = "refused: " + str(error).split(": ", 1)[1][:60]
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(peak // 1024, result)
"""

FILES = [("png-rgba16", ".png"), ("png-grey16", ".png"), ("tiff-grey16", ".tif"),
         ("jpeg-grey8", ".jpg")]


def main() -> None:
    from mammohybrid.imaging import read_image  # noqa: F401 - fail early without the package

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.robustness.conftest import forged_png

    print(f"{'input':<24} {'file MB':>8} {'peak RSS MB':>12}  result")
    with tempfile.TemporaryDirectory() as folder:
        cases = []
        for kind, suffix in FILES:
            path = Path(folder) / f"{kind}{suffix}"
            subprocess.run([sys.executable, "-c", MAKE, str(SIDE), kind, str(path)], check=True)
            cases.append((f"{kind} {SIDE}x{SIDE}", path))
        for name, data in [("png bomb 30000x30000", forged_png(30000, 30000, 16, 2)),
                           ("pgm bomb 46000x46000", b"P5\n46000 46000\n255\n" + b"\0" * 4096)]:
            path = Path(folder) / name.replace(" ", "_")
            path.write_bytes(data)
            cases.append((name, path))
        for name, path in cases:
            size = path.stat().st_size / 2**20
            out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], check=True,
                                 capture_output=True, text=True).stdout.split(maxsplit=1)
            print(f"{name:<24} {size:>8.2f} {int(out[0]):>12}  {out[1].strip()}")


if __name__ == "__main__":
    main()
