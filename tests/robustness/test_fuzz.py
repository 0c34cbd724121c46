"""The small fuzz round of ``make test`` (``make fuzz`` runs a large one): a fixed seed, a few
dozen mutants of every input format, configs, manifests and run-dir files."""

from __future__ import annotations

import pytest

from .fuzz import image_seeds, mutants, run_fuzz, text_seeds

SEED, PER_SEED = 20260, 40
SEED_FILES = len(image_seeds()) + len(text_seeds())


def test_the_same_seed_gives_the_same_mutants() -> None:
    first = [m.data for m in mutants(SEED, 2)]
    assert first == [m.data for m in mutants(SEED, 2)]
    assert len(first) == 2 * SEED_FILES and len(set(first)) == len(first)


@pytest.mark.slow
def test_a_small_fuzz_round_finds_nothing() -> None:
    result = run_fuzz(SEED, PER_SEED, workers=1)
    assert result.mutants == SEED_FILES * PER_SEED
    assert [f"{m.kind}/{m.name} #{m.number}: {why}" for m, why in result.failures] == []
