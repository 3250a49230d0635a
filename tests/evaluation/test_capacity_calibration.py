"""Realistic alert capacity: alerts per 100k customers per day, per kind, scaled by the world's multiplier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsim.errors import FedsimError
from fedsim.evaluation.alerts import (
    ALERTS_PER_100K_PER_DAY,
    calibrated_fractions,
    capacity_alerts,
    capacity_fraction,
    capacity_profile,
    daily_capacity,
    effective_multiplier,
)
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
