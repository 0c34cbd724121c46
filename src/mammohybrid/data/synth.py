"""Synthetic CBIS-DDSM: mammography-like lesion ROI crops, and (below) a small dataset written
in CBIS-DDSM's real on-disk format so that demos and tests run through the real ingest code.

The lesion renderer follows what radiologists read on a mass ROI:

- background: breast parenchyma, modelled as power-law ("1/f^beta") noise, which is the
  measured power spectrum of mammographic tissue (beta about 2.5-3.5);
- benign: a *circumscribed* round or oval mass with a smooth, slightly lobulated margin;
- malignant: an *irregular* mass whose margin is jagged and from which thin *spicules*
  radiate.

Contrast, size, position, tissue texture and noise are drawn from the same ranges for both
classes, so only the margin separates them (as in real data, where margin is the strongest
cue). Intensities are fractions of the 16-bit full scale: the tissue background lies mostly
below 193/255 (the paper's fixed 8-bit ROI threshold) and the mass mostly above it, except
for a small fraction of faint lesions that the fixed threshold removes entirely.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mammohybrid.data.cbis_ddsm import CSV_COLUMNS, case_csv_name
from mammohybrid.fileio import atomic_open, atomic_write_json
from mammohybrid.imaging import write_dicom
from mammohybrid.progress import track

# The paper's ROI threshold on the 8-bit scale, as a fraction of full scale.
ROI_THRESHOLD_FRACTION = 193 / 255
# Share of lesions rendered too faint for the fixed threshold (exercises empty-ROI handling).
FAINT_FRACTION = 0.05


@dataclass(frozen=True)
class LesionParams:
    """Everything that defines one rendered lesion crop (intensities are fractions of 65535).

    Sampled by :func:`sample_lesion_params`; any field can be overridden through
    ``render_roi_crop(..., **params)``.
    """

    malignant: bool
    aspect: float = 1.0  # crop width / height
    radius: float = 0.25  # mean mass radius as a fraction of the crop's shorter side
    elongation: float = 1.0  # major / minor axis of the mass
    orientation: float = 0.0  # radians
    offset: tuple[float, float] = (0.0, 0.0)  # centre shift, fraction of the crop side
    margin_harmonics: tuple[tuple[int, float, float], ...] = ()  # (order, amplitude, phase)
    edge_width: float = 0.05  # width of the margin transition, fraction of the radius
    spicules: tuple[tuple[float, float, float, float], ...] = ()  # (angle, length, width, bend)
    background_level: float = 0.5
    tissue_contrast: float = 0.06  # std of the parenchyma texture
    tissue_beta: float = 3.0  # power-law exponent of the parenchyma texture
    tissue_anisotropy: float = 1.0  # > 1: fibroglandular structures stretched along a direction
    tissue_direction: float = 0.0  # radians
    strands: tuple[tuple[float, float, float, float], ...] = ()  # (angle, offset, bend, opacity)
    mass_level: float = 0.86
    mass_texture: float = 0.015
    noise_sigma: float = 0.01  # quantum / electronic noise


def sample_lesion_params(rng: np.random.Generator, malignant: bool,
                         faint: bool | None = None) -> LesionParams:
    """Draw the parameters of one lesion; the class changes only the margin (shape) fields.

    ``faint`` forces (True) or forbids (False) a lesion too dark for the fixed 193 threshold;
    None draws it with probability :data:`FAINT_FRACTION`.
    """
    if faint is None:
        faint = bool(rng.random() < FAINT_FRACTION)
    radius = float(rng.uniform(0.17, 0.30))
    if malignant:
        # Irregular: a jagged margin (many harmonics, amplitude falling as 1/order) and thin
        # spicules radiating into the tissue.
        strength = float(rng.uniform(0.10, 0.20))
        harmonics = tuple((int(k), float(strength * abs(rng.normal(1.0, 0.5)) / k ** 0.8),
                           float(rng.uniform(0, 2 * np.pi))) for k in range(2, 17))
        edge_width = float(rng.uniform(0.04, 0.12))
        n_spicules = int(rng.integers(9, 26))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n_spicules))
        spicules = tuple(
            (float(angle), float(rng.uniform(0.5, 1.5)), float(rng.uniform(0.04, 0.10)),
             float(rng.normal(0, 0.12)))
            for angle in angles)
        elongation = float(rng.uniform(1.0, 1.4))
    else:
        # Circumscribed: an ellipse with at most a gentle low-order lobulation.
        harmonics = tuple((int(k), float(rng.uniform(0.0, 0.045)), float(rng.uniform(0, 2 * np.pi)))
                          for k in range(2, 5))
        edge_width = float(rng.uniform(0.03, 0.09))
        spicules = ()
        elongation = float(rng.uniform(1.0, 1.6))
    if faint:
        background_level = float(rng.uniform(0.30, 0.45))
        mass_level = float(rng.uniform(0.55, 0.68))
    else:
        background_level = float(rng.uniform(0.40, 0.60))
        mass_level = float(rng.uniform(0.81, 0.94))
    # Faint ligaments and vessels crossing the tissue, in both classes (thin lines are not by
    # themselves a sign of malignancy).
    strands = tuple((float(rng.uniform(0, np.pi)), float(rng.uniform(-0.45, 0.45)),
                     float(rng.normal(0, 0.3)), float(rng.uniform(0.03, 0.08)))
                    for _ in range(int(rng.integers(0, 5))))
    return LesionParams(
        malignant=malignant,
        aspect=float(np.exp(rng.uniform(-0.2, 0.2))),
        radius=radius,
        elongation=elongation,
        orientation=float(rng.uniform(0, np.pi)),
        offset=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
        margin_harmonics=harmonics,
        edge_width=edge_width,
        spicules=spicules,
        background_level=background_level,
        tissue_contrast=float(rng.uniform(0.035, 0.07)),
        tissue_beta=float(rng.uniform(2.4, 3.2)),
        tissue_anisotropy=float(rng.uniform(1.0, 2.0)),
        tissue_direction=float(rng.uniform(0, np.pi)),
        strands=strands,
        mass_level=mass_level,
        mass_texture=float(rng.uniform(0.01, 0.03)),
        noise_sigma=float(rng.uniform(0.004, 0.015)),
    )


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float,
                    anisotropy: float = 1.0, direction: float = 0.0) -> np.ndarray:
    """Zero-mean, unit-std noise whose power spectrum falls as 1/f^beta (float32).

    ``anisotropy`` > 1 stretches the structures along ``direction`` (radians from the x axis).
    """
    height, width = shape
    spectrum = np.fft.rfft2(rng.standard_normal(shape).astype(np.float32))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    along = fx * math.cos(direction) + fy * math.sin(direction)
    across = -fx * math.sin(direction) + fy * math.cos(direction)
    radius = np.sqrt((along * anisotropy) ** 2 + across ** 2)
    radius[0, 0] = np.inf  # no DC component
    # Frequencies below one cycle per image are clamped so that the texture has no giant slope.
    floor = 1.0 / max(height, width)
    spectrum *= (np.maximum(radius, floor) ** (-beta / 2)).astype(np.float32)
    field = np.fft.irfft2(spectrum, s=shape)
    field -= field.mean()
    std = field.std()
    return (field / std if std > 0 else field).astype(np.float32)


def render_lesion(rng: np.random.Generator, height: int, width: int,
                  params: LesionParams) -> tuple[np.ndarray, np.ndarray]:
    """Render a lesion crop: (image as float32 fractions of full scale, binary lesion mask)."""
    short = min(height, width)
    radius_px = params.radius * short
    cy = height / 2 + params.offset[0] * short
    cx = width / 2 + params.offset[1] * short

    # Elliptic polar coordinates of every pixel around the mass centre.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    cos_o, sin_o = math.cos(params.orientation), math.sin(params.orientation)
    u = (dx * cos_o + dy * sin_o) / math.sqrt(params.elongation)
    v = (-dx * sin_o + dy * cos_o) * math.sqrt(params.elongation)
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(rho)
    for order, amplitude, phase in params.margin_harmonics:
        boundary += amplitude * np.cos(order * theta + phase)
    # Signed distance to the margin in pixels (approximately), then a smooth step.
    distance = (rho - boundary * radius_px)
    edge_px = max(params.edge_width * radius_px, 0.7)
    core = 0.5 * (1.0 - np.tanh(distance / edge_px))

    spicule_mask = _draw_spicules(height, width, (cx, cy), radius_px, params.spicules)
    alpha = np.maximum(core, spicule_mask)

    texture = power_law_noise(rng, (height, width), params.tissue_beta,
                              params.tissue_anisotropy, params.tissue_direction)
    tissue = (params.background_level + params.tissue_contrast * texture
              + _draw_strands(height, width, params.strands))
    # A gentle dome: masses are densest at their centre. The overlying tissue shows through
    # the mass at reduced contrast (a mass adds density; it does not replace the parenchyma).
    dome = 0.03 * np.clip(1.0 - rho / max(radius_px, 1.0), 0.0, 1.0)
    mass = (params.mass_level + dome + 0.5 * params.tissue_contrast * texture
            + params.mass_texture * power_law_noise(rng, (height, width), 2.0))
    image = tissue * (1.0 - alpha) + mass * alpha
    # The detector's blur, then its noise.
    image = cv2.GaussianBlur(image, (0, 0), sigmaX=0.7)
    image += params.noise_sigma * rng.standard_normal((height, width)).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32), alpha > 0.5


def _draw_spicules(height: int, width: int, centre: tuple[float, float], radius_px: float,
                   spicules: tuple[tuple[float, float, float, float], ...]) -> np.ndarray:
    """Thin, slightly bent lines radiating from the mass, narrowing and fading towards their
    tips (opacity in [0, 1])."""
    if not spicules:
        return np.zeros((height, width), np.float32)
    canvas = np.zeros((height, width), np.uint8)
    cx, cy = centre
    reach = 0.49 * min(height, width) - 2  # spicules stay inside the crop
    steps = np.linspace(0.0, 1.0, _SPICULE_SEGMENTS + 1)
    for angle, length, base_width, bend in spicules:
        start = 0.7 * radius_px
        end = min(radius_px * (1.0 + length), reach)
        if end <= start:
            continue
        radii = start + (end - start) * steps
        angles = angle + bend * steps ** 2  # the line curves progressively
        half_widths = np.maximum(base_width * radius_px / 2 * (1.0 - steps), 0.5)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        for i in range(_SPICULE_SEGMENTS):
            p0, p1 = points[i], points[i + 1]
            direction = p1 - p0
            normal = np.array([-direction[1], direction[0]]) / (np.linalg.norm(direction) + 1e-9)
            quad = np.array([p0 + half_widths[i] * normal, p1 + half_widths[i + 1] * normal,
                             p1 - half_widths[i + 1] * normal, p0 - half_widths[i] * normal])
            # Opacity fades from 1 at the mass to about 0.35 at the tip.
            value = int(255 * (1.0 - 0.65 * steps[i]))
            cv2.fillConvexPoly(canvas, np.round(quad * 16).astype(np.int32), value,
                               lineType=cv2.LINE_AA, shift=4)
    opacity = canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(opacity, (0, 0), sigmaX=max(radius_px * 0.012, 0.6))


_SPICULE_SEGMENTS = 4


def _draw_strands(height: int, width: int,
                  strands: tuple[tuple[float, float, float, float], ...]) -> np.ndarray:
    """Faint, slightly curved lines crossing the crop (added density, fractions of full scale)."""
    density = np.zeros((height, width), np.float32)
    if not strands:
        return density
    short, diagonal = min(height, width), math.hypot(height, width)
    t = np.linspace(-0.5, 0.5, 24)
    for angle, offset, bend, opacity in strands:
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        centre = np.array([width / 2, height / 2]) + offset * short * normal
        points = (centre + np.outer(t * diagonal, direction)
                  + np.outer(bend * short * (t ** 2 - 0.25), normal))
        canvas = np.zeros((height, width), np.uint8)
        cv2.polylines(canvas, [np.round(points * 16).astype(np.int32)], False, 255,
                      thickness=max(1, int(round(short / 150))), lineType=cv2.LINE_AA, shift=4)
        density += opacity * canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(density, (0, 0), sigmaX=max(short / 300, 0.6))


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Fractions of full scale -> uint16 (value * 65535, rounded)."""
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)


