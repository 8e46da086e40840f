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
from scipy import special

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
    from scipy import stats  # here, not at the top: scipy.stats adds half a second to every report's start

    low, high = stats.t.interval(confidence, df=n - 1, loc=mean, scale=std / math.sqrt(n))
    return Interval(mean, float(low), float(high), n, std)


def t_bounds(mean: np.ndarray, std: np.ndarray, n: np.ndarray,
             confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`t_interval`'s low, high and std for many groups at once, from each group's mean, sample std
    (ddof=1) and number of finite values; the same edges and the same arithmetic as scipy's
    t.interval: no interval below two values, a point where every value agrees."""
    mean, std, n = (np.asarray(a, dtype=float) for a in (mean, std, n))
    low, high = np.full(mean.shape, math.nan), np.full(mean.shape, math.nan)
    std = np.where(n >= 2, std, math.nan)
    point = (n >= 2) & (std == 0)
    low[point] = high[point] = mean[point]
    spread = (n >= 2) & (std > 0)
    df, scale, center = n[spread] - 1, std[spread] / np.sqrt(n[spread]), mean[spread]
    # scipy.stats.t.ppf(q, df) is special.stdtrit(df, q), times scale 1 plus loc 0: the same numbers
    low[spread] = special.stdtrit(df, (1.0 - confidence) / 2) * scale + center
    high[spread] = special.stdtrit(df, (1.0 + confidence) / 2) * scale + center
    return low, high, std


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
    from scipy import stats

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
    from scipy import stats

    p_value = float(stats.ttest_1samp(d, 0.0).pvalue) if defined else math.nan
    return PairedTest(difference, p_value)


@dataclass(frozen=True)
class PairedTests:
    """`paired_test` of many pairs at once, as arrays with one entry per pair: the mean difference
    a - b over the units both have, its interval, std, the number of units, and the p-value."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    std: np.ndarray
    n: np.ndarray
    p_value: np.ndarray

    @property
    def within_noise(self) -> np.ndarray:
        return ~((self.low > 0) | (self.high < 0))


def paired_tests(a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE) -> PairedTests:
    """Columns of `a` and `b` (units x pairs, NaN where a unit is missing) paired unit by unit: what
    `paired_test` gives for each column, computed for all columns at once."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = np.where(np.isfinite(d), d, np.nan)
    n = np.isfinite(d).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(d, axis=0) / np.maximum(n, 1), math.nan)
        squares = np.nansum((d - mean) ** 2, axis=0)
        std = np.where(n >= 2, np.sqrt(squares / np.maximum(n - 1, 1)), math.nan)
        low, high, std = t_bounds(mean, std, n, confidence)
        defined = (n >= 2) & (std > 0)
        t = mean / (std / np.sqrt(n))
        p_value = np.where(defined, 2 * special.stdtr(np.maximum(n - 1, 1), -np.abs(t)), math.nan)  # 2 t.sf(|t|)
    return PairedTests(mean, low, high, std, n, p_value)


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
    bounds = np.array([_bounds(i) for i in intervals], dtype=float).reshape(-1, 2)
    low, high = bounds[:, 0], bounds[:, 1]
    # Sorted bounds count the entries beating each one in O(n log n); an entry never beats itself
    # (its low is at most its high) and NaN bounds beat nothing and are beaten by nothing.
    if higher_is_better:
        lows = np.sort(low[~np.isnan(low)])
        beaten_by = len(lows) - np.searchsorted(lows, high, side="right")
    else:
        highs = np.sort(high[~np.isnan(high)])
        beaten_by = np.searchsorted(highs, low, side="left")
    beaten_by = np.where(np.isnan(high if higher_is_better else low), 0, beaten_by)
    return [1 + int(b) for b in beaten_by]
