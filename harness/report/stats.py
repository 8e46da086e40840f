"""Statistics for comparing runs: intervals across seeds and over items, paired differences, ranks.

Two sources of noise, two intervals. Seeds (adapter init, data order) are few, so their interval
uses the t-distribution. Items are many, but per-item scores are far from normal (exact match is
0 or 1), so the interval over items is a bootstrap. scipy does the arithmetic; this module decides
what is compared with what and what happens at the edges (one seed, identical values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval; `low`/`high` are NaN where there are too few values to
    estimate one (a single seed)."""

    mean: float
    low: float
    high: float
    n: int
    std: float = math.nan  # sample standard deviation (ddof=1) of the values behind the mean

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[np.isfinite(array)]


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean, sample std and t-distribution interval of `values` (one per seed); missing values
    (NaN) are left out and `n` counts the rest."""
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    std = float(x.std(ddof=1))
    if std == 0.0:  # every seed agrees; scipy rejects a zero scale, the interval is the point
        return Interval(mean, mean, mean, n, 0.0)
    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=std / math.sqrt(n))
    return Interval(mean, float(low), float(high), n, std)


def bootstrap_interval(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE,
                       n_resamples: int = 9999, seed: int = 0) -> Interval:
    """Mean of per-item values with a BCa bootstrap interval over items.

    `values` is one value per item, or a seeds x items array: items are then resampled whole,
    each keeping its value under every seed, so the interval reflects which items were drawn.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim == 2:
        # The mean over seeds and resampled items equals the mean over resampled per-item seed
        # means, so resampling those is resampling items jointly across seeds.
        x = x.mean(axis=0)
    x = _finite(x)
    n = len(x)
    if n < 2 or np.ptp(x) == 0:  # nothing to resample (BCa is undefined on identical values)
        return t_interval(x, confidence)
    result = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="BCa", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(float(x.mean()), float(ci.low), float(ci.high), n, float(x.std(ddof=1)))


@dataclass(frozen=True)
class PairedTest:
    """a - b on paired units: the mean difference with its t-interval, and the two-sided p-value
    of the paired t-test (NaN where undefined: fewer than two pairs, or every difference equal)."""

    difference: Interval
    p_value: float

    @property
    def within_noise(self) -> bool:
        return within_noise(self.difference)


def paired_test(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                confidence: float = CONFIDENCE) -> PairedTest:
    """Paired t-test of two methods measured on the same units.

    1-D inputs pair unit by unit (the same seeds, or the same items). Seeds x items inputs pair by
    item and seed; the per-item difference is averaged over seeds and the item is the unit, so
    the seeds of one item do not count as independent evidence.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need the same shape (same units in the same order), got {a.shape} and {b.shape}")
    d = a - b
    if d.ndim == 2:
        d = d.mean(axis=0)
    d = _finite(d)
    difference = t_interval(d, confidence)
    defined = difference.n >= 2 and difference.std > 0
    p_value = float(stats.ttest_1samp(d, 0.0).pvalue) if defined else math.nan
    return PairedTest(difference, p_value)


def within_noise(difference: Interval) -> bool:
    """The noise-floor flag: True when zero lies inside the interval of a difference, or when no
    interval could be estimated: the data cannot tell the two apart."""
    return not (difference.low > 0 or difference.high < 0)


def _bounds(interval: Interval) -> tuple[float, float]:
    if math.isnan(interval.low) or math.isnan(interval.high):
        return interval.mean, interval.mean  # no interval (one seed): only the mean is known
    return interval.low, interval.high


def rank_with_ties(intervals: Sequence[Interval], higher_is_better: bool) -> list[int]:
    """Competition ranks that only separate what the intervals separate: 1 + the number of entries
    whose whole interval is better than this entry's whole interval. Entries with overlapping
    intervals share a rank; an entry without an interval counts as its mean."""
    bounds = [_bounds(i) for i in intervals]

    def beats(j: int, i: int) -> bool:
        return bounds[j][0] > bounds[i][1] if higher_is_better else bounds[j][1] < bounds[i][0]

    return [1 + sum(beats(j, i) for j in range(len(bounds)) if j != i) for i in range(len(bounds))]
