"""Input validation (clear errors at the boundary) and the flat MLflow-style names."""

from __future__ import annotations

import math

import pytest
from evaluation_worlds import TINY_SIZES, D, tiny_scores, tiny_truth

from fedsim.evaluation import evaluate, flatten_metrics, metric_name

OK = {"partner_sizes": TINY_SIZES, "test_window_ts": (0, 4 * D), "seed": 0, "n_boot": 0}


def _run(scores=None, truth=None, **overrides):
    kwargs = {**OK, **overrides}
    return evaluate(tiny_scores() if scores is None else scores, tiny_truth() if truth is None else truth, **kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"capacities": (0.0,)}, r"capacities: 0.0 is not allowed; allowed: numbers in \(0.0, 1.0\]"),
        ({"capacities": (1.5,)}, "capacities: 1.5"),
        ({"interdiction": (0.7, 1.2)}, "interdiction: 1.2"),
        ({"horizons_h": (-1,)}, "horizons_h: -1"),
        ({"latencies_h": ()}, "latencies_h"),
        ({"test_window_ts": (10, 5)}, "test_window_ts: \\(10, 5\\)"),
        ({"n_boot": -1}, "n_boot: -1"),
        ({"partner_sizes": {"bank": 0, "telco": 10}}, r"partner_sizes\['bank'\]: 0"),
        ({"partner_sizes": {"bank": 100}}, r"scores.partner: \['telco'\] not in partner_sizes"),
    ],
)
def test_bad_settings_raise_naming_field_and_value(overrides, message):
    with pytest.raises(ValueError, match=message):
        _run(**overrides)


def test_bad_scores_raise_naming_column():
    scores = tiny_scores()
    with pytest.raises(ValueError, match=r"scores: missing column\(s\) \['score'\]"):
        _run(scores=scores.drop(columns="score"))
    with pytest.raises(ValueError, match="scores: duplicate \\(partner, entity_id, day\\)"):
        _run(scores=scores.iloc[[0, 0]])
    with pytest.raises(ValueError, match="scores.score: contains null values"):
        _run(scores=scores.assign(score=float("nan")))
    with pytest.raises(ValueError, match="scores.score: value inf is not allowed"):
        _run(scores=scores.assign(score=float("inf")))
    with pytest.raises(ValueError, match="scores.day: dtype float64 is not allowed"):
        _run(scores=scores.assign(day=scores["day"].astype(float)))


def test_bad_truth_raises_naming_table():
    truth = tiny_truth()
    bad_role = {**truth, "case_entities": truth["case_entities"].assign(role="boss")}
    with pytest.raises(ValueError, match=r"case_entities.role: \['boss'\] not allowed"):
        _run(truth=bad_role)
    with pytest.raises(ValueError, match="truth: table 'money_outs' missing"):
        _run(truth={k: v for k, v in truth.items() if k != "money_outs"})
    orphan = {**truth, "money_outs": truth["money_outs"].assign(case_id=77)}
    with pytest.raises(ValueError, match="money_outs.case_id: 77 not in cases.case_id"):
        _run(truth=orphan)


@pytest.mark.parametrize(
    ("row", "name"),
    [
        (
            {"metric": "ap", "fraud_type": "all", "k": math.nan, "h": math.nan, "delta_h": math.nan, "rho": math.nan},
            "ap",
        ),
        (
            {"metric": "ed", "fraud_type": "all", "k": 0.005, "h": 0.0, "delta_h": math.nan, "rho": math.nan},
            "ed_h0_k0.005",
        ),
        (
            {"metric": "prevented_eur", "fraud_type": "all", "k": 0.005, "h": math.nan, "delta_h": 0.0, "rho": 1.0},
            "prevented_eur_d0_r1.0_k0.005",
        ),
        (
            {"metric": "ed", "fraud_type": "helpdesk", "k": 0.01, "h": 24.0, "delta_h": math.nan, "rho": math.nan},
            "helpdesk.ed_h24_k0.01",
        ),
    ],
)
def test_metric_names(row, name):
    assert metric_name(row) == name


def test_flat_metrics_carry_intervals_except_counts():
    # prepare
    result = _run(n_boot=20, capacities=(0.005,))

    # execute
    flat = result.flat()

    # assert
    assert flat == flatten_metrics(result.table)
    assert flat["ed_h0_k0.005"] == pytest.approx(result.value("ed", k=0.005, h=0))
    assert flat["ap_lo"] == result.value("ap", column="lo")
    assert "whatsapp.ap_hi" in flat and "prevented_eur_d4_r0.7_k0.005_lo" in flat
    assert "n_cases" in flat and "n_cases_lo" not in flat
    assert len(flat) == len(set(flat))
