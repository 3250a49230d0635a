"""Case-level outcomes (fedsim.evaluation.outcomes): first alert, ED indicator, prevented loss, phase."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsim.evaluation import outcomes

H = 3_600


def test_first_alert_is_earliest_alerted_positive_row_of_the_case():
    # prepare: rows 0..3; case 1 owns rows 0, 1, 2 (row 0 not alerted); case 2 owns row 3 (not alerted)
    pairs = pd.DataFrame({"row": [0, 1, 2, 3], "case_id": [1, 1, 1, 2]})
    decision_ts = np.array([10, 50, 30, 5])
    alerted = np.array([False, True, True, False])

    # execute
    t_alert = outcomes.first_alert_ts(pairs, decision_ts=decision_ts, alerted=alerted, case_ids=np.array([1, 2]))

    # assert: case 1 → min(50, 30) = 30 (row 0 at 10 was not alerted); case 2 never alerted
    assert t_alert[0] == 30
    assert np.isnan(t_alert[1])


def test_ed_indicator_boundary_is_strict_and_monotone_in_h():
    # prepare: alerts exactly at the loss, 6 h, 24 h and 1 s before it, and one never
    t_loss = np.full(5, 100 * H, dtype=float)
    t_alert = np.array([100 * H, 94 * H, 76 * H, 100 * H - 1, np.nan])

    # execute
    hits = {h: outcomes.alerted_by_horizon(t_alert=t_alert, t_loss=t_loss, horizon_h=h) for h in (0, 6, 24, 72)}

    # assert: one clock — an alert exactly at t_loss (or exactly h hours before) is too late
    assert hits[0].tolist() == [False, True, True, True, False]
    assert hits[6].tolist() == [False, False, True, False, False]
    assert hits[24].tolist() == [False, False, False, False, False]
    assert not hits[72].any()


def test_alert_at_the_first_money_out_is_neither_early_nor_prevents_that_payment():
    # prepare: case 1 alerted exactly at its first money-out (10 h, 100 €), later one at 12 h (200 €);
    # case 2 alerted 1 s before its only money-out (5 h, 50 €)
    money = pd.DataFrame(
        {"case_id": [1, 1, 2], "ts": [10 * H, 12 * H, 5 * H], "amount_eur": [100.0, 200.0, 50.0], "cashout_ts": 0}
    )
    case_ids = np.array([1, 2])
    t_loss = np.array([10 * H, 5 * H], dtype=float)
    t_alert = np.array([10 * H, 5 * H - 1], dtype=float)

    # execute
    early = outcomes.alerted_by_horizon(t_alert=t_alert, t_loss=t_loss, horizon_h=0)
    saved = outcomes.prevented_eur(money, case_ids=case_ids, t_alert=t_alert, latency_h=0)

    # assert: the tie is late for ED and the 100 € leaves; 1 s earlier is early and saves everything
    assert early.tolist() == [False, True]
    assert saved.tolist() == [200.0, 50.0]


def test_ed0_and_prevented_first_payment_agree_case_by_case():
    # prepare: random alerts around random first money-outs (ties included on purpose)
    rng = np.random.default_rng(3)
    n = 400
    t_loss = rng.integers(0, 50, n) * H
    t_alert = np.where(rng.random(n) < 0.2, np.nan, t_loss + rng.integers(-3, 4, n) * H).astype(float)
    money = pd.DataFrame({"case_id": np.arange(n), "ts": t_loss, "amount_eur": rng.uniform(1, 100, n), "cashout_ts": 0})

    # execute
    early = outcomes.alerted_by_horizon(t_alert=t_alert, t_loss=t_loss.astype(float), horizon_h=0)
    saved = outcomes.prevented_eur(money, case_ids=np.arange(n), t_alert=t_alert, latency_h=0)

    # assert: caught before the money left ⇔ the first money-out is prevented (same clock)
    assert (t_alert == t_loss).sum() > 10
    assert np.array_equal(early, saved > 0)


def test_prevented_counts_money_out_strictly_after_alert_plus_latency():
    # prepare: case 1 alerted at 10 h; money-outs at 10 h (100 €), 12 h (200 €), 20 h (400 €); case 2 never
    money = pd.DataFrame(
        {
            "case_id": [1, 1, 1, 2],
            "ts": [10 * H, 12 * H, 20 * H, 5 * H],
            "amount_eur": [100.0, 200.0, 400.0, 50.0],
            "cashout_ts": [0, 0, 0, 0],
        }
    )
    case_ids = np.array([1, 2])
    t_alert = np.array([10 * H, np.nan])

    # execute
    by_latency = {d: outcomes.prevented_eur(money, case_ids=case_ids, t_alert=t_alert, latency_h=d) for d in (0, 1, 4)}

    # assert: Δ=0 → 200+400; Δ=1 h → 11 h: 200+400; Δ=4 h → 14 h: 400; case 2 prevents nothing
    assert by_latency[0].tolist() == [600.0, 0.0]
    assert by_latency[1].tolist() == [600.0, 0.0]
    assert by_latency[4].tolist() == [400.0, 0.0]
    assert outcomes.loss_eur(money, case_ids=case_ids).tolist() == [700.0, 50.0]


def test_phase_at_alert_uses_last_started_phase_and_skips_unreached():
    # prepare: phases start at 1..6 h; case 2 skipped 'convincing' (-1)
    phase_ts = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, -1, 5, 6], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]) * H
    phase_ts[1, 3] = -1
    t_alert = np.array([3.5 * H, 4.5 * H, 0.5 * H, np.nan])

    # execute
    phase = outcomes.phase_at_alert(phase_ts=phase_ts, t_alert=t_alert)

    # assert
    assert phase.tolist() == ["contact", "contact", "before_orientation", "undetected"]


@pytest.mark.parametrize(("t_alert", "expected"), [(90 * H, 10.0), (110 * H, -10.0)])
def test_lead_time_in_hours_is_signed(t_alert, expected):
    got = outcomes.lead_time_h(t_loss=np.array([100.0 * H]), t_alert=np.array([float(t_alert)]))
    assert got[0] == expected
