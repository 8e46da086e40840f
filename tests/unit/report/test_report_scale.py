"""The report at scale (issue 18): its vectorised statistics equal the per-configuration ones they
replace, and a figure of many configurations stays readable: unlabelled points coloured by method,
only the frontier labelled, in callouts that never overlap."""

from __future__ import annotations

import math
import random
from itertools import combinations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from harness.report.aggregate import STATS, config_summary  # noqa: E402
from harness.report.callouts import MAX_LABELS, stack  # noqa: E402
from harness.report.figures import (MAX_LABELLED_CONFIGS, config_colors, learning_forgetting_figure,  # noqa: E402
                                    loss_curve_figure, save_figure)
from harness.report.frontier import frontier, pareto_mask  # noqa: E402
from harness.report.labels import config_labels  # noqa: E402
from harness.report.pareto import pareto_figure  # noqa: E402
from harness.report.stats import Interval, paired_test, rank_with_ties, t_interval  # noqa: E402
from harness.report.tables import MAX_ALL_PAIRS, leaderboard, paired_comparisons  # noqa: E402

METHODS = ["lora", "pissa", "dora", "ia3", "vera"]
HIB = {"quality": True, "cost": False, "trainable_params": False, "peak_mem_mib": False, "train_time_s": False}


def synthetic_runs(configs: int, seeds: int, rng_seed: int = 0, trade_off: bool = False) -> pd.DataFrame:
    """Runs of `configs` configurations (a method and an lr each) x `seeds` seeds, with the report's
    run columns; `trade_off` puts every configuration on one quality-cost curve (all on the frontier)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for c in range(configs):
        method, variant = METHODS[c % len(METHODS)], f"train.lr={c // len(METHODS) + 1}e-4"
        base_cost = float(c) if trade_off else rng.uniform(1, 100)
        base_quality = 0.1 * c if trade_off else rng.normal()
        for seed in range(seeds):
            rows.append({"task": "t", "model": "m", "budget": "b", "method": method, "variant": variant,
                         "config": f"{method} [{variant}]", "seed": seed, "hardware": "cpu",
                         "quality": base_quality + rng.normal(0, 0.01), "cost": base_cost + rng.normal(0, 0.01),
                         "forgetting": rng.normal(), "run_id": f"{c}-{seed}"})
    return pd.DataFrame(rows)


def summary_of(runs: pd.DataFrame) -> pd.DataFrame:
    summary = config_summary(runs, ["quality", "cost", "forgetting"])
    summary["label"] = config_labels(summary)
    return summary


def callout_boxes(fig) -> list:
    """Where each callout's text is drawn (its leader line left out), in pixels."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    return [Text.get_window_extent(text, renderer) for text in fig.axes[0].texts]


def test_config_summary_equals_t_interval_of_each_configuration():
    runs = synthetic_runs(30, 3)
    runs.loc[runs.index[:3], "quality"] = [math.nan, math.inf, 0.5]  # missing and infinite values are left out
    runs.loc[runs["config"] == runs["config"].iloc[5], "cost"] = 2.0  # every seed agrees
    runs = runs[~((runs["config"] == runs["config"].iloc[9]) & (runs["seed"] > 0))]  # one seed only
    summary = config_summary(runs, ["quality", "cost"])
    for _, row in summary.iterrows():
        group = runs[runs["config"] == row["config"]]
        for quantity in ("quality", "cost"):
            expected = t_interval(group[quantity])
            for stat in STATS:
                got, want = row[f"{quantity}_{stat}"], getattr(expected, stat)
                assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12), (quantity, stat)


def test_paired_comparisons_are_every_pair_up_to_the_limit_then_each_against_the_best():
    few = synthetic_runs(MAX_ALL_PAIRS, 4)
    table = paired_comparisons(few, "quality", True)
    assert len(table) == MAX_ALL_PAIRS * (MAX_ALL_PAIRS - 1) // 2
    for row in table.sample(5, random_state=0).itertuples():
        a = few[few["config"] == row.a].set_index("seed")["quality"]
        b = few[few["config"] == row.b].set_index("seed")["quality"]
        expected = paired_test(a, b.reindex(a.index))
        assert row.difference == pytest.approx(expected.difference.mean, rel=1e-9)
        assert (row.ci_low, row.ci_high) == pytest.approx((expected.difference.low, expected.difference.high), rel=1e-9)
        assert row.p_value == pytest.approx(expected.p_value, rel=1e-9) and row.within_noise == expected.within_noise
    many = synthetic_runs(3 * MAX_ALL_PAIRS, 4)
    table = paired_comparisons(many, "quality", True)
    best = many.groupby("config")["quality"].mean().idxmax()
    assert len(table) == 3 * MAX_ALL_PAIRS - 1 and (table["a"] == best).all() and best not in set(table["b"])


