"""Seed statistics and the verdict: is the difference between two arms larger than their seed spread?

The spread of an arm is the sample standard deviation of its metric over seeds. Two arms are told apart
when their mean ± std intervals do not overlap, i.e. |mean_a - mean_b| > std_a + std_b; with one seed per
arm there is no spread to compare with, and the verdict says so instead of guessing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

NOISE_VERDICT = "not distinguishable from noise at this budget"
SIGNAL_VERDICT = "the difference exceeds the seed spread"


@dataclass(frozen=True)
class SeedSummary:
    """Mean and sample standard deviation (None for one seed) of a metric over seeds."""

    mean: float
    std: float | None
    seeds: int


def summarize(values: Sequence[float]) -> SeedSummary | None:
    """The summary of the finite values (a seed that failed gives none); None when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return SeedSummary(statistics.fmean(finite), std, len(finite))


def verdict(arm: str, baseline: str, ours: SeedSummary | None, reference: SeedSummary | None, unit: str) -> str:
    """One line: `arm` against `baseline`, the difference of their means and whether it exceeds the spread."""
    if ours is None or reference is None:
        missing = arm if ours is None else baseline
        return f"{arm} vs {baseline}: no comparison, {missing} has no finished seed"
    difference = ours.mean - reference.mean
    head = f"{arm} vs {baseline}: {difference:+.2f}{unit}"
    if ours.std is None or reference.std is None:
        return f"{head}; one seed per arm, so the seed spread is unknown (run --seeds 2 or more)"
    spread = ours.std + reference.std
    word = SIGNAL_VERDICT if abs(difference) > spread else NOISE_VERDICT
    return f"{head} against a seed spread of {spread:.2f}{unit} (std {ours.std:.2f} + {reference.std:.2f}): {word}"
