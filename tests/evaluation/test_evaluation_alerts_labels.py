"""Capacity alerts (fedsim.evaluation.alerts) and positive entity-days (fedsim.evaluation.labels)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_worlds import TINY_SIZES, random_world, tiny_scores, tiny_truth

from fedsim.evaluation.alerts import capacity_alerts, daily_capacity
from fedsim.evaluation.inputs import Truth, validate_scores
from fedsim.evaluation.labels import case_windows, positive_pairs


@pytest.mark.parametrize(
    ("frac", "size", "expected"),
    [(0.005, 100, 1), (0.005, 300, 2), (0.001, 100, 1), (0.01, 250, 3), (0.015, 100, 2)],
)
def test_daily_capacity_rounds_half_up_with_floor_of_one(frac, size, expected):
    # 0.5% of 300 = 1.5 → 2 (half up, unlike Python's round(1.5)=2 / round(2.5)=2); 0.1% of 100 → 1 (floor)
    assert daily_capacity(capacity_frac=frac, partner_size=size) == expected


def test_capacity_alerts_top_per_partner_day_with_entity_tie_break():
    # prepare: bank day 0 has a tie at 0.9 between entities 7 and 3; cap = 1 per partner-day
    scores = pd.DataFrame(
        {
            "partner": ["bank", "bank", "bank", "telco", "bank"],
            "entity_id": [7, 3, 5, 7, 7],
            "day": [0, 0, 0, 0, 1],
            "decision_ts": [0, 0, 0, 0, 86_400],
            "score": [0.9, 0.9, 0.1, 0.2, 0.0],
        }
    )

    # execute
    alerted = capacity_alerts(scores, capacity_frac=0.01, partner_sizes={"bank": 100, "telco": 100})

    # assert: entity 3 wins the tie; telco and bank day 1 each alert their only row
    assert alerted.tolist() == [False, True, False, True, True]


def test_more_capacity_alerts_a_superset():
    scores, _, sizes = random_world(1)
    small = capacity_alerts(scores, capacity_frac=0.01, partner_sizes=sizes)
    large = capacity_alerts(scores, capacity_frac=0.05, partner_sizes=sizes)
    assert small.sum() < large.sum()
    assert not (small & ~large).any()


def test_case_windows_by_role_and_fallbacks():
    # prepare
    truth = Truth.from_tables(tiny_truth())

    # execute
    windows = case_windows(truth.cases, truth.money_outs).set_index("case_id")

    # assert: c1 crew from preparation (day 0), victim from contact (day 1), until last cash-out (day 3);
    # c5 reached only orientation (day 1) and has no money-outs: window day 1 for everyone
    assert windows.loc[1].tolist() == [0, 1, 3]
    assert windows.loc[2].tolist() == [0, 0, 1]
    assert windows.loc[3].tolist() == [1, 2, 3]
    assert windows.loc[5].tolist() == [1, 1, 1]


def test_positive_pairs_tiny_world():
    # prepare
    truth = Truth.from_tables(tiny_truth())
    scores = validate_scores(tiny_scores(), partner_sizes=TINY_SIZES)

    # execute
    pairs = positive_pairs(scores, truth.case_entities, case_windows(truth.cases, truth.money_outs))

    # assert: 11 positive rows (by hand, conftest.tiny_scores); bank:4 and telco:12 never positive
    positive = scores.loc[pairs["row"]]
    assert len(pairs) == 11
    assert not positive["entity_id"].isin([4, 12]).any()
    # bank:1 (victim of c1 from day 1) on day 2 is positive; bank:3 (victim of c3 from day 2) on day 2 too
    assert {(1, 2, 1), (3, 2, 3)} <= set(zip(positive["entity_id"], positive["day"], pairs["case_id"], strict=True))


def test_positive_window_excludes_victim_days_before_contact():
    # prepare: c3's victim bank:3 scored on day 1 (before contact on day 2)
    truth = Truth.from_tables(tiny_truth())
    scores = validate_scores(
        pd.DataFrame({"partner": ["bank"], "entity_id": [3], "day": [1], "decision_ts": [86_400], "score": [1.0]}),
        partner_sizes=TINY_SIZES,
    )

    # execute
    pairs = positive_pairs(scores, truth.case_entities, case_windows(truth.cases, truth.money_outs))

    # assert
    assert len(pairs) == 0


def test_alert_ranks_ignore_row_order():
    scores, _, sizes = random_world(2)
    shuffled = scores.sample(frac=1.0, random_state=0)
    a = capacity_alerts(scores, capacity_frac=0.02, partner_sizes=sizes)
    b = capacity_alerts(shuffled.reset_index(drop=True), capacity_frac=0.02, partner_sizes=sizes)
    np.testing.assert_array_equal(a[shuffled.index.to_numpy()], b)
