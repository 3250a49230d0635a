"""The one weighted aggregation (FedAvg's server step) that horizontal FL and both sides of hybrid use."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim.federation.aggregate import weighted_average, weighted_average_named
from fedsim.federation.vertical import party
from fedsim.federation.vertical.data import Plan


def test_weighted_average_is_the_hand_computed_fedavg_mean() -> None:
    # prepare: two clients with 1 and 3 examples; tensors [0, 0] | [1] and [4, 8] | [5]
    updates = [[np.array([0.0, 0.0]), np.array([1.0])], [np.array([4.0, 8.0]), np.array([5.0])]]
    # execute
    avg = weighted_average(updates, [1, 3])
    # assert: (1·0 + 3·4) / 4 = 3, (1·0 + 3·8) / 4 = 6, (1·1 + 3·5) / 4 = 4; equal weights: the plain mean
    np.testing.assert_allclose(avg[0], [3.0, 6.0])
    np.testing.assert_allclose(avg[1], [4.0])
    np.testing.assert_allclose(weighted_average(updates, [2, 2])[0], [2.0, 4.0])


def test_weighted_average_keeps_the_dtype_and_accumulates_in_float64() -> None:
    # prepare: float32 tensors whose float32 sum would lose the small term (1e8 + 1 - 1e8)
    big, one = np.float32(1e8), np.float32(1.0)
    updates = [[np.array([big], np.float32)], [np.array([one], np.float32)], [np.array([-big], np.float32)]]
    # execute
    out = weighted_average(updates, [1, 1, 1])
    # assert: float32 out, and the exact mean 1/3 (a float32 running sum would give 0)
    assert out[0].dtype == np.float32
    assert out[0][0] == np.float32(1.0 / 3.0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [([1], "one weight per client"), ([0, 0], "positive sum"), ([-1, 2], ">= 0"), ([1, np.nan], "finite")],
)
def test_weighted_average_refuses_bad_weights_naming_the_rule(weights: list[float], message: str) -> None:
    updates = [[np.zeros(2)], [np.ones(2)]]
    with pytest.raises(ValueError, match=message):
        weighted_average(updates, weights)


def test_named_models_and_the_party_average_agree_with_the_one_aggregation() -> None:
    # prepare: two holders' copies of one party bottom model (float32), 100 and 300 training rows
    rng = np.random.default_rng(0)
    copies = {b: {"w": rng.normal(size=(3, 2)).astype(np.float32)} for b in ("bank_1", "bank_2")}
    rows = {"bank_1": 100.0, "bank_2": 300.0}
    state = {f"model/{b}/w": m["w"].copy() for b, m in copies.items()}
    plan = Plan(
        mode="hybrid",
        holders=("bank_1", "bank_2"),
        parties=("telco_1",),
        seed=0,
        rounds=1,
        local_epochs=1,
        batch_size=8,
        learning_rate=0.01,
        embedding_dim=2,
        hidden=4,
        out_dir="",
    )
    # execute: the coordinator's named form and the party's own averaging of its copies
    named = weighted_average_named([copies["bank_1"], copies["bank_2"]], [100, 300])
    party.average(state, {f"weight/{b}": n for b, n in rows.items()}, plan)
    # assert: both equal (100·θ₁ + 300·θ₂) / 400, bit for bit, for every copy
    theta = [copies[b]["w"].astype(np.float64) for b in ("bank_1", "bank_2")]
    expected = ((100 * theta[0] + 300 * theta[1]) / 400).astype(np.float32)
    np.testing.assert_array_equal(named["w"], expected)
    for b in rows:
        np.testing.assert_array_equal(state[f"model/{b}/w"], expected)
