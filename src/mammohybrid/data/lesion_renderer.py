"""The synthetic lesion renderer: mammography-like mass ROI crops.

It follows what radiologists read on a mass ROI:

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

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The paper's ROI threshold on the 8-bit scale, as a fraction of full scale.
ROI_THRESHOLD_FRACTION = 193 / 255
# Share of lesions rendered too faint for the fixed threshold (exercises empty-ROI handling).
FAINT_FRACTION = 0.05


@dataclass(frozen=True)
class LesionParams:
    """Everything that defines one rendered lesion crop (intensities are fractions of 65535).

    Sampled by :func:`sample_lesion_params`; any field can be overridden through
    ``mammohybrid.data.synth.render_roi_crop(..., **params)``.
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
                      thickness=max(1, round(short / 150)), lineType=cv2.LINE_AA, shift=4)
        density += opacity * canvas.astype(np.float32) / 255.0
    return cv2.GaussianBlur(density, (0, 0), sigmaX=max(short / 300, 0.6))


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Fractions of full scale -> uint16 (value * 65535, rounded)."""
    return np.round(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