def render_roi_crop(rng: np.random.Generator, size: int, malignant: bool,
                    **params: Any) -> np.ndarray:
    """A synthetic uint16 mass ROI crop of about ``size`` x ``size`` pixels.

    Breast-tissue-like power-law background; benign = circumscribed round/oval mass,
    malignant = irregular spiculated mass; contrast, size and noise drawn from ranges shared by
    both classes. Keyword arguments override fields of :class:`LesionParams` (e.g.
    ``aspect=1.0`` for an exactly square crop, ``faint=True`` for a lesion the fixed 193
    threshold removes, ``mass_level=0.9``). The height is ``size``; the width is
    ``round(size * aspect)``.
    """
    faint = params.pop("faint", None)
    unknown = set(params) - {f.name for f in fields(LesionParams)}
    if unknown:
        raise TypeError(f"render_roi_crop: unknown parameter(s) {', '.join(sorted(unknown))}")
    lesion = replace(sample_lesion_params(rng, malignant, faint), **params)
    height, width = int(size), max(int(round(size * lesion.aspect)), 8)
    image, _ = render_lesion(rng, height, width, lesion)
    return to_uint16(image)


# =========================================================================== the dataset
# A small CBIS-DDSM written in the real on-disk format: TCIA-style DICOM tree + mass CSVs.