def test_ranks_follow_the_pairwise_definition():
    rng = random.Random(0)
    for _ in range(200):
        intervals = []
        for _ in range(rng.randint(0, 25)):
            mean, half = rng.choice([rng.random(), 0.5, math.nan]), rng.choice([0.0, 0.1 * rng.random(), math.nan])
            intervals.append(Interval(mean, mean - half, mean + half, 3))
        for higher in (True, False):
            def beats(j, i):
                bj, bi = [(v.mean, v.mean) if math.isnan(v.low) else (v.low, v.high) for v in (intervals[j], intervals[i])]
                return bj[0] > bi[1] if higher else bj[1] < bi[0]
            expected = [1 + sum(beats(j, i) for j in range(len(intervals)) if j != i) for i in range(len(intervals))]
            assert rank_with_ties(intervals, higher) == expected


def test_leaderboard_ranks_by_each_configurations_interval():
    """Regression: the leaderboard built Intervals positionally from the summary's STATS columns,
    whose order differs from Interval's fields, so every configuration got rank 1."""
    runs = synthetic_runs(configs=12, seeds=3, trade_off=True).assign(trainable_params=1.0, peak_mem_mib=1.0, train_time_s=1.0)
    summary = config_summary(runs, ["quality", "forgetting", "trainable_params", "peak_mem_mib", "train_time_s"])
    intervals = [Interval(mean=row.quality_mean, low=row.quality_low, high=row.quality_high, n=int(row.quality_n))
                 for row in summary.itertuples()]
    expected = dict(zip(summary["config"], rank_with_ties(intervals, True)))
    board = leaderboard(summary, "quality", True, "forgetting")
    ranks = dict(zip(board["method"] + " [" + board["variant"] + "]", board["rank"]))
    assert ranks == expected
    assert sorted(ranks.values()) == list(range(1, 13))  # means 0.1 apart, noise 0.01: every interval separates


def test_pareto_mask_follows_the_pairwise_definition():
    rng = random.Random(1)
    for _ in range(300):
        n = rng.randint(0, 30)
        x = [rng.choice([rng.randint(0, 5), math.nan]) for _ in range(n)]
        y = [rng.choice([rng.randint(0, 5), rng.random()]) for _ in range(n)]
        for hx, hy in [(True, True), (True, False), (False, True), (False, False)]:
            gx, gy = np.array(x, float) * (1 if hx else -1), np.array(y, float) * (1 if hy else -1)
            expected = [np.isfinite(gx[i]) and not any(np.isfinite(gx[j]) and gx[j] >= gx[i] and gy[j] >= gy[i]
                                                       and (gx[j] > gx[i] or gy[j] > gy[i]) for j in range(n))
                        for i in range(n)]
            assert pareto_mask(x, y, hx, hy).tolist() == expected


def test_stacked_callouts_never_overlap_and_keep_their_order():
    rng = random.Random(2)
    for _ in range(300):
        n = rng.randint(1, 30)
        desired, heights = [rng.random() for _ in range(n)], [rng.uniform(0.01, 0.08) for _ in range(n)]
        centres = stack(desired, heights)
        order = sorted(range(n), key=lambda i: -desired[i])
        for upper, lower in zip(order, order[1:]):
            assert centres[upper] - heights[upper] / 2 >= centres[lower] + heights[lower] / 2 - 1e-12
        if sum(heights) <= 1:
            assert all(-1e-12 <= c - h / 2 and c + h / 2 <= 1 + 1e-12 for c, h in zip(centres, heights))


def test_a_few_configurations_keep_a_legend_entry_each():
    summary = summary_of(synthetic_runs(6, 3))
    fig = pareto_figure(summary, "cost", "quality", HIB, config_colors(summary["config"]), "t")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(legend) == sorted([*summary["label"], "Pareto frontier"])
    labelled = "\n".join(t.get_text() for t in fig.axes[0].texts).split("\n")
    assert sorted(labelled) == sorted(frontier(summary, "cost", "quality", HIB)["label"])


