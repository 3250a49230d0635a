"""On the calibrated `default` world, sharing moves detection in the direction the world's design implies.

The design puts each fraud type's strongest traces at different partners (helpdesk: the spoofed call at the
telco, the money at the banks; marketplace fraud: the fake seller at the marketplace, the mule at a bank), so
pooling the chain must rank fraud better than every partner alone, and the shared watchlist must not do
worse than the status quo. The default preset runs at reduced size (10k persons, 150 days) to keep the suite
fast; the full-size figures are produced by the same code (see the README).
"""

from __future__ import annotations

import pytest

from fedsim.evaluation import compare
from tests.fedsim.helpers_fedsim import run_regime
from tests.worlds import build_workspace

# the module's worlds are built once: keep its tests in one xdist worker
# A study on the 20,000-person default world (≈ 85 s): `make science` runs it beside the full null comparisons;
# `make test` keeps the known-answer regime tests (tests/fedsim/test_regimes_known_answer.py: pooled reaches the
# closed form, a placebo partner adds nothing).
pytestmark = [pytest.mark.xdist_group("test_default_world_direction"), pytest.mark.science]


@pytest.fixture(scope="module")
def comparisons(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = build_workspace(
        {"preset": "default", "seed": 4, "overrides": {"persons": 10000, "days": 150}},
        {"train_days": 95, "gap_days": 5, "test_days": 50},
        tmp_path_factory.mktemp("default-world"),
    )
    chain = list(ws.world.partners)
    scores = {r: run_regime(ws, r, chain, model="gbt").scores for r in ("status_quo", "watchlist", "pooled")}

    def cmp(a: str, b: str):  # type: ignore[no-untyped-def]
        return compare(
            scores[a],
            scores[b],
            ws.truth,
            partner_sizes=ws.partner_sizes,
            seed=0,
            n_boot=400,
            test_window_ts=(ws.split.test_start, ws.split.test_end),
            capacities=[0.005],
            latencies_h=[0],
            interdiction=[1.0],
        )

    return {"pooled": cmp("pooled", "status_quo"), "watchlist": cmp("watchlist", "status_quo")}


@pytest.mark.slow
# Not "sale": since pooled traces labels by salted key like the reports regime (never the hidden truth), its
# sale-fraud AP gain on this 10k-person world at one seed is +0.015 [-0.001, 0.031] - within noise here.
@pytest.mark.parametrize("fraud_type", ["all", "helpdesk", "purchase"])
def test_pooling_the_chain_ranks_fraud_better_than_the_status_quo(comparisons, fraud_type: str) -> None:  # type: ignore[no-untyped-def]
    c = comparisons["pooled"]
    assert c.value("ap", fraud_type=fraud_type, column="lo") > 0, c.value("ap", fraud_type=fraud_type)


@pytest.mark.slow
@pytest.mark.parametrize("fraud_type", ["helpdesk", "purchase"])
def test_pooling_catches_helpdesk_and_marketplace_fraud_no_later(comparisons, fraud_type: str) -> None:  # type: ignore[no-untyped-def]
    c = comparisons["pooled"]
    assert c.value("ed", fraud_type=fraud_type, k=0.005, h=0) >= 0  # caught before the money left: not fewer


# Not helpdesk: with labels traced by key (issue 9) pooled's helpdesk € gain is not reliable at one seed here
# (P = 0.75); over 3 worlds x 5 seeds at the calibrated capacity it is -€6.0k [-14.8k, +2.1k] (README).
@pytest.mark.slow
def test_pooling_saves_money_on_purchase_fraud(comparisons) -> None:  # type: ignore[no-untyped-def]
    c = comparisons["pooled"]
    p = c.value("prevented_eur", fraud_type="purchase", k=0.005, delta_h=0, rho=1.0, column="p_a_gt_b")
    assert p >= 0.8, f"purchase: P(pooled prevents more € than the status quo) = {p:.2f}"


@pytest.mark.slow
def test_pooling_prevents_more_loss_over_all_types(comparisons) -> None:  # type: ignore[no-untyped-def]
    c = comparisons["pooled"]
    assert c.value("prevented_eur", k=0.005, delta_h=0, rho=1.0, column="p_a_gt_b") >= 0.9


@pytest.mark.slow
def test_the_shared_watchlist_does_not_do_worse_than_the_status_quo(comparisons) -> None:  # type: ignore[no-untyped-def]
    c = comparisons["watchlist"]
    for metric, where in (("prevented_eur", {"k": 0.005, "delta_h": 0, "rho": 1.0}), ("ed", {"k": 0.005, "h": 0})):
        assert c.value(metric, column="hi", **where) >= 0, metric