_UID_ROOT = "1.3.6.1.4.1.9590.100.1.2."  # the prefix of every CBIS-DDSM UID
_BENIGN_SHAPES = ("OVAL", "ROUND", "LOBULATED")
_MALIGNANT_SHAPES = ("IRREGULAR", "IRREGULAR-ARCHITECTURAL_DISTORTION", "LOBULATED")
_BENIGN_MARGINS = ("CIRCUMSCRIBED", "OBSCURED", "MICROLOBULATED")
_MALIGNANT_MARGINS = ("SPICULATED", "ILL_DEFINED", "ILL_DEFINED-SPICULATED")
_MIN_CROP, _MAX_CROP = 100, 520  # ROI crop side in pixels (log-uniform)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate_cbis_ddsm` wrote."""

    root: Path
    patients: int
    rois: int
    files: int
    bytes: int


@dataclass
class _Lesion:
    patient: str
    split: str  # official split: train | test
    side: str  # LEFT | RIGHT
    views: tuple[str, ...]
    pathology: str = "BENIGN"
    faint: bool = False  # too dark for the fixed 193 threshold


@dataclass
class _ROI:
    """One lesion seen in one view: a row of the CSV."""

    lesion: _Lesion
    view: str
    abnormality_id: int
    crop: np.ndarray
    mask: np.ndarray
    params: LesionParams


