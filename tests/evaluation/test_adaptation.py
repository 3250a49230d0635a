"""Adaptation after a barrier (fedsim.evaluation.adaptation): known recovery times, no drop, no recovery, and CIs
that cover the truth in a small simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedsim.errors import FedsimError
from fedsim.evaluation.adaptation import (
    AdaptationSettings,
    Hits,
    case_hits,
    daily_rates,
    first_recovery,
    gain,
    recovery,
    stack_seeds,
)

START, BARRIER, END = 10, 30, 60
PER_DAY = 10


def _hits(rate_of_day: dict[int, float] | None = None, *, default: float = 0.6, seeds: int = 3) -> Hits:
    """PER_DAY cases a day; on day d the first round(rate·PER_DAY) of them caught, in every seed."""
    days = np.repeat(np.arange(START, END), PER_DAY)
    rank = np.tile(np.arange(PER_DAY), END - START)
    rates = np.array([(rate_of_day or {}).get(int(d), default) for d in days])
    hit = (rank < np.round(rates * PER_DAY)).astype(np.float64)
    return Hits(
        np.tile(hit, (seeds, 1)), np.arange(len(days)), np.array(["helpdesk"] * len(days)), days, [0, 1, 2][:seeds]
    )


def _settings(**kw: float) -> AdaptationSettings:
    args: dict = {"barrier_day": BARRIER, "start_day": START, "end_day": END, "window_days": 5, "tolerance": 0.1}
    return AdaptationSettings(**{**args, "n_boot": 50, **kw})


@pytest.mark.parametrize("d", [1, 3, 8, 20])
def test_drop_to_zero_and_back_on_day_d_recovers_in_d_days(d: int) -> None:
    h = _hits({day: 0.0 for day in range(BARRIER, BARRIER + d)})
    out = recovery(h, _settings())
    assert out["recovery_days"] == d
    assert out["pre"] == pytest.approx(0.6)
    assert out["post"] == pytest.approx(0.6 * (END - BARRIER - d) / (END - BARRIER))
    # every case of a day alike (all caught, or none) and identical seeds: every resample has the same rates
    exact = recovery(_hits({day: 0.0 for day in range(BARRIER, BARRIER + d)}, default=1.0), _settings())
    assert exact["recovery_days"] == exact["recovery_days_lo"] == exact["recovery_days_hi"] == d


def test_a_regime_that_never_drops_recovers_in_zero_days() -> None:
    out = recovery(_hits(), _settings())
    assert out["recovery_days"] == 0
    assert out["p_not_recovered"] == 0
    assert out["pre"] == pytest.approx(out["post"])


def test_a_regime_that_never_recovers_says_so() -> None:
    h = _hits({day: 0.2 for day in range(BARRIER, END)})
    out = recovery(h, _settings())
    assert math.isnan(out["recovery_days"])
    assert out["p_not_recovered"] == 1.0
    assert out["post"] == pytest.approx(0.2)


def test_recovery_needs_a_whole_window_inside_the_observed_days() -> None:
    # back only for the last 3 days: no 5-day window after the barrier reaches the band
    h = _hits({day: 0.0 for day in range(BARRIER, END - 3)})
    assert math.isnan(recovery(h, _settings())["recovery_days"])


def test_first_recovery_reads_the_band_relative_to_the_pre_level() -> None:
    forward = np.array([[0.1], [0.39], [0.41], [0.6]])
    assert first_recovery(forward, np.array([0.5]), 0.2)[0] == 2  # band: ≥ 0.4
    assert first_recovery(forward, np.array([0.5]), 0.0)[0] == 3
    assert math.isnan(first_recovery(forward, np.array([0.9]), 0.0)[0])


def test_daily_and_forward_rates() -> None:
    h = _hits({BARRIER: 0.0, BARRIER + 1: 0.0})
    rates = daily_rates(h, _settings()).set_index("day")
    assert (rates["cases"] == PER_DAY).all()
    assert rates.loc[BARRIER, "rate"] == 0.0 and rates.loc[BARRIER - 1, "rate"] == pytest.approx(0.6)
    assert rates.loc[BARRIER, "forward_rate"] == pytest.approx(0.6 * 3 / 5)
    assert rates.loc[BARRIER + 2, "forward_rate"] == pytest.approx(0.6)
    assert rates["forward_rate"].iloc[-4:].isna().all()  # a 5-day window does not fit


def test_gain_before_and_after_the_barrier_is_paired() -> None:
    a = _hits()
    b = _hits({day: 0.1 for day in range(BARRIER, END)})
    g = gain(a, b, _settings(), label="a − b")
    assert g["gain_pre"] == pytest.approx(0.0) and g["gain_pre_lo"] == pytest.approx(0.0)
    assert g["gain_post"] == pytest.approx(0.5)
    assert g["gain_post_lo"] <= 0.5 <= g["gain_post_hi"]
    assert g["n_seeds_paired"] == 3
    with pytest.raises(FedsimError, match="same cases"):
        gain(a, _hits(seeds=2), _settings())


def test_settings_refuse_a_barrier_outside_the_window() -> None:
    with pytest.raises(FedsimError, match="strictly inside"):
        AdaptationSettings(barrier_day=END, start_day=START, end_day=END)
    with pytest.raises(FedsimError, match="window"):
        AdaptationSettings(barrier_day=END - 2, start_day=START, end_day=END, window_days=5)


def test_case_hits_use_the_one_clock_and_stack_by_case() -> None:
    day = 86_400
    alerts = pd.DataFrame(
        {
            "case_id": [3, 1, 2, 3],
            "fraud_type": ["sale", "helpdesk", "sale", "sale"],
            "k": [1.0, 1.0, 1.0, 2.0],
            "t_loss": [40 * day, 41 * day + 5, 42 * day, 40 * day],
            "t_alert": [40 * day, 41 * day, np.nan, 0.0],  # same second: not early; before; never
        }
    )
    one = case_hits(alerts, k=1.0)
    assert one.set_index("case_id")["hit"].to_dict() == {3: 0.0, 1: 1.0, 2: 0.0}
    assert one.set_index("case_id")["day"].to_dict() == {3: 40, 1: 41, 2: 42}
    stacked = stack_seeds([(0, one), (1, one.iloc[::-1])])
    assert stacked.case_ids.tolist() == [1, 2, 3] and stacked.hits.tolist() == [[1, 0, 0], [1, 0, 0]]
    with pytest.raises(FedsimError, match="other cases"):
        stack_seeds([(0, one), (1, one.iloc[:2])])
    with pytest.raises(FedsimError, match="k = 4"):
        case_hits(alerts, k=4.0)


def _simulate(rng: np.random.Generator, p: np.ndarray, days: np.ndarray, seeds: int) -> Hits:
    """Hits with a case effect (some cases are easier) and seed noise around the day's rate ``p``."""
    ease = rng.normal(0.0, 0.5, len(days))
    logit = np.log(p / (1 - p))
    prob = 1 / (1 + np.exp(-(logit[None, :] + ease[None, :] + rng.normal(0, 0.2, (seeds, 1)))))
    hit = (rng.random((seeds, len(days))) < prob).astype(np.float64)
    return Hits(hit, np.arange(len(days)), np.array(["x"] * len(days)), days, list(range(seeds)))


