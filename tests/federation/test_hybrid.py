"""Hybrid: banks FedAvg their split networks while telco and marketplace stay vertical (in-process run)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from fedsim.federation.vertical import LocalExchange, Plan, coordinator, read_scores, write_bundle
from fedsim.regimes.hybrid import Hybrid, hybrid_roles
from fedsim.regimes.vertical import holder_data, party_data
from tests.federation.vertical_worlds import context, known_answer

CHAIN_2 = ("bank_1", "bank_2", "telco", "marketplace")


def _run(mode: str, rounds: int = 2) -> tuple[LocalExchange, coordinator.CoordinatorResult, dict[str, str]]:
    ws = known_answer(banks=2, entities=600)
    ctx = context(ws, CHAIN_2)
    run_dir = Path(tempfile.mkdtemp(prefix="hyb-"))
    bundles = {b: str(write_bundle(holder_data(ctx, b), run_dir)) for b in ("bank_1", "bank_2")}
    bundles.update({p: str(write_bundle(party_data(ctx, p), run_dir)) for p in ("telco", "marketplace")})
    plan = Plan(
        mode=mode,
        holders=("bank_1", "bank_2"),
        parties=("telco", "marketplace"),
        seed=0,  # type: ignore[arg-type]
        rounds=rounds,
        local_epochs=1,
        batch_size=256,
        learning_rate=0.01,
        embedding_dim=4,
        hidden=8,
        out_dir=str(run_dir),
    )
    exchange = LocalExchange(bundles)
    return exchange, coordinator.run(plan, exchange), bundles


def _models(state: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def test_hybrid_rounds_end_with_one_global_split_network() -> None:
    exchange, result, bundles = _run("hybrid")

    s = exchange.states
    bank_1, bank_2 = _models(s["bank_1"], "model/"), _models(s["bank_2"], "model/")
    assert bank_1.keys() == bank_2.keys() and len(bank_1) == 6  # own bottom (2) + top (4)
    for k in bank_1:
        np.testing.assert_array_equal(bank_1[k], bank_2[k])
    for party in ("telco", "marketplace"):
        one, two = _models(s[party], "model/bank_1/"), _models(s[party], "model/bank_2/")
        for k in one:
            np.testing.assert_array_equal(one[k], two[k])
    # Each bank scored its own test rows (10 days × its people) with the global model.
    for b in ("bank_1", "bank_2"):
        assert len(read_scores(bundles[b])) == 10 * len(known_answer(banks=2, entities=600).features[b].entities)
    assert len(result.step_metrics["train_loss.bank_1"]) == 2


def test_vertical_with_two_banks_keeps_two_separate_federations() -> None:
    exchange, _, _ = _run("vertical", rounds=1)

    one, two = (
        _models(exchange.states["telco"], "model/bank_1/"),
        _models(exchange.states["telco"], "model/bank_2/"),
    )
    # Both started from the same seed; each bank's gradients moved only its own copy.
    assert any(not np.array_equal(one[k], two[k]) for k in one)


def test_hybrid_regime_records_its_protocol() -> None:
    ctx = context(known_answer(banks=2, entities=600), CHAIN_2, rounds=1)

    result = Hybrid().run(ctx)

    assert hybrid_roles(ctx).holders == ("bank_1", "bank_2")
    assert result.params["fl_horizontal_holders"] == 2
    assert "FedAvg" in result.params["sharing"] and "leakage.model_arrays" in result.params
    assert set(result.scores["partner"]) == {"bank_1", "bank_2"}
    assert result.metrics["psi.bank_2.marketplace.match_rate"] == 1.0
