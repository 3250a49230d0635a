"""Metric formulas on weighted aggregates (fedsim.evaluation.metrics) against hand values and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fedsim.evaluation import metrics


def _levels(score: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Reduce rows to the (pos, neg_at, neg_tie, neg_total) level sums the metric functions take."""
    levels = np.unique(score[y == 1])[::-1]
    above = np.searchsorted(-levels, -score, side="left")
    pos = np.zeros(len(levels))
    neg_at = np.zeros(len(levels))
    neg_tie = np.zeros(len(levels))
    for s, label, weight, a in zip(score, y, w, above, strict=True):
        if label == 1:
            pos[a] += weight
        elif a < len(levels):
            neg_at[a] += weight
            neg_tie[a] += weight * (levels[a] == s)
    neg_total = np.array([w[y == 0].sum()])
    return pos[:, None], neg_at[:, None], neg_tie[:, None], neg_total


def test_average_precision_hand_example_with_ties():
    # prepare: scores (label): 0.9(1) 0.8(0) 0.8(1) 0.5(0) 0.3(1) 0.1(0)
    score = np.array([0.9, 0.8, 0.8, 0.5, 0.3, 0.1])
    y = np.array([1, 0, 1, 0, 1, 0])
    # by hand, thresholds holding positives: 0.9 → P=1/1; 0.8 (tie) → P=2/3; 0.3 → P=3/5;
    # each adds recall 1/3, so AP = (1 + 2/3 + 3/5) / 3
    expected = (1 + 2 / 3 + 3 / 5) / 3
    pos, neg_at, _, _ = _levels(score, y, np.ones(6))

    # execute
    ap = metrics.average_precision(pos, neg_at)[0]

    # assert
    assert ap == pytest.approx(expected)
    assert ap == pytest.approx(average_precision_score(y, score))


def test_average_precision_and_auc_match_sklearn_with_weights():
    # prepare: integer weights act like repeated rows (a row drawn twice in a bootstrap resample)
    rng = np.random.default_rng(3)
    score = rng.integers(0, 12, size=200) / 12.0  # many ties
    y = (rng.random(200) < 0.2).astype(int)
    w = rng.integers(0, 4, size=200).astype(float)
    pos, neg_at, neg_tie, neg_total = _levels(score, y, w)

    # execute
    ap = metrics.average_precision(pos, neg_at)[0]
    auc = metrics.roc_auc(pos, neg_at, neg_tie, neg_total)[0]

    # assert
    assert ap == pytest.approx(average_precision_score(y, score, sample_weight=w))
    assert auc == pytest.approx(roc_auc_score(y, score, sample_weight=w))


def test_average_precision_is_nan_without_positives():
    assert np.isnan(metrics.average_precision(np.zeros((0, 2)), np.zeros((0, 2)))).all()


def test_weighted_share_hand_value_and_zero_weight():
    # prepare: 3 cases, hits [1, 0, 1]; resample 1 weights (1,1,1), resample 2 (0,3,0), resample 3 all 0
    hits = np.array([1, 0, 1])
    weights = np.array([[1.0, 0.0, 0.0], [1.0, 3.0, 0.0], [1.0, 0.0, 0.0]])

    # execute
    share = metrics.weighted_share(hits, weights)

    # assert: 2/3, 0/3, undefined
    assert share[0] == pytest.approx(2 / 3)
    assert share[1] == 0.0
    assert np.isnan(share[2])


def test_weighted_quantile_equals_inverted_cdf_of_repeated_sample():
    # prepare
    rng = np.random.default_rng(0)
    values = np.sort(rng.normal(size=15))
    counts = rng.integers(0, 4, size=(15, 6)).astype(float)
    counts[:, 0] = 1.0

    for q in (0.25, 0.5, 0.75):
        # execute
        got = metrics.weighted_quantile_sorted(values, counts, q)

        # assert: same as repeating each value count times (Hyndman & Fan definition 1)
        for b in range(counts.shape[1]):
            sample = np.repeat(values, counts[:, b].astype(int))
            assert got[b] == np.quantile(sample, q, method="inverted_cdf")


def test_mean_daily_ratio_skips_days_without_denominator():
    # prepare: day 0: 1/4, day 1: 0/0 (skipped), day 2: 2/2
    num = np.array([[1.0], [0.0], [2.0]])
    den = np.array([[4.0], [0.0], [2.0]])

    # execute / assert: (1/4 + 1) / 2
    assert metrics.mean_daily_ratio(num, den)[0] == pytest.approx((0.25 + 1.0) / 2)