def test_cis_cover_the_truth_in_a_small_simulation() -> None:
    """Population rates with a known recovery time T and a known post-barrier gain; the 95% CIs must cover them
    in most of 30 replicate worlds (a loose bound: 30 replicates, a discrete statistic)."""
    n_per_day, d, reps = 40, 8, 30
    days = np.repeat(np.arange(START, END), n_per_day)
    p_b = np.where((days >= BARRIER) & (days < BARRIER + d), 0.1, 0.5)
    p_a = np.where(days >= BARRIER, np.clip(p_b + 0.2, 0, 0.9), 0.5)
    st = _settings(tolerance=0.2, n_boot=200)
    # the truth: the definitions applied to a huge population drawn from the same model
    big = np.repeat(np.arange(START, END), 20_000)
    truth_rng = np.random.default_rng(99)
    pb_big = np.where((big >= BARRIER) & (big < BARRIER + d), 0.1, 0.5)
    pa_big = np.where(big >= BARRIER, np.clip(pb_big + 0.2, 0, 0.9), 0.5)
    true_b = recovery(_simulate(truth_rng, pb_big, big, 3), _settings(tolerance=0.2, n_boot=0))
    true_gain = gain(_simulate(truth_rng, pa_big, big, 3), _simulate(truth_rng, pb_big, big, 3), _settings(n_boot=0))
    t_true = true_b["recovery_days"]
    assert t_true in (d - 1, d)
    covered_t = covered_gain = 0
    rng = np.random.default_rng(1)
    for _ in range(reps):
        b = _simulate(rng, p_b, days, 3)
        a = _simulate(rng, p_a, days, 3)
        r = recovery(b, st)
        covered_t += r["recovery_days_lo"] <= t_true <= r["recovery_days_hi"]
        g = gain(a, b, st)
        covered_gain += g["gain_post_lo"] <= true_gain["gain_post"] <= g["gain_post_hi"]
    assert covered_t >= 0.8 * reps
    assert covered_gain >= 0.8 * reps
