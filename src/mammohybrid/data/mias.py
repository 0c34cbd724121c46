"""mini-MIAS -> lesion crops + manifest rows.

mini-MIAS is 322 MLO films ``mdbNNN.pgm`` (1024 x 1024, 8-bit) and ``Info.txt``. Info.txt opens
with free text (credits, column descriptions), then has one line per lesion::

    REFNUM TISSUE CLASS [SEVERITY [X Y RADIUS]]
    mdb001 G CIRC B 535 425 197
    mdb003 D NORM

TISSUE is F, G or D; CLASS one of CALC, CIRC, SPIC, MISC, ARCH, ASYM, NORM (normal, no lesion);
SEVERITY B or M; X, Y the lesion centre in pixels with the origin at the BOTTOM-LEFT corner
(image row = height - Y); RADIUS the radius of a circle enclosing the lesion. A film can have
several lines; a few abnormal lines give no coordinates (calcifications spread over the whole
film, ``*NOTE 3*``): no crop can be cut, and each gets an error row saying so.

Tasks (``--task``): ``mass`` (CIRC, SPIC, MISC: the paper's lesion type), ``nonmass`` (CALC,
ARCH, ASYM), one class by its lower-case name (``calc``, ``arch``, ``asym``, ...), or ``all``.

Crops: a square of side ``max(min_crop, round(crop_scale * RADIUS))`` (default 2.5 x radius,
i.e. the enclosing circle plus a quarter of its diameter of surrounding tissue on every side,
at least 64 px) centred on the lesion, shifted to lie inside the film (never shrunk, unless it
is larger than the film). A crop in which fewer than ``min_tissue`` (20 %) of the pixels are
brighter than the film background (grey level > 20) is almost all background and is skipped.

Patients: films come in left/right pairs of one woman, so film n belongs to patient
``(n + 1) // 2`` (mdb001 and mdb002 are patient 1).

Physical scale: every mini-MIAS film has 200 micron pixels (the database's documentation), so
every row gets ``pixel_spacing_mm`` = 0.2, and ``center_row`` / ``center_col`` locate the lesion
centre inside its crop (the crop is shifted to lie inside the film, so the centre is not always
the crop's): what ``preprocess.field_of_view_mm`` needs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mammohybrid.config import DataConfig, LimitsConfig
from mammohybrid.data.sources import (
    BAD_VALUE,
    DUPLICATE_ROW,
    MISSING_FILE,
    NO_CROP,
    UNREADABLE_IMAGE,
    IngestResult,
    RowSource,
    register_source,
)
from mammohybrid.errors import DatasetError, ImageReadError
from mammohybrid.fileio import InputTree
from mammohybrid.imaging import read_image, write_png
from mammohybrid.progress import track

DATASET = "mini-mias"
# The files of the distribution: the films and the table of lesions (any case).
FILM_SUFFIX = ".pgm"
INFO_NAME = "info.txt"
CLASSES = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")
TISSUES = ("F", "G", "D")
SEVERITIES = {"B": "BENIGN", "M": "MALIGNANT"}
_MASSES = ("CIRC", "SPIC", "MISC")
TASKS = {"mass": _MASSES, "nonmass": ("CALC", "ARCH", "ASYM"),
         "all": tuple(c for c in CLASSES if c != "NORM"),
         **{c.lower(): (c,) for c in CLASSES if c != "NORM"}}
BACKGROUND_LEVEL = 20  # 8-bit grey level above which a pixel is breast, not film background
PIXEL_SPACING_MM = 0.2  # every mini-MIAS film: 200 micron pixels
_LESION_LINE = re.compile(r"^mdb\d{3}\b", re.IGNORECASE)


def read_info(path: Path, result: IngestResult,
              classes: tuple[str, ...] = TASKS["all"]) -> list[dict[str, Any]]:
    """Parse Info.txt into one dict per lesion line of ``classes`` that has coordinates.

    Free text before (or between) the lesion lines is ignored; NORM lines and lesion lines of
    other classes are counted (by class); malformed lesion lines, and lines of ``classes``
    without coordinates, are reported as errors.
    """
    lesions: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    other_classes: dict[str, int] = {}
    text = path.read_text(encoding="latin-1")  # the credits are not guaranteed to be UTF-8
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or not _LESION_LINE.match(tokens[0]):
            continue
        where: RowSource = {"source": path, "row": number}
        if len(tokens) < 3 or tokens[1].upper() not in TISSUES or tokens[2].upper() not in CLASSES:
            result.error(BAD_VALUE, f"cannot parse '{line.strip()}' (expected REFNUM TISSUE "
                         f"CLASS [SEVERITY X Y RADIUS])", **where)
            continue
        refnum, tissue, kind = tokens[0].lower(), tokens[1].upper(), tokens[2].upper()
        if kind == "NORM":
            result.count("normal films (NORM lines)")
            continue
        if kind not in classes:
            other_classes[kind] = other_classes.get(kind, 0) + 1
            continue
        if len(tokens) < 4 or tokens[3].upper() not in SEVERITIES:
            result.error(BAD_VALUE, f"'{line.strip()}': severity must be B or M", **where)
            continue
        try:  # fewer than three values, or "*NOTE 3*" as some real lines have
            x, y, radius = (int(t) for t in tokens[4:7])
        except ValueError:
            result.error(NO_CROP, f"{refnum} {kind} {tokens[3].upper()}: no lesion coordinates "
                         f"('{' '.join(tokens[4:]) or 'none'}'; Info.txt note 4: spread over "
                         "the film), so no crop can be cut", **where)
            continue
        key = (refnum, kind, str(x), str(y), str(radius))
        if key in seen:
            result.error(DUPLICATE_ROW, f"duplicate line '{line.strip()}' (first kept)", **where)
            continue
        seen.add(key)
        lesions.append({"refnum": refnum, "tissue": tissue, "mias_class": kind,
                        "severity": tokens[3].upper(), "x": x, "y": y, "radius": radius,
                        "line": number})
    if other_classes:
        counted = ", ".join(f"{kind} {n}" for kind, n in sorted(other_classes.items()))
        result.count(f"skipped: lesions outside the task's classes ({counted})",
                     sum(other_classes.values()))
    return lesions


def crop_box(x: int, y: int, radius: int, height: int, width: int, crop_scale: float = 2.5,
             min_crop: int = 64) -> tuple[int, int, int]:
    """(row0, col0, side) of the square crop around a lesion (see the module doc).

    ``x``, ``y`` are MIAS coordinates (origin bottom-left); the box is clamped inside the image.
    """
    side = min(max(min_crop, round(crop_scale * radius)), height, width)
    row, col = height - y, x
    row0 = int(np.clip(row - side // 2, 0, height - side))
    col0 = int(np.clip(col - side // 2, 0, width - side))
    return row0, col0, side


def _reads(root: Path, **_: object) -> list[Path | InputTree]:
    """The films and Info.txt under ``root``."""
    return [InputTree(root, lambda path: path.suffix.lower() == FILM_SUFFIX
                      or path.name.lower() == INFO_NAME)]


@register_source("mias", "mini-MIAS (mdbNNN.pgm + Info.txt): lesion crops", reads=_reads)
def ingest_mias(root: Path, config: DataConfig, *, out_dir: Path,
                limits: LimitsConfig | None = None, task: str = "mass", crop_scale: float = 2.5,
                min_crop: int = 64, min_tissue: float = 0.2) -> IngestResult:
    """mini-MIAS under ``root`` -> crops written to ``out_dir/mias_crops`` + manifest rows; the
    films are read within ``limits``."""
    if task not in TASKS:
        raise DatasetError(f"unknown MIAS task '{task}' (expected {', '.join(TASKS)})")
    info = _find_info(root)
    films = {p.stem.lower(): p for p in sorted(root.rglob("*")) if p.suffix.lower() == FILM_SUFFIX}
    result = IngestResult(dataset=DATASET)
    wanted = read_info(info, result, TASKS[task])
    result.note(f"crops: square of side max({min_crop}, {crop_scale} x radius) around each "
                f"lesion, kept inside the film; crops with < {min_tissue:.0%} breast pixels "
                f"(grey level > {BACKGROUND_LEVEL}) are skipped")
    result.note("patient_id = (film number + 1) // 2 (films come in left/right pairs)")
    result.note(f"task '{task}': lesion classes {', '.join(TASKS[task])}")
    crops_dir = Path(out_dir) / "mias_crops"
    rows = []
    images: dict[str, np.ndarray | ImageReadError] = {}
    per_film: dict[str, int] = {}
    for lesion in track(wanted, "cropping mini-MIAS lesions"):
        refnum = str(lesion["refnum"])
        where: RowSource = {"source": info, "row": lesion["line"]}
        film = films.get(refnum)
        if film is None:
            result.error(MISSING_FILE, f"{refnum}.pgm not found under {root}", **where)
            continue
        if refnum not in images:
            try:
                images[refnum] = read_image(film, limits)
            except ImageReadError as error:
                images[refnum] = error
        image = images[refnum]
        if isinstance(image, ImageReadError):
            result.error(UNREADABLE_IMAGE, str(image), path=film, **where)
            continue
        height, width = image.shape
        x, y, radius = int(lesion["x"]), int(lesion["y"]), int(lesion["radius"])
        if not (0 <= x < width and 0 < y <= height):
            result.error(BAD_VALUE, f"{refnum}: centre ({x}, {y}) outside the {width}x{height} "
                         "film", path=film, **where)
            continue
        label = result.label_for(SEVERITIES[str(lesion["severity"])], config, path=film, **where)
        if label is None:
            continue
        row0, col0, side = crop_box(x, y, radius, height, width, crop_scale, min_crop)
        crop = image[row0:row0 + side, col0:col0 + side]
        if np.mean(crop > BACKGROUND_LEVEL) < min_tissue:
            result.count("skipped: crop almost all background")
            continue
        per_film[refnum] = per_film.get(refnum, 0) + 1
        lesion_id = f"{refnum}_{per_film[refnum]}"
        path = write_png(crops_dir / f"{lesion_id}.png", crop)
        number = int(refnum[3:])
        rows.append({"image_path": str(path), "label": label,
                     "pathology": str(lesion["severity"]),
                     "patient_id": f"{(number + 1) // 2:03d}", "lesion_id": lesion_id,
                     "dataset": DATASET, "view": "MLO", "tissue": lesion["tissue"],
                     "mias_class": lesion["mias_class"], "lesion_x": x, "lesion_y": y,
                     "lesion_radius": radius, "crop_row": row0, "crop_col": col0,
                     "crop_size": side, "pixel_spacing_mm": PIXEL_SPACING_MM,
                     "center_row": height - y - row0, "center_col": x - col0,
                     "full_image_path": str(film), "source_file": info.name,
                     "source_row": lesion["line"]})
    result.count("lesion crops written", len(rows))
    result.frame = pd.DataFrame.from_records(rows)
    return result


def _find_info(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetError(f"{root}: expected the mini-MIAS folder (Info.txt and mdbNNN.pgm)")
    matches = sorted(p for p in root.rglob("*") if p.name.lower() == INFO_NAME)
    if not matches:
        raise DatasetError(f"{root}: Info.txt not found (mini-MIAS keeps it beside the .pgm "
                           "films)")
    return matches[0]
