"""Seed-inclusive comparisons (fedsim.evaluation.seeds): A vs A, placebo, power, known values.

Training-seed noise is simulated on synthetic score tables: scores = world signal (fixed per world)
+ a seed-level change of the signal strength + per-entity model noise of that seed, so retraining
moves the ranking of the same test cases as a real retrain does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_worlds import TINY_SIZES, D, random_world, tiny_scores, tiny_truth
from scipy import stats

from fedsim.evaluation import compare
from fedsim.evaluation.inputs import Truth
from fedsim.evaluation.labels import case_windows, positive_pairs
from fedsim.evaluation.seeds import (
    combine_worlds,
    compare_over_seeds,
    covers_text,
    interval_from_runs,
    seed_stage,
)

HEADLINE = (("ed", {"k": 0.05, "h": 0}), ("prevented_eur", {"k": 0.05, "delta_h": 0, "rho": 1.0}), ("ap", {}))
KW = {"capacities": [0.05], "horizons_h": [0.0], "latencies_h": [0.0], "interdiction": [1.0]}


def _world(seed: int):
    scores, truth, sizes = random_world(seed, n_cases=60, n_ordinary=200, n_days=15, signal=1.0)
    valid = Truth.from_tables(truth)
    pairs = positive_pairs(scores, valid.case_entities, case_windows(valid.cases, valid.money_outs))
    positive = np.zeros(len(scores))
    positive[pairs["row"].to_numpy()] = 1.0
    return scores, positive, truth, sizes


def _retrain(scores: pd.DataFrame, positive: np.ndarray, seed: int, *, gain: float = 0.0, tau=0.1, eta=0.2):
    """One training seed: signal strength 1 + gain + N(0, tau), per-entity noise N(0, eta)."""
    rng = np.random.default_rng([seed, 7])
    entity = scores["entity_id"].to_numpy()
    noise = rng.normal(0.0, eta, entity.max() + 1)[entity]
    return scores.assign(score=scores["score"] + (gain + rng.normal(0.0, tau)) * positive + noise)


def _covered(result, column_lo="lo", column_hi="hi") -> list[bool]:
    return [
        result.value(m, column=column_lo, **w) <= 0.0 <= result.value(m, column=column_hi, **w) for m, w in HEADLINE
    ]


def test_a_vs_a_seed_inclusive_ci_contains_zero_while_single_seed_ci_does_not():
    # prepare / execute: 20 worlds; A = seeds 0-2, B = seeds 3-5 of the same configuration
    seed_ci, single_ci = [], []
    for t in range(20):
        scores, positive, truth, sizes = _world(500 + t)
        a = [_retrain(scores, positive, 100 * t + s) for s in range(3)]
        b = [_retrain(scores, positive, 100 * t + 3 + s) for s in range(3)]
        common = {"partner_sizes": sizes, "test_window_ts": (0, 15 * D), "seed": t, "n_boot": 100, **KW}
        seed_ci += _covered(compare_over_seeds(list(zip(a, b, strict=True)), truth, **common))
        single_ci += _covered(compare(a[0], b[0], truth, **common))

    # assert: evaluation.md §3 — the seed-inclusive CI contains 0 in ≥ 95% of A-vs-A comparisons;
    # the case-only CI of one seed pair (what `fedsim compare` reported per seed) does not
    assert np.mean(seed_ci) >= 0.95, np.mean(seed_ci)
    assert np.mean(single_ci) < 0.85, np.mean(single_ci)


def test_placebo_with_shared_seed_component_is_null():
    # prepare: A and B share each seed's draw (same negative subsample) and differ by an independent
    # perturbation of the same law (an uninformative extra column changes the fit, not the signal)
    covered = []
    for t in range(12):
        scores, positive, truth, sizes = _world(900 + t)
        pairs = []
        for s in range(4):
            shared = _retrain(scores, positive, 1000 * t + s, tau=0.05, eta=0.1)
            pairs.append(
                tuple(_retrain(shared, positive, 1000 * t + 10 * s + arm, tau=0.08, eta=0.15) for arm in (1, 2))
            )
        common = {"partner_sizes": sizes, "test_window_ts": (0, 15 * D), "seed": t, "n_boot": 100, **KW}
        covered += _covered(compare_over_seeds(pairs, truth, **common))

    # assert
    assert np.mean(covered) >= 0.95, np.mean(covered)


def test_a_real_gain_is_still_detected():
    # prepare: A's training gives a clearly stronger signal than B's (gain 1.0 on a signal of 1.0)
    found = []
    for t in range(6):
        scores, positive, truth, sizes = _world(700 + t)
        a = [_retrain(scores, positive, 100 * t + s, gain=1.0) for s in range(3)]
        b = [_retrain(scores, positive, 100 * t + 3 + s) for s in range(3)]
        common = {"partner_sizes": sizes, "test_window_ts": (0, 15 * D), "seed": t, "n_boot": 100, **KW}
        found.append(compare_over_seeds(list(zip(a, b, strict=True)), truth, **common).value("ap", column="lo") > 0)

    # assert: the seed term widens the CI but does not swallow a real effect
    assert np.mean(found) >= 5 / 6


def test_one_seed_reproduces_the_paired_case_bootstrap():
    # prepare
    a, b = tiny_scores(), tiny_scores().assign(score=lambda d: d["score"][::-1].to_numpy())
    common = {"partner_sizes": TINY_SIZES, "test_window_ts": (0, 4 * D), "seed": 3, "n_boot": 200}

    # execute
    one = compare_over_seeds([(a, b)], tiny_truth(), **common)
    ref = compare(a, b, tiny_truth(), **common)

    # assert: with a single seed there is no seed term — same diff, same CI, and it says so
    for col in ("diff", "lo", "hi", "p_a_gt_b"):
        assert one.value("ap", column=col) == pytest.approx(ref.value("ap", column=col))
        assert one.value("ed", column=col, k=0.005, h=0) == pytest.approx(ref.value("ed", column=col, k=0.005, h=0))
    assert one.covers.startswith("cases only")


def test_seed_stage_adds_nothing_without_between_seed_spread_and_widens_with_it():
    # prepare: 3 seeds; metric 0 identical across seeds, metric 1 spread (sd 0.1)
    per_seed = np.array([[0.2, 0.1], [0.2, 0.2], [0.2, 0.3]])
    case_draws = np.tile(np.linspace(-0.01, 0.01, 1001), (2, 1)) + np.array([[0.2], [0.2]])

    # execute
    draws, sd = seed_stage(per_seed, case_draws, seed=0)

    # assert: metric 0 keeps the case draws; metric 1 gets sqrt(0.01/3)·t_2 added (97.5% quantile ≈ 4.30·0.0577)
    assert np.allclose(draws[0], case_draws[0], atol=1e-12)
    assert sd == pytest.approx([0.0, 0.1])
    hi = np.percentile(draws[1] - 0.2, 97.5)
    assert 0.6 * 4.30 * np.sqrt(0.01 / 3) < hi < 1.4 * 4.30 * np.sqrt(0.01 / 3)


def test_interval_from_runs_known_values():
    # identical seeds: only the case part, mean ± the runs' half-width
    mean, lo, hi = interval_from_runs([0.4, 0.4, 0.4], [0.35, 0.35, 0.35], [0.45, 0.45, 0.45])
    assert (mean, lo, hi) == pytest.approx((0.4, 0.35, 0.45), abs=0.004)
    # spread seeds widen it beyond the case-only CI; one run keeps its own CI
    _, lo2, hi2 = interval_from_runs([0.3, 0.4, 0.5], [0.25, 0.35, 0.45], [0.35, 0.45, 0.55])
    assert lo2 < 0.3 and hi2 > 0.5
    assert interval_from_runs([0.4], [0.3], [0.5]) == pytest.approx((0.4, 0.3, 0.5), abs=0.004)


def test_covers_text_names_the_axes():
    assert covers_text(n_seeds=5) == "cases × 5 training seeds"
    assert covers_text(n_seeds=[5, 4, 5], n_worlds=3) == "cases × 3 worlds × 4–5 training seeds"
    assert covers_text(n_seeds=1).startswith("cases only")


def test_combine_worlds_adds_between_world_spread():
    # prepare: two worlds whose differences disagree far beyond their within-world CIs
    scores, positive, truth, sizes = _world(41)
    common = {"partner_sizes": sizes, "test_window_ts": (0, 15 * D), "n_boot": 100, **KW}
    base = [_retrain(scores, positive, s) for s in range(2)]
    up = compare_over_seeds([(_retrain(b, positive, 9, gain=1.5), b) for b in base], truth, seed=0, **common)
    flat = compare_over_seeds([(b, b) for b in base], truth, seed=1, **common)

    # execute
    both = combine_worlds([up, flat])

    # assert: the grand mean is the mean of the worlds; its CI is wider than either world's
    assert both.value("ap") == pytest.approx((up.value("ap") + flat.value("ap")) / 2)
    width = both.value("ap", column="hi") - both.value("ap", column="lo")
    assert width > up.value("ap", column="hi") - up.value("ap", column="lo")
    assert both.covers == "cases × 2 worlds × 2 training seeds"


def test_a_quantity_has_the_same_ci_whatever_else_is_computed_beside_it():
    # prepare: 3 seeds of A and B; one call at k = 0.05, another with more capacities, horizons and latencies
    scores, positive, truth, sizes = _world(77)
    pairs = [(_retrain(scores, positive, s, gain=0.3), _retrain(scores, positive, 10 + s)) for s in range(3)]
    common = {"partner_sizes": sizes, "test_window_ts": (0, 15 * D), "seed": 4, "n_boot": 150, "label": "a − b"}
    wide = {"capacities": [0.02, 0.05, 0.1], "horizons_h": [0.0, 6.0], "latencies_h": [0.0, 1.0], "interdiction": [1.0]}

    # execute
    narrow_run = compare_over_seeds(pairs, truth, **common, **KW)
    wide_run = compare_over_seeds(pairs, truth, **common, **wide)
    other_label = compare_over_seeds(pairs, truth, **{**common, "label": "c − d"}, **KW)

    # assert: every headline quantity gets identical endpoints in both tables (the seed term is keyed
    # by the metric, not by its row; equal up to float summation order), and the seed term is really
    # there (the CI differs from the cases-only one)
    for metric, where in HEADLINE:
        for col in ("lo", "hi", "p_a_gt_b"):
            same = wide_run.value(metric, column=col, **where)
            assert narrow_run.value(metric, column=col, **where) == pytest.approx(same, rel=1e-12, abs=1e-12)
        assert narrow_run.value(metric, column="lo", **where) != narrow_run.value(metric, column="lo_cases", **where)
    # another comparison label draws another (equally valid) seed term
    assert other_label.value("ap", column="lo") != narrow_run.value("ap", column="lo")


def test_seed_term_draws_are_a_stratified_t_sample():
    # execute: 3 seeds with spread 0.1 on a case part that is exactly 0
    per_seed = np.array([[0.1], [0.2], [0.3]])
    draws, _ = seed_stage(per_seed, np.zeros((1, 1000)), seed=0)

    # assert: the draws are sqrt(0.01/3)·t_2 quantiles on the (i + ½)/n grid, in some order
    grid = np.sqrt(0.01 / 3) * stats.t.ppf((np.arange(1000) + 0.5) / 1000, 2)
    assert np.allclose(np.sort(draws[0]), grid)
    assert np.percentile(draws[0], 97.5) == pytest.approx(4.30 * np.sqrt(0.01 / 3), rel=0.02)