def test_a_crowded_pareto_plot_labels_only_its_frontier_without_overlaps():
    runs = synthetic_runs(8 * MAX_LABELLED_CONFIGS, 3)
    summary = summary_of(runs)
    fig = pareto_figure(summary, "cost", "quality", HIB, config_colors(runs["config"]), "t")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(legend) == sorted([*METHODS, "Pareto frontier"])  # a colour per method, not an entry per config
    front = frontier(summary, "cost", "quality", HIB)
    labelled = "\n".join(t.get_text() for t in fig.axes[0].texts).split("\n")
    assert 0 < len(front) <= MAX_LABELS and sorted(labelled) == sorted(front["label"])
    boxes = callout_boxes(fig)
    assert not any(a.overlaps(b) for a, b in combinations(boxes, 2))
    assert fig.get_figheight() < 10


def test_the_base_model_is_a_line_at_its_quality_and_stays_off_a_log_axis(tmp_path):
    """0 trainable parameters has no place on a log axis: the base model is drawn as its quality's line
    only, and the saved figure keeps its size (a callout at log(0) once made a 400-megapixel PNG)."""
    runs = synthetic_runs(4, 2).rename(columns={"cost": "trainable_params"})
    runs["trainable_params"] = runs["trainable_params"].abs() * 1e4
    base = runs[runs["config"] == runs["config"].iloc[0]].assign(method="base", variant="", config="base",
                                                                  trainable_params=0.0, quality=-5.0)
    summary = config_summary(pd.concat([runs, base]), ["quality", "trainable_params"])
    summary["label"] = config_labels(summary)
    fig = pareto_figure(summary, "trainable_params", "quality", HIB, config_colors(summary["config"]), "t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlim()[0] > 0
    assert "base" not in "\n".join(t.get_text() for t in ax.texts)  # no callout on the base model
    assert [line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"] == [-5.0]
    assert "base model" in [t.get_text() for t in fig.legends[0].get_texts()]
    png = save_figure(fig, tmp_path, "pareto")[0]
    assert max(Image.open(png).size) < 3000


def test_a_frontier_longer_than_the_label_limit_gets_evenly_spread_callouts():
    summary = summary_of(synthetic_runs(4 * MAX_LABELS, 2, trade_off=True))
    front = frontier(summary, "cost", "quality", HIB)
    assert len(front) == 4 * MAX_LABELS  # every configuration trades quality for cost
    fig = pareto_figure(summary, "cost", "quality", HIB, config_colors(summary["config"]), "t")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == MAX_LABELS and texts[0] == front["label"].iloc[0] and texts[-1] == front["label"].iloc[-1]
    assert f"labelled: {MAX_LABELS} of the {len(front)} frontier points" in fig.legends[0].get_title().get_text()
    boxes = callout_boxes(fig)
    assert not any(a.overlaps(b) for a, b in combinations(boxes, 2))


def test_crowded_learning_forgetting_and_loss_curves_have_a_legend_per_method():
    runs = synthetic_runs(3 * MAX_LABELLED_CONFIGS, 2)
    summary = summary_of(runs)
    colors = config_colors(runs["config"])
    fig = learning_forgetting_figure(runs, summary, "quality", "forgetting", {**HIB, "forgetting": False}, colors, "t")
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == sorted(METHODS)
    assert fig.axes[0].texts and not any(a.overlaps(b) for a, b in combinations(callout_boxes(fig), 2))
    curves = pd.concat([runs.assign(step=step, value=runs["quality"] + step) for step in (1, 2, 3)])
    fig = loss_curve_figure(curves, colors, "t")
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == sorted(METHODS)
    assert len({colors[c] for c in runs["config"]}) == len(METHODS)  # coloured by method


def test_a_loss_band_that_reaches_below_zero_leaves_the_axis_at_zero():
    runs = synthetic_runs(2, 2)
    curves = pd.concat([runs.assign(step=step, value=np.where(runs["seed"] == 0, 0.1, 2.0)) for step in (1, 2, 3)])
    ax = loss_curve_figure(curves, config_colors(runs["config"]), "t").axes[0]
    assert ax.collections[0].get_paths()[0].vertices[:, 1].min() < -5  # the band: 1.05 -+ 12.7 * 0.95 / sqrt(2)
    assert ax.get_ylim()[0] == 0.0
    curves = curves.assign(value=curves["value"] + 20)  # a band above zero keeps its own axis
    assert loss_curve_figure(curves, config_colors(runs["config"]), "t").axes[0].get_ylim()[0] > 0
