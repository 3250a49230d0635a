"""evaluate() on the tiny hand-computed world of evaluation_worlds.py (2 partners, 4 days, 3 cases).

Capacity k = 0.01 of 100 entities = 1 alert per partner-day. By hand (see tiny_scores):
  alerted: bank d0 b4(neg), d1 b1(c1), d2 b3(c3), d3 b2(c1); telco d0 t12(neg), d1 t12(neg), d2 t12(neg),
  d3 t11(c3)  → 8 alerts.
  t_alert: c1 = d1 12:00 (t_loss d2 12:00, lead 24 h); c2 never; c3 = d2 15:00 (t_loss d3 20:00, lead 29 h).
At k = 0.02 (2 per partner-day) c1 is caught on d0 12:00 via its mule (48 h), c2 on d0 07:00 (25 h), c3 on
d2 11:00 via the fraudster (33 h).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_worlds import TINY_SIZES, D, H, tiny_scores, tiny_truth
from sklearn.metrics import average_precision_score, roc_auc_score

from fedsim.evaluation import evaluate
from fedsim.evaluation.api import build_estimators
from fedsim.evaluation.estimator import MetricKey
from fedsim.evaluation.inputs import EvaluationSettings

SETTINGS = {
    "partner_sizes": TINY_SIZES,
    "test_window_ts": (0, 4 * D),
    "capacities": (0.01, 0.02),
    "latencies_h": (0, 24),
    "interdiction": (1.0, 0.5),
}


@pytest.fixture(scope="module")
def result():
    return evaluate(tiny_scores(), tiny_truth(), seed=0, n_boot=200, **SETTINGS)


def test_early_detection_by_hand(result):
    # k=0.01: c1 (24 h) and c3 (29 h) caught, c2 missed → 2/3 up to h=6; at h=24 c1's lead is exactly
    # 24 h, which the strict clock counts as too late (outcomes.acts_before) → 1/3; 0 at 72 h
    for h, expected in ((0, 2 / 3), (1, 2 / 3), (6, 2 / 3), (24, 1 / 3), (72, 0.0)):
        assert result.value("ed", k=0.01, h=h) == pytest.approx(expected)
    # k=0.02: all three ≥ 24 h ahead
    assert result.value("ed", k=0.02, h=24) == pytest.approx(1.0)
    assert result.value("ed", k=0.01, h=0, fraud_type="helpdesk") == pytest.approx(0.5)
    assert result.value("ed", k=0.01, h=0, fraud_type="whatsapp") == pytest.approx(1.0)
    assert result.value("n_cases") == 3  # c4 (t_loss after the window) and c5 (no loss) are not evaluated


def test_prevented_loss_by_hand(result):
    # Δ=0: c1 saves 1000+500 (both after d1 12:00), c3 saves 300 → 1800 of 2000
    assert result.value("prevented_eur", k=0.01, delta_h=0, rho=1.0) == pytest.approx(1800.0)
    assert result.value("prevented_share", k=0.01, delta_h=0, rho=1.0) == pytest.approx(0.9)
    assert result.value("prevented_eur_per_1k_alerts", k=0.01, delta_h=0, rho=1.0) == pytest.approx(1800 / 8 * 1000)
    # Δ=24 h: c1 acts at d2 12:00 — the 1000 € leaving exactly then is lost → 500 + 300
    assert result.value("prevented_eur", k=0.01, delta_h=24, rho=1.0) == pytest.approx(800.0)
    assert result.value("prevented_eur", k=0.01, delta_h=24, rho=0.5) == pytest.approx(400.0)
    assert result.value("alerts", k=0.01) == 8


def test_average_precision_by_hand(result):
    # 18 rows, 11 positive. Descending scores with positive-holding thresholds (TP/(TP+FP)):
    # .95 1/1 | (.9 two negatives) | .85 2/4 | .8 3/5 | .75 4/6 | .7 5/7 | (.65 neg) .6 tie 6/10 |
    # .5 tie 7/12 | (.4 .35 neg) .3 two pos 9/16 | .2 10/17 | .1 11/18
    expected = (1 + 2 / 4 + 3 / 5 + 4 / 6 + 5 / 7 + 6 / 10 + 7 / 12 + 2 * 9 / 16 + 10 / 17 + 11 / 18) / 11
    assert result.value("ap") == pytest.approx(expected)
    assert result.value("prevalence") == pytest.approx(11 / 18)
    assert result.value("lift") == pytest.approx(expected / (11 / 18))
    # whatsapp: positives .75 .7 .5 .3 (c3 only); helpdesk-only rows are left out, the 7 negatives stay
    whatsapp = (1 / 3 + 2 / 4 + 3 / 8 + 4 / 11) / 4
    assert result.value("ap", fraud_type="whatsapp") == pytest.approx(whatsapp)


def test_ranking_metrics_agree_with_sklearn(result):
    scores = tiny_scores()
    positive = ~scores["entity_id"].isin([4, 12])
    assert result.value("ap") == pytest.approx(average_precision_score(positive, scores["score"]))
    assert result.value("roc_auc") == pytest.approx(roc_auc_score(positive, scores["score"]))


def test_daily_recall_precision_by_hand(result):
    # per day (alerted positives / positives): d0 0/2, d1 1/4, d2 1/3, d3 2/2; precision 0/2, 1/2, 1/2, 2/2
    assert result.value("recall", k=0.01) == pytest.approx((0 + 1 / 4 + 1 / 3 + 1) / 4)
    assert result.value("precision", k=0.01) == pytest.approx((0 + 0.5 + 0.5 + 1) / 4)


def test_lead_time_and_phase_by_hand(result):
    # lead times 24 h and 29 h (inverted-CDF quantiles); c1 alerted while 'convincing', c3 in 'contact'
    assert result.value("lead_time_h_median", k=0.01) == 24.0
    assert result.value("lead_time_h_p75", k=0.01) == 29.0
    assert result.value("lead_time_h_median", k=0.02) == 33.0
    for phase, share in (("convincing", 1 / 3), ("contact", 1 / 3), ("undetected", 1 / 3), ("cash_out", 0.0)):
        assert result.value(f"phase_{phase}", k=0.01) == pytest.approx(share)
    alerts = result.case_alerts.query("k == 0.01").set_index("case_id")
    assert alerts.loc[1, "t_alert"] == D + 12 * 3600
    assert np.isnan(alerts.loc[2, "t_alert"])


def test_cluster_weights_reweight_cases():
    # prepare: a resample drawing c1 twice, c2 never, c3 once (entities once each)
    settings = EvaluationSettings(seed=0, **{k: v for k, v in SETTINGS.items() if k != "partner_sizes"})
    (est,) = build_estimators([tiny_scores()], tiny_truth(), TINY_SIZES, settings)
    weights = np.ones((est.n_clusters, 1))
    weights[est.case_clusters] = np.array([[2.0], [0.0], [1.0]])

    # execute
    values = est.values(weights)

    # assert: ED = (2·1 + 1·1)/3 = 1; prevented = 2·1500 + 300; share = 3300 / (2·1500 + 300)
    assert values[MetricKey("ed", "all", k=0.01, h=0.0)][0] == pytest.approx(1.0)
    assert values[MetricKey("prevented_eur", "all", k=0.01, delta_h=0.0, rho=1.0)][0] == pytest.approx(3300.0)
    assert values[MetricKey("prevented_share", "all", k=0.01, delta_h=0.0, rho=1.0)][0] == pytest.approx(1.0)


def test_any_entity_alert_rule_counts_alerts_outside_the_role_window():
    # prepare: c3's victim bank:3 gets the top bank score on day 0, before contact (its window starts day 2)
    scores = tiny_scores()
    early = pd.DataFrame([{"partner": "bank", "entity_id": 3, "day": 0, "decision_ts": 6 * H, "score": 0.95}])
    scores = pd.concat([scores, early], ignore_index=True)

    # execute
    role = evaluate(scores, tiny_truth(), seed=0, n_boot=0, **SETTINGS)
    literal = evaluate(scores, tiny_truth(), seed=0, n_boot=0, alert_rule="any_entity", **SETTINGS)

    # assert: role windows ignore the day-0 alert (c3 still 29 h ahead); the literal reading takes it
    # (c3 alerted at d0 06:00, 86 h before its loss at d3 20:00) → ED(72) goes from 0 to 1/3
    assert role.value("ed", k=0.01, h=72) == pytest.approx(0.0)
    assert literal.value("ed", k=0.01, h=72) == pytest.approx(1 / 3)
    assert literal.value("ed", k=0.01, h=0) == pytest.approx(role.value("ed", k=0.01, h=0))
    # labels (AP) do not depend on the alert rule
    assert literal.value("ap") == pytest.approx(role.value("ap"))
