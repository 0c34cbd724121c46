"""Test-time filter ensemble: the same image through several pre-processing strategies, the
model's probabilities averaged.

The paper's further-work section proposes the median filter for malignant-looking cases and the
Wiener filter for benign-looking ones. The label is unknown at inference, so the only honest
form of that idea is an ensemble that runs every strategy and averages the probabilities (and
reports each). The decision threshold stored in a run was chosen on validation for the
strategy the run was *trained* with; applied to an average over other strategies it is an
approximation (see ``docs/prediction.md``).

The paper's three strategies share their expensive start (to 8 bits -> working size -> NLM ->
ROI), so :class:`StrategyEnsemble` runs the steps the chains have in common once and only the
different tails per strategy: ``median,wiener`` costs little more than ``median`` alone.

NumPy and OpenCV only: worker processes import this module, and must not import TensorFlow.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np

from mammohybrid.config import PreprocessConfig
from mammohybrid.errors import ConfigError
from mammohybrid.preprocess import Chain, ProcessedImage, Record, build_chain, strategy_names


def parse_strategies(text: str | Sequence[str] | None) -> list[str]:
    """``"median,wiener"`` (or a list) -> ``["median", "wiener"]``; None or empty -> ``[]``.

    Names must be registered strategies (:func:`mammohybrid.preprocess.strategy_names`);
    duplicates are dropped, order is kept.
    """
    if text is None:
        return []
    items = text.split(",") if isinstance(text, str) else list(text)
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    known = strategy_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--filters: unknown strategy {', '.join(unknown)} "
                          f"(known: {', '.join(known)})")
    return names


def strategy_config(base: PreprocessConfig, strategy: str) -> PreprocessConfig:
    """``base`` with another strategy; every other setting (NLM, ROI threshold, filter sizes,
    CLAHE, sizes) stays as the run was trained with. ``custom`` keeps ``base.steps`` and is
    only possible when ``base`` is itself custom."""
    if strategy == base.strategy:
        return base
    if strategy == "custom":
        raise ConfigError("--filters: 'custom' needs preprocess.steps, which only a run trained "
                          "with strategy custom has")
    return base.model_copy(update={"strategy": strategy, "steps": None})


class StrategyEnsemble:
    """Pre-process one image with several strategies, sharing the steps their chains have in
    common (computed once). ``strategies`` empty or None means the base config's own strategy.

    Calling it returns ``{strategy: ProcessedImage}`` in the order of :attr:`names`; the first
    name is the *primary* strategy (whose kept fraction and model input the predictor reports
    and explains).
    """

    def __init__(self, base: PreprocessConfig, strategies: Sequence[str] | None = None) -> None:
        self.base = base
        self.names = list(strategies or [base.strategy])
        self.chains: dict[str, Chain] = {name: build_chain(strategy_config(base, name))
                                         for name in self.names}
        # All chains come from one config that differs only in the strategy, so steps with the
        # same name at the same position are the same transform: comparing names is enough.
        step_names = [chain.names for chain in self.chains.values()]
        shared = 0
        while all(len(names) > shared for names in step_names) and \
                len({names[shared] for names in step_names}) == 1:
            shared += 1
        self.shared_steps = shared

    @property
    def primary(self) -> str:
        return self.names[0]

    @property
    def is_training_strategy(self) -> bool:
        """True when the ensemble is exactly the strategy the stored threshold was chosen for."""
        return self.names == [self.base.strategy]

    def __call__(self, image: np.ndarray,
                 known: Record | None = None) -> dict[str, ProcessedImage]:
        """``known``: what is known of the image before the chains (its pixel spacing)."""
        record = copy.deepcopy(known) if known is not None else Record()
        shared_chain = next(iter(self.chains.values()))
        output = image
        for step in shared_chain.steps[:self.shared_steps]:
            output = step(output, record)
        results = {}
        for name, chain in self.chains.items():
            own = copy.deepcopy(record)  # each tail adds its own warnings
            result = output
            for step in chain.steps[self.shared_steps:]:
                result = step(result, own)
            results[name] = ProcessedImage.from_record(own, result, image.shape[:2])
        return results


def average_probabilities(per_strategy: Mapping[str, np.ndarray]) -> np.ndarray:
    """The ensemble's probability: the plain mean over strategies (no strategy is favoured,
    since choosing weights would need labels)."""
    if not per_strategy:
        raise ValueError("average_probabilities: no strategy given")
    return np.mean(np.stack([np.asarray(p, dtype=float) for p in per_strategy.values()]), axis=0)
