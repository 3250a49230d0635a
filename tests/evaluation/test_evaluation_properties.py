"""Properties of evaluate() on random worlds: monotonicity, perfect / random scores, bootstrap behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from evaluation_worlds import D, random_world
from sklearn.metrics import average_precision_score, roc_auc_score

from fedsim.evaluation import evaluate
from fedsim.evaluation.api import build_estimators
from fedsim.evaluation.bootstrap import resample_weights
from fedsim.evaluation.estimator import MetricKey
from fedsim.evaluation.inputs import EvaluationSettings, Truth
from fedsim.evaluation.labels import case_windows, positive_pairs

WINDOW = (0, 20 * D)
KS = (0.01, 0.03, 0.1)


@pytest.fixture(scope="module")
def world():
    return random_world(11, signal=1.5)


@pytest.fixture(scope="module")
def result(world):
    scores, truth, sizes = world
    return evaluate(scores, truth, partner_sizes=sizes, test_window_ts=WINDOW, capacities=KS, seed=5, n_boot=300)


def _series(table: pd.DataFrame, metric: str, **fixed) -> pd.DataFrame:
    rows = table[table["metric"] == metric]
    for dim, value in fixed.items():
        rows = rows[np.isclose(rows[dim], value)]
    return rows


def test_ed_non_increasing_in_horizon(result):
    for (_, _), rows in _series(result.table, "ed").groupby(["fraud_type", "k"]):
        values = rows.sort_values("h")["value"].to_numpy()
        assert (np.diff(values) <= 1e-12).all()
    assert result.value("ed", k=0.1, h=0) > result.value("ed", k=0.1, h=72)


def test_more_capacity_never_lowers_ed(result):
    for (_, _), rows in _series(result.table, "ed").groupby(["fraud_type", "h"]):
        values = rows.sort_values("k")["value"].to_numpy()
        assert (np.diff(values) >= -1e-12).all()
    assert result.value("ed", k=0.1, h=0) > result.value("ed", k=0.01, h=0)


def test_prevented_loss_non_increasing_in_latency_and_linear_in_rho(result):
    table = result.table
    for (_, _, _), rows in _series(table, "prevented_eur").groupby(["fraud_type", "k", "rho"]):
        values = rows.sort_values("delta_h")["value"].to_numpy()
        assert (np.diff(values) <= 1e-9).all()
    for metric in ("prevented_eur", "prevented_share", "prevented_eur_per_1k_alerts"):
        full = _series(table, metric, rho=1.0).sort_values(["fraud_type", "k", "delta_h"])
        part = _series(table, metric, rho=0.7).sort_values(["fraud_type", "k", "delta_h"])
        np.testing.assert_allclose(part["value"].to_numpy(), 0.7 * full["value"].to_numpy())
    assert result.value("prevented_eur", k=0.1, delta_h=0, rho=1.0) > 0


def test_perfect_score_catches_every_case_with_a_positive_row_before_loss(world):
    # prepare: score = 1 on positive rows, 0 otherwise; capacity k = 1 alerts every row
    scores, truth, sizes = world
    valid = Truth.from_tables(truth)
    pairs = positive_pairs(scores, valid.case_entities, case_windows(valid.cases, valid.money_outs))
    perfect = scores.assign(score=0.0)
    perfect.loc[pairs["row"].unique(), "score"] = 1.0
    first_row_ts = pd.Series(scores["decision_ts"].to_numpy()[pairs["row"]]).groupby(pairs["case_id"]).min()
    cases = valid.cases.set_index("case_id")
    evaluated = cases[(cases["t_loss"] >= WINDOW[0]) & (cases["t_loss"] < WINDOW[1])]
    expected = (first_row_ts.reindex(evaluated.index) <= evaluated["t_loss"]).mean()

    # execute
    res = evaluate(perfect, truth, partner_sizes=sizes, test_window_ts=WINDOW, capacities=(1.0,), seed=0, n_boot=0)

    # assert
    assert res.value("ed", k=1.0, h=0) == pytest.approx(expected)
    assert 0 < expected < 1
    for fraud_type in ("all", "helpdesk", "purchase", "whatsapp"):
        assert res.value("ap", fraud_type=fraud_type) == pytest.approx(1.0)
        assert res.value("roc_auc", fraud_type=fraud_type) == pytest.approx(1.0)


def test_random_score_has_ap_near_prevalence():
    # ~800 positive rows: sd(AUC) ≈ (12·800)^-½ ≈ 0.01
    scores, truth, sizes = random_world(4, n_cases=200, n_ordinary=1500, signal=0.0)
    res = evaluate(scores, truth, partner_sizes=sizes, test_window_ts=WINDOW, seed=0, n_boot=0)
    assert res.value("ap") == pytest.approx(res.value("prevalence"), rel=0.2)
    assert res.value("lift") == pytest.approx(1.0, abs=0.2)
    assert res.value("roc_auc") == pytest.approx(0.5, abs=0.04)


def test_interval_contains_point_estimate(result):
    rows = result.table[result.table["metric"].isin(["ed", "ap", "roc_auc", "prevented_eur", "recall"])]
    rows = rows[rows["lo"].notna()]
    assert len(rows) > 50
    assert ((rows["lo"] <= rows["value"] + 1e-12) & (rows["value"] <= rows["hi"] + 1e-12)).all()
    assert result.value("ap", column="hi") > result.value("ap", column="lo")


def test_bootstrap_reproducible_with_seed(world):
    scores, truth, sizes = world
    kwargs = {"partner_sizes": sizes, "test_window_ts": WINDOW, "capacities": (0.03,), "n_boot": 50}
    a = evaluate(scores, truth, seed=3, **kwargs).table
    b = evaluate(scores, truth, seed=3, **kwargs).table
    c = evaluate(scores, truth, seed=4, **kwargs).table
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["lo"].fillna(0), c["lo"].fillna(0))


def test_resampled_ranking_metrics_equal_sklearn_with_row_weights(world):
    # prepare: one resample's cluster weights, turned into row weights by hand: a negative row weighs
    # its entity's count, a positive row the mean count of the cases it is positive for
    scores, truth, sizes = world
    settings = EvaluationSettings(test_window_ts=WINDOW, seed=0, capacities=(0.03,))
    (est,) = build_estimators([scores], truth, sizes, settings)
    weights = next(resample_weights(est.strata, n_boot=3, seed=9))
    valid = Truth.from_tables(truth)
    pairs = positive_pairs(scores, valid.case_entities, case_windows(valid.cases, valid.money_outs))
    assert pairs.groupby("row").size().max() > 1  # shared mules: some rows belong to several cases

    # execute
    values = est.values(weights)

    # assert
    y = np.zeros(len(scores), dtype=int)
    y[pairs["row"].unique()] = 1
    negative = np.flatnonzero(y == 0)
    entity = est.clusters.entity_cluster(
        scores["partner"].to_numpy()[negative], scores["entity_id"].to_numpy()[negative]
    )
    case = est.clusters.case_cluster(pairs["case_id"].to_numpy())
    for b in range(weights.shape[1]):
        row_w = np.zeros(len(scores))
        row_w[negative] = weights[entity, b]
        mean_case_w = pd.Series(weights[case, b]).groupby(pairs["row"].to_numpy()).mean()
        row_w[mean_case_w.index.to_numpy()] = mean_case_w.to_numpy()
        assert values[MetricKey("ap", "all")][b] == pytest.approx(
            average_precision_score(y, scores["score"], sample_weight=row_w)
        )
        assert values[MetricKey("roc_auc", "all")][b] == pytest.approx(
            roc_auc_score(y, scores["score"], sample_weight=row_w)
        )
        assert values[MetricKey("prevalence", "all")][b] == pytest.approx(row_w[y == 1].sum() / row_w.sum())
