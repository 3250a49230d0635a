"""Realistic alert capacity: alerts per 100k customers per day, per kind, scaled by the world's multiplier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_worlds import TINY_SIZES, D, tiny_scores, tiny_truth

from fedsim.errors import FedsimError
from fedsim.evaluation import evaluate
from fedsim.evaluation.alerts import (
    ALERTS_PER_100K_PER_DAY,
    CalibratedCapacity,
    calibrated_capacity,
    calibrated_fractions,
    capacity_alerts,
    capacity_fraction,
    capacity_profile,
    daily_capacity,
    effective_multiplier,
)
from fedsim.evaluation.api import evaluate_calibrated
from fedsim.evaluation.inputs import EvaluationSettings


def test_capacity_fraction_known_values() -> None:
    assert capacity_fraction(20, multiplier=1) == pytest.approx(0.0002)
    assert capacity_fraction(20, multiplier=10) == pytest.approx(0.002)
    # a million-customer bank at the calibrated rate works 200 alerts a day, not 5,000 (0.5%)
    bank = capacity_fraction(ALERTS_PER_100K_PER_DAY["bank"])
    assert daily_capacity(capacity_frac=bank, partner_size=1_000_000) == 200
    assert capacity_fraction(1e9) == 1.0
    with pytest.raises(ValueError):
        capacity_fraction(0)


def test_effective_multiplier_is_case_weighted() -> None:
    # 100 cases at 25x stand for 4 real ones, 50 at 5x for 10: 150 / 14
    assert effective_multiplier({"a": 100, "b": 50}, {"a": 25, "b": 5}) == pytest.approx(150 / 14)
    assert effective_multiplier({}, {"a": 25}) == 1.0


def test_profile_reproduces_each_partners_fraction() -> None:
    kinds = {"bank_1": "bank", "telco": "telco", "marketplace": "marketplace", "x": "signals"}
    fr = calibrated_fractions(kinds, multiplier=10)
    assert fr["bank_1"] == pytest.approx(0.002) and fr["telco"] == pytest.approx(0.0005)
    assert fr["marketplace"] == pytest.approx(0.001) and fr["x"] == pytest.approx(0.001)
    k, w = capacity_profile(fr)
    assert k == pytest.approx(0.002) and max(w.values()) == 1.0
    for p, f in fr.items():
        assert k * w[p] == pytest.approx(f)


def test_weights_set_each_partners_daily_alerts() -> None:
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        {
            "partner": ["bank"] * 400 + ["telco"] * 400,
            "entity_id": np.tile(np.arange(400), 2),
            "day": 0,
            "score": rng.random(800),
        }
    )
    sizes = {"bank": 10_000, "telco": 10_000}
    alerted = capacity_alerts(scores, capacity_frac=0.002, partner_sizes=sizes, weights={"bank": 1.0, "telco": 0.25})
    per = pd.Series(alerted).groupby(scores["partner"]).sum()
    assert per["bank"] == 20 and per["telco"] == 5
    top_bank = scores[scores["partner"] == "bank"].nlargest(20, "score").index
    assert alerted[top_bank].all()


def test_settings_refuse_a_weight_above_one() -> None:
    with pytest.raises(FedsimError):
        EvaluationSettings(test_window_ts=(0, 10), seed=0, capacity_weights=(("bank", 1.5),))


def test_calibrated_capacity_known_values_and_label() -> None:
    # 100 cases at 25x and 50 at 5x: multiplier 150/14; bank 20/100k, telco 5/100k
    cap = calibrated_capacity({"a": 100, "b": 50}, {"a": 25, "b": 5}, {"bank_1": "bank", "telco": "telco"})
    m = 150 / 14
    assert cap.multiplier == pytest.approx(m)
    assert cap.reference == pytest.approx(20e-5 * m) and cap.weights["telco"] == pytest.approx(0.25)
    assert cap.fractions([0.5, 2]) == pytest.approx([10e-5 * m, 40e-5 * m])
    assert cap.label() == (
        "calibrated (bank 20, telco 5, marketplace 10 alerts/day per 100k customers × prevalence multiplier 10.7)"
    )
    assert cap.label(2).startswith("2 × calibrated (")
    with pytest.raises(ValueError, match="at most 1"):
        cap.fractions([1e4])


def test_evaluate_calibrated_is_evaluate_at_the_profile_with_scale_names() -> None:
    # prepare: the tiny world; bank at 5% a day, telco at a quarter of that
    cap = CalibratedCapacity(reference=0.05, weights={"bank": 1.0, "telco": 0.25}, multiplier=1.0)
    common = {"partner_sizes": TINY_SIZES, "test_window_ts": (0, 4 * D), "seed": 1, "n_boot": 30}

    # execute
    calibrated = evaluate_calibrated(tiny_scores(), tiny_truth(), capacity=cap, scales=[1, 2], **common)
    by_hand = evaluate(
        tiny_scores(), tiny_truth(), capacities=[0.05, 0.1], capacity_weights={"bank": 1.0, "telco": 0.25}, **common
    )

    # assert: same numbers; k is the multiple, the flat names say _cal; the alert counts follow the weights
    flat, ref = calibrated.flat(), by_hand.flat()
    assert flat["ed_h0_cal1"] == ref["ed_h0_k0.05"] and flat["ed_h0_cal2_hi"] == ref["ed_h0_k0.1_hi"]
    assert flat["prevented_eur_d0_r1.0_cal2"] == ref["prevented_eur_d0_r1.0_k0.1"]
    assert not any("_k0" in name for name in flat)
    assert set(calibrated.table["k"].dropna()) == {1.0, 2.0} and set(calibrated.case_alerts["k"]) == {1.0, 2.0}
    # the telco's weight 0.25 removes alerts that a uniform 5% would make
    uniform = evaluate(tiny_scores(), tiny_truth(), capacities=[0.05], **common)
    assert calibrated.value("alerts", k=1.0) == by_hand.value("alerts", k=0.05) < uniform.value("alerts", k=0.05)
