"""Value-shape probes: no shape of any value separates fraud at case level, and a planted shape tell is caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

from synthetic.config import build_config
from synthetic.value_shape import FLAG_SEPARATION, shapes, value_shape_screen, weighted_auc
from synthetic.world import PartnerView, World, generate

# the module's worlds are built once: keep its tests in one xdist worker
pytestmark = pytest.mark.xdist_group("test_value_shape")


@pytest.fixture(scope="module")
def small_world() -> World:
    return generate(build_config(preset="small"), seed=2)


def test_weighted_auc_equals_sklearn_with_sample_weights() -> None:
    rng = np.random.default_rng(0)
    score = rng.integers(0, 5, 400).astype(float)  # many ties
    label = rng.random(400) < 0.3
    weight = rng.uniform(0.1, 2.0, 400)
    assert weighted_auc(score, label, weight) == pytest.approx(roc_auc_score(label, score, sample_weight=weight))


def test_binned_auc_counts_only_pairs_of_one_magnitude() -> None:
    # positives are large, negatives small: across bins perfectly separated, within each bin no difference
    score = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    label = np.array([True, True, False, False, True, True, False, False])
    bins = np.array([3, 3, 3, 3, 1, 1, 1, 1])
    assert weighted_auc(score, label, np.ones(8), bins) == pytest.approx(0.5)
    assert weighted_auc(bins.astype(float), label, np.ones(8)) == pytest.approx(0.5)  # sanity: ties only


def test_money_shapes_read_cents_and_roundness() -> None:
    col = pa.chunked_array([pa.array([20.0, 35.5, 1200.0, 7.01, None], pa.float64())])
    s = shapes(col).probes
    np.testing.assert_array_equal(s["cents"][0][:4], [0, 50, 0, 1])
    np.testing.assert_array_equal(s["mult10"][0][:4], [1, 0, 1, 0])
    np.testing.assert_array_equal(s["mult100"][0][:4], [0, 0, 1, 0])
    np.testing.assert_array_equal(s["last_digit"][0][:4], [0, 5, 0, 7])
    assert np.isnan(s["cents"][0][4])


def _assert_no_shape_tell(world: World) -> None:
    probes = value_shape_screen(world)
    judged = {(p.partner, p.table) for p in probes}
    assert ("bank_1", "transactions") in judged and ("telco", "calls") in judged and ("marketplace", "orders") in judged
    assert any(p.stratum == "kind=atm" and p.column == "amount_eur" for p in probes)
    flagged = [(p.partner, p.table, p.stratum, p.column, p.shape, round(p.separation, 3)) for p in probes if p.flagged]
    assert flagged == []
    # the plain (not target-encoded) shapes of the money columns, where the old tells were, stay far from the bar
    money = [p for p in probes if p.column == "amount_eur" and p.shape in ("cents", "whole", "mult10", "mult50")]
    assert max(p.separation for p in money if p.pos_units >= 50) < FLAG_SEPARATION


def test_no_value_shape_separates_fraud_in_the_small_world(small_world: World) -> None:
    _assert_no_shape_tell(small_world)


@pytest.mark.slow
def test_no_value_shape_separates_fraud_in_the_default_world() -> None:
    _assert_no_shape_tell(generate(build_config(preset="default"), seed=1))


def _plant_atm_tell(world: World, partner: str) -> World:
    """Fraud ATM withdrawals in odd fives (€x5), legitimate ones in tens: the tell this screen exists for."""
    view = world.partners[partner]
    tr = view.tables["transactions"]
    prov = world.truth_table("provenance")
    rows = prov.loc[(prov["partner"] == partner) & (prov["table"] == "transactions"), "row"].to_numpy()
    fraud = np.zeros(tr.num_rows, bool)
    fraud[rows] = True
    atm = np.asarray(tr.column("kind").to_pylist(), dtype=object) == "atm"
    amount = tr.column("amount_eur").to_numpy().copy()
    amount[fraud & atm] += 5.0
    new = tr.set_column(tr.schema.get_field_index("amount_eur"), "amount_eur", pa.array(amount))
    views = {**world.partners, partner: PartnerView(view.name, view.kind, {**view.tables, "transactions": new})}
    return dataclasses.replace(world, partners=views)


def test_a_planted_round_amount_tell_is_caught(small_world: World) -> None:
    planted = _plant_atm_tell(small_world, "bank_1")
    flagged = [p for p in value_shape_screen(planted, partners=["bank_1"]) if p.flagged]
    assert any(p.stratum == "kind=atm" and p.column == "amount_eur" and p.shape == "mult10" for p in flagged)
    assert {(p.table, p.column) for p in flagged} == {("transactions", "amount_eur")}
