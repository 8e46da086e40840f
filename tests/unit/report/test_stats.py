"""harness.report.stats against scipy's own numbers, and at its edges (one seed, identical values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from harness.report.stats import Interval, bootstrap_interval, paired_test, rank_with_ties, t_interval, within_noise

SEEDS = [0.412, 0.398, 0.455, 0.431, 0.377]


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_t_interval_matches_scipy(confidence):
    interval = t_interval(SEEDS, confidence)
    expected = sp.ttest_1samp(SEEDS, 0.0).confidence_interval(confidence)
    assert interval.mean == pytest.approx(np.mean(SEEDS))
    assert interval.std == pytest.approx(np.std(SEEDS, ddof=1))
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert interval.n == 5


def test_t_interval_edges():
    one = t_interval([0.5])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.low) and math.isnan(one.high)
    same = t_interval([0.25, 0.25, 0.25])
    assert (same.low, same.high, same.std) == (0.25, 0.25, 0.0)
    missing = t_interval([0.4, math.nan, 0.6])
    assert missing.n == 2 and missing.mean == pytest.approx(0.5)
    assert math.isnan(t_interval([]).mean)


def test_bootstrap_interval_matches_scipy_bca():
    items = np.random.default_rng(1).binomial(1, 0.3, size=200).astype(float)
    interval = bootstrap_interval(items, 0.95, n_resamples=2000, seed=7)
    expected = sp.bootstrap((items,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa",
                            rng=np.random.default_rng(7)).confidence_interval
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert interval.mean == pytest.approx(items.mean()) and interval.low < interval.mean < interval.high


def test_bootstrap_interval_shrinks_with_items_and_agrees_with_t_on_normal_data():
    rng = np.random.default_rng(2)
    small, large = rng.normal(1.0, 1.0, 100), rng.normal(1.0, 1.0, 1600)
    assert bootstrap_interval(large).half_width < bootstrap_interval(small).half_width / 2.5
    boot, t = bootstrap_interval(large), t_interval(large)
    assert boot.half_width == pytest.approx(t.half_width, rel=0.1)


def test_bootstrap_over_seeds_x_items_resamples_items():
    per_item = np.random.default_rng(3).normal(0.0, 1.0, 300)
    # the same items under three seeds: nothing new to learn from the repeats
    repeated, once = bootstrap_interval(np.stack([per_item] * 3), seed=5), bootstrap_interval(per_item, seed=5)
    assert (repeated.mean, repeated.low, repeated.high) == pytest.approx((once.mean, once.low, once.high))
    assert repeated.n == once.n == 300
    constant = bootstrap_interval(np.full((2, 10), 0.0))
    assert (constant.low, constant.high) == (0.0, 0.0)


def test_paired_test_matches_scipy_ttest_rel():
    rng = np.random.default_rng(4)
    a = rng.normal(0.5, 0.1, 30)
    b = a - 0.02 + rng.normal(0.0, 0.03, 30)
    result = paired_test(a, b)
    expected = sp.ttest_rel(a, b)
    ci = expected.confidence_interval(0.95)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.difference.mean == pytest.approx(np.mean(a - b))
    assert (result.difference.low, result.difference.high) == pytest.approx((ci.low, ci.high))
    assert result.within_noise == (ci.low <= 0 <= ci.high)


def test_paired_test_on_seeds_x_items_pairs_by_item():
    rng = np.random.default_rng(5)
    a = rng.normal(0.0, 1.0, (3, 50))
    b = a - 0.5 + rng.normal(0.0, 0.2, (3, 50))
    result = paired_test(a, b)
    expected = sp.ttest_rel(a.mean(axis=0), b.mean(axis=0))
    assert result.difference.n == 50 and result.p_value == pytest.approx(expected.pvalue)
    assert not result.within_noise and result.difference.low > 0
    with pytest.raises(ValueError, match="same shape"):
        paired_test(a, b[:, :10])


def test_noise_floor_flag():
    assert paired_test([0.30, 0.31, 0.29], [0.30, 0.30, 0.31]).within_noise
    assert not paired_test([0.50, 0.52, 0.51, 0.49], [0.30, 0.31, 0.29, 0.30]).within_noise
    identical = paired_test([0.2, 0.3], [0.2, 0.3])
    assert identical.within_noise and math.isnan(identical.p_value)
    assert within_noise(Interval(0.1, math.nan, math.nan, 1))  # no interval: cannot tell them apart
    assert not within_noise(Interval(-0.3, -0.5, -0.1, 4))


def test_rank_with_ties_follows_overlap_and_direction():
    best, overlaps_best, clearly_worse = Interval(0.8, 0.7, 0.9, 3), Interval(0.65, 0.5, 0.75, 3), Interval(0.2, 0.1, 0.3, 3)
    assert rank_with_ties([clearly_worse, best, overlaps_best], higher_is_better=True) == [3, 1, 1]
    assert rank_with_ties([clearly_worse, best, overlaps_best], higher_is_better=False) == [1, 2, 2]
    single_seed = Interval(0.72, math.nan, math.nan, 1)  # counts as its mean: inside best's interval
    assert rank_with_ties([best, single_seed, clearly_worse], higher_is_better=True) == [1, 1, 3]