def generate_cbis_ddsm(out: str | Path, patients: int = 80, seed: int = 0,
                       test_fraction: float = 0.22) -> SynthSummary:
    """Write a synthetic CBIS-DDSM mass dataset under ``out`` (see ``docs/datasets.md``).

    ``out/mass_case_description_{train,test}_set.csv`` with the real columns and value styles,
    and ``out/CBIS-DDSM/<case folders>`` with 16-bit DICOMs in both TCIA folder namings. Each
    patient has one to three masses, mostly seen in both CC and MLO views, in one or both
    breasts; the official train/test split is by patient and each split holds about as many
    malignant as benign lesions. The same ``seed`` writes the same bytes.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    out = Path(out)
    master = np.random.default_rng(seed)
    numbers = np.sort(master.choice(np.arange(1, max(10 * patients, 100)), patients,
                                    replace=False))
    n_test = int(round(test_fraction * patients)) if patients > 1 else 0
    test_numbers = set(master.choice(numbers, n_test, replace=False).tolist())
    lesions = _plan_lesions(master, numbers, test_numbers)
    monochrome1_patient = int(master.choice(numbers))  # one MONOCHROME1 crop, as in the wild

    rows: dict[str, list[list[object]]] = {"train": [], "test": []}
    for index, number in enumerate(track(numbers.tolist(), "writing synthetic CBIS-DDSM patients")):
        rng = np.random.default_rng([seed, number])
        patient_lesions = [lesion for lesion in lesions if lesion.patient == f"P_{number:05d}"]
        # Every other patient as in a newer download (descriptive folder names).
        for row in _write_patient(out, rng, patient_lesions, number == monochrome1_patient,
                                  descriptive=index % 2 == 1):
            rows[patient_lesions[0].split].append(row)
    for split, split_rows in rows.items():
        _write_csv(out / case_csv_name("mass", split), CSV_COLUMNS["mass"], split_rows)
    atomic_write_json(out / "synth.json", {"generator": "mammohybrid synth", "patients": patients,
                                           "seed": seed, "test_fraction": test_fraction})
    files = [p for p in out.rglob("*") if p.is_file()]
    return SynthSummary(out, patients, sum(len(r) for r in rows.values()), len(files),
                        sum(p.stat().st_size for p in files))


def _plan_lesions(rng: np.random.Generator, numbers: np.ndarray,
                  test_numbers: set[int]) -> list[_Lesion]:
    """Who has which lesion where; pathology balanced within each official split, and
    :data:`FAINT_FRACTION` of the lesions of each split (at least one) faint."""
    lesions = []
    for number in numbers.tolist():
        split = "test" if number in test_numbers else "train"
        for _ in range(int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))):
            views = ("CC", "MLO") if rng.random() < 0.8 else (str(rng.choice(["CC", "MLO"])),)
            lesions.append(_Lesion(f"P_{number:05d}", split, str(rng.choice(["LEFT", "RIGHT"])),
                                   views))
    for split in ("train", "test"):
        members = [lesion for lesion in lesions if lesion.split == split]
        malignant = rng.permutation(len(members)) < len(members) / 2
        faint = rng.permutation(len(members)) < max(1, round(FAINT_FRACTION * len(members)))
        for lesion, is_malignant, is_faint in zip(members, malignant, faint):
            lesion.faint = bool(is_faint)
            if is_malignant:
                lesion.pathology = "MALIGNANT"
            elif rng.random() < 0.15:
                lesion.pathology = "BENIGN_WITHOUT_CALLBACK"
    return lesions


def _write_patient(out: Path, rng: np.random.Generator, lesions: list[_Lesion],
                   monochrome1: bool, descriptive: bool) -> list[list[object]]:
    """Render and write one patient's images (``descriptive``: newer TCIA folder names);
    return its CSV rows."""
    density = int(rng.choice([1, 2, 3, 4], p=[0.2, 0.45, 0.25, 0.1]))
    prefix = "Mass-Test" if lesions[0].split == "test" else "Mass-Training"
    rois: dict[tuple[str, str], list[_ROI]] = {}
    for lesion in lesions:
        base = sample_lesion_params(rng, lesion.pathology == "MALIGNANT", faint=lesion.faint)
        base_size = float(np.exp(rng.uniform(np.log(_MIN_CROP), np.log(_MAX_CROP))))
        for view in lesion.views:
            # The same mass seen from another angle: same margin, new pose and tissue.
            params = replace(base, orientation=float(rng.uniform(0, np.pi)),
                             radius=base.radius * float(rng.uniform(0.9, 1.1)),
                             offset=(float(rng.uniform(-0.05, 0.05)),
                                     float(rng.uniform(-0.05, 0.05))))
            size = int(np.clip(base_size * rng.uniform(0.85, 1.15), _MIN_CROP, _MAX_CROP))
            height, width = size, int(np.clip(round(size * params.aspect), _MIN_CROP, 600))
            image, mask = render_lesion(rng, height, width, params)
            rois.setdefault((lesion.side, view), []).append(
                _ROI(lesion, view, 0, to_uint16(image), mask, params))
    rows = []
    for (side, view), view_rois in sorted(rois.items()):
        # Abnormality ids are numbered per view, in an order unrelated to the other view.
        for number, index in enumerate(rng.permutation(len(view_rois)), start=1):
            view_rois[index].abnormality_id = number
        case = f"{prefix}_{view_rois[0].lesion.patient}_{side}_{view}"
        full, masks = _compose_full_mammogram(rng, view_rois, side)
        study = _uid(rng)
        date = f"{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}-2016"
        full_csv = _write_series(out, rng, case, study, date, descriptive,
                                 [("full mammogram images", full, {})], shared=False)[0]
        for roi in sorted(view_rois, key=lambda r: r.abnormality_id):
            # Mostly 12 stored bits and compressed (RLE as TCIA, or JPEG 2000 lossless: the
            # smallest files); some 16-bit, some uncompressed: every reading path is exercised.
            twelve_bits = bool(rng.random() < 0.6)
            syntax = (str(rng.choice(["rle", "jpeg2000"])) if twelve_bits
                      else str(rng.choice(["rle", "explicit"])))
            encoding = {"bits_stored": 12 if twelve_bits else 16, "transfer_syntax": syntax,
                        "photometric": "MONOCHROME1" if monochrome1 else "MONOCHROME2"}
            monochrome1 = False
            shared = bool(rng.random() < 0.7)  # crop and mask in one series (as in most ROIs)
            images = [("cropped images", roi.crop, encoding),
                      ("ROI mask images", masks[id(roi)], {})]
            if shared and rng.random() < 0.15:
                images.reverse()  # the CSV's "crop" file is the mask: real data does this
            roi_case = f"{case}_{roi.abnormality_id}"
            crop_csv, mask_csv = _write_series(out, rng, roi_case, _uid(rng), date, descriptive,
                                               images, shared=shared)
            if not shared and rng.random() < 0.1:
                crop_csv, mask_csv = mask_csv, crop_csv  # swapped CSV columns
            rows.append(_csv_row(rng, roi, density, full_csv, crop_csv, mask_csv))
    return rows


def _compose_full_mammogram(rng: np.random.Generator, rois: list[_ROI], side: str
                            ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """A coarse full-field image holding the crops, and one full-size binary mask per ROI.

    The full image is never analysed (the paper works on the crops), so it is kept cheap: the
    tissue is smooth, and each crop is pasted at its place smoothed and quantised to 32 grey
    steps, which RLE compresses to a few tens of kilobytes.
    """
    tallest = max(r.crop.shape[0] for r in rois)
    widest = max(r.crop.shape[1] for r in rois)
    height = max(int(rng.integers(1000, 1300)), tallest + 40)
    width = max(int(height * 0.62), widest + 40)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Breast silhouette: half an ellipse against the chest wall (left edge for LEFT).
    chest = xx if side == "LEFT" else (width - 1 - xx)
    inside = (chest / (0.95 * width)) ** 2 + ((yy - height / 2) / (0.48 * height)) ** 2 < 1
    texture = cv2.resize(power_law_noise(rng, (height // 16, width // 16), 3.0), (width, height),
                         interpolation=cv2.INTER_LINEAR)
    full = _coarse(np.where(inside, 0.45 + 0.06 * texture, 0.02))
    masks = {}
    for roi in rois:
        h, w = roi.crop.shape
        y0, x0 = int(rng.integers(20, height - h - 19)), int(rng.integers(20, width - w - 19))
        full[y0:y0 + h, x0:x0 + w] = _coarse(cv2.GaussianBlur(roi.crop / 65535.0, (0, 0), 3))
        mask = np.zeros((height, width), np.uint8)
        mask[y0:y0 + h, x0:x0 + w][roi.mask] = 255
        masks[id(roi)] = mask
    return full, masks


def _coarse(image: np.ndarray) -> np.ndarray:
    """Fractions of full scale -> uint16 in 32 grey steps (long runs for RLE)."""
    return to_uint16(np.round(image * 32) / 32)


def _uid(rng: np.random.Generator) -> str:
    """A CBIS-DDSM-looking UID (prefix + up to 39 digits)."""
    digits = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(30, 40))))
    return _UID_ROOT + str(int(rng.integers(1, 10))) + digits.lstrip("0")[:38]


def _write_series(out: Path, rng: np.random.Generator, case: str, study: str, date: str,
                  descriptive: bool, images: list[tuple[str, np.ndarray, dict[str, Any]]],
                  shared: bool) -> list[str]:
    """Write images into one series (``shared``) or one series each; return the CSV paths.

    The CSV always uses the old naming ``case/study UID/series UID/00000N.dcm``; on disk the
    newer descriptive naming ``MM-DD-YYYY-DDSM-NA-<study>/1.000000-<description>-<series>/1-N.dcm``
    is used when ``descriptive``.
    """
    csv_paths = []
    series = _uid(rng)
    for index, (description, image, encoding) in enumerate(images):
        if not shared and index > 0:
            series = _uid(rng)
        number = index if shared else 0
        series_description = images[-1][0] if shared else description
        csv_path = f"{case}/{study}/{series}/{number:06d}.dcm"
        if descriptive:
            disk = (f"{case}/{date}-DDSM-NA-{study[-5:]}/"
                    f"1.000000-{series_description}-{series[-5:]}/1-{number + 1}.dcm")
        else:
            disk = csv_path
        attributes = {"PatientID": case, "StudyInstanceUID": study, "SeriesInstanceUID": series,
                      "SOPInstanceUID": _uid(rng), "SeriesDescription": series_description,
                      "SeriesNumber": 1, "InstanceNumber": number + 1,
                      "StudyDate": date[6:] + date[:2] + date[3:5], "BodyPartExamined": "BREAST"}
        write_dicom(out / "CBIS-DDSM" / disk, image, attributes=attributes,
                    **({"transfer_syntax": "rle"} | encoding))
        csv_paths.append(csv_path)
    return csv_paths


def _csv_row(rng: np.random.Generator, roi: _ROI, density: int, full: str, crop: str,
             mask: str) -> list[object]:
    """One row in the value style of the real mass CSVs."""
    malignant = roi.lesion.pathology == "MALIGNANT"
    if malignant:
        shape = str(rng.choice(_MALIGNANT_SHAPES, p=[0.7, 0.15, 0.15]))
        margins = str(rng.choice(_MALIGNANT_MARGINS, p=[0.6, 0.25, 0.15]))
        assessment = int(rng.choice([4, 5, 3, 0], p=[0.45, 0.4, 0.1, 0.05]))
    else:
        lobulated = any(amplitude > 0.03 for _, amplitude, _ in roi.params.margin_harmonics)
        shape = "LOBULATED" if lobulated else ("OVAL" if roi.params.elongation > 1.2 else "ROUND")
        margins = str(rng.choice(_BENIGN_MARGINS, p=[0.6, 0.3, 0.1]))
        assessment = int(rng.choice([2, 3, 4, 0], p=[0.15, 0.45, 0.3, 0.1]))
    faint = roi.params.mass_level < ROI_THRESHOLD_FRACTION
    subtlety = int(rng.integers(1, 3)) if faint else int(rng.choice([3, 4, 5], p=[0.25, 0.35, 0.4]))
    # As in the real files, the path of the second file of a series ends in a quoted newline.
    paths = [p + "\n" if p.endswith("000001.dcm") else p for p in (full, crop, mask)]
    return [roi.lesion.patient, density, roi.lesion.side, roi.view, roi.abnormality_id, "mass",
            shape, margins, assessment, roi.lesion.pathology, subtlety, *paths]


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    rows = sorted(rows, key=lambda r: (r[0], r[2], r[3], r[4]))
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")  # the real files end lines in CRLF
        writer.writerow(header)
        writer.writerows(rows)


def sample_grid(seed: int = 0, per_class: int = 8, rows_per_class: int = 2,
                tile: int = 160) -> np.ndarray:
    """An 8-bit preview: ``rows_per_class`` rows of benign crops, then of malignant crops, each
    crop shown on the 8-bit full-range scale (value * 255 / 65535) with a label strip."""
    rng = np.random.default_rng(seed)
    bands = []
    for malignant, name in ((False, "benign: circumscribed round / oval"),
                            (True, "malignant: irregular, spiculated")):
        label = np.full((28, per_class * tile), 255, np.uint8)
        cv2.putText(label, name, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 1, cv2.LINE_AA)
        bands.append(label)
        for _ in range(rows_per_class):
            row = []
            for _ in range(per_class):
                size = int(np.exp(rng.uniform(np.log(_MIN_CROP), np.log(_MAX_CROP))))
                crop = render_roi_crop(rng, size, malignant, faint=False)
                eight_bit = np.round(crop / 65535.0 * 255).astype(np.uint8)
                row.append(cv2.resize(eight_bit, (tile, tile), interpolation=cv2.INTER_AREA))
            bands.append(np.hstack(row))
    return np.vstack(bands)
