"""The lesion renderer: the parenchyma texture's spectrum, the class cue in the margin."""

from __future__ import annotations

import numpy as np

from mammohybrid.data.lesion_renderer import (
    ROI_THRESHOLD_FRACTION,
    power_law_noise,
    render_lesion,
    sample_lesion_params,
)


def test_power_law_noise_has_the_asked_spectrum_slope():
    field = power_law_noise(np.random.default_rng(0), (256, 256), beta=3.0)
    assert abs(field.mean()) < 1e-5 and abs(field.std() - 1) < 1e-4
    power = np.abs(np.fft.fft2(field)) ** 2
    freq = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256)))
    bands = [(0.02, 0.04), (0.16, 0.32)]
    mean_power = [power[(freq >= lo) & (freq < hi)].mean() for lo, hi in bands]
    # 1/f^3: a band 8x higher in frequency has about 8^3 = 512x less power
    assert 200 < mean_power[0] / mean_power[1] < 1300


def test_the_class_changes_only_the_margin():
    rng = np.random.default_rng(0)
    benign = [sample_lesion_params(rng, malignant=False) for _ in range(20)]
    malignant = [sample_lesion_params(rng, malignant=True) for _ in range(20)]
    assert all(not p.spicules and max(k for k, _, _ in p.margin_harmonics) == 4 for p in benign)
    assert all(9 <= len(p.spicules) <= 25 for p in malignant)
    for field in ("radius", "tissue_contrast", "noise_sigma"):
        low, high = (sorted(getattr(p, field) for p in group) for group in (benign, malignant))
        assert low[0] < high[-1] and high[0] < low[-1], field  # ranges overlap


def test_render_lesion_masks_the_bright_mass():
    rng = np.random.default_rng(1)
    params = sample_lesion_params(rng, malignant=True, faint=False)
    image, mask = render_lesion(rng, 120, 140, params)
    assert image.dtype == np.float32 and image.shape == mask.shape == (120, 140)
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert image[mask].mean() > ROI_THRESHOLD_FRACTION > image[~mask].mean()
