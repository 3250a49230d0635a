"""Paired comparison of two score tables (fedsim.evaluation.compare)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_worlds import D, random_world

from fedsim.evaluation import compare, evaluate

WINDOW = (0, 20 * D)


@pytest.fixture(scope="module")
def world():
    return random_world(21, signal=1.5)


def _kwargs(sizes):
    return {"partner_sizes": sizes, "test_window_ts": WINDOW, "capacities": (0.03,), "seed": 2, "n_boot": 200}


def test_identical_scores_differ_by_exactly_zero(world):
    # prepare
    scores, truth, sizes = world

    # execute
    cmp = compare(scores, scores.copy(), truth, **_kwargs(sizes))

    # assert: every defined difference, its interval and P(A > B) are exactly 0
    defined = cmp.table[cmp.table["value_a"].notna()]
    assert (defined["diff"] == 0).all()
    with_ci = defined[defined["lo"].notna()]
    assert len(with_ci) > 50
    assert (with_ci["lo"] == 0).all() and (with_ci["hi"] == 0).all()
    assert (with_ci["p_a_gt_b"] == 0).all()


def test_each_side_equals_its_own_evaluation_on_the_same_resamples(world):
    # prepare: B = A with noise added, same rows → same clusters, so A's side equals evaluate(A)
    scores, truth, sizes = world
    noisy = scores.assign(score=scores["score"] + np.random.default_rng(0).normal(size=len(scores)))

    # execute
    cmp = compare(scores, noisy, truth, **_kwargs(sizes))
    alone = evaluate(scores, truth, **_kwargs(sizes))

    # assert
    pd.testing.assert_frame_equal(cmp.result_a.table, alone.table)
    assert cmp.value("ap", column="value_b") == pytest.approx(cmp.result_b.value("ap"))


def test_better_score_wins_with_interval_above_zero(world):
    # prepare: B is A with its signal drowned in noise
    scores, truth, sizes = world
    weak = scores.assign(score=scores["score"] + np.random.default_rng(1).normal(scale=4.0, size=len(scores)))

    # execute
    cmp = compare(scores, weak, truth, **_kwargs(sizes))

    # assert
    assert cmp.value("ap") > 0
    assert cmp.value("ap", column="lo") > 0
    assert cmp.value("ap", column="p_a_gt_b") > 0.95
    assert cmp.value("ap", column="diff") == pytest.approx(
        cmp.value("ap", column="value_a") - cmp.value("ap", column="value_b")
    )


def test_scores_on_different_rows_compare_over_the_union(world):
    # prepare: B sees only the bank — telco-only cases count as misses for B
    scores, truth, sizes = world
    bank_only = scores[scores["partner"] == "bank"].reset_index(drop=True)

    # execute
    cmp = compare(scores, bank_only, truth, **_kwargs(sizes))

    # assert
    assert cmp.value("detected", k=0.03, column="value_b") < cmp.value("detected", k=0.03, column="value_a")
    assert cmp.value("n_cases", column="value_a") == cmp.value("n_cases", column="value_b")
    assert cmp.value("alerts", k=0.03, column="value_b") < cmp.value("alerts", k=0.03, column="value_a")
    assert np.isfinite(cmp.value("ed", k=0.03, h=0, column="lo"))
