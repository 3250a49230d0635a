"""The validity checks: their statistics, the `default` world against them, and proof that they can fail.

The `default` preset is screened and calibrated at full size (20,000 persons × 180 days, ≈ 15–40 s to
generate on two shared cores): the calibration and the leak screen are statements about that preset,
and the rare types need the full population to have enough cases. It is generated once per test run
(shared by pytest-xdist workers through a file lock) and screened once. The "can fail" tests plant a leak in
a small world and check that the screen names it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pytest
from rich.console import Console
from scipy.stats import chi2_contingency
from sklearn.metrics import roc_auc_score

from fedsim.world_describe import render_description
from synthetic.calibration import CALIBRATION_TARGETS, NL_PERSONS_15PLUS, calibration_table, fraud_type_table
from synthetic.config import WorldConfig, build_config
from synthetic.describe import describe_world
from synthetic.known_answer import coalition_optimal_auc
from synthetic.leak_screen import DESIGNED_SIGNALS, leak_screen
from synthetic.stats import auc_standard_error, roc_auc, two_proportion_p_value
from synthetic.world import PartnerView, World, generate, read_world, write_world

PHI = NormalDist().cdf


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """An inter-process lock, so pytest-xdist workers build the shared world once."""
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # workers share the parent


@pytest.fixture(scope="session")
def default_world(shared_dir: Path) -> World:
    path = shared_dir / "default-world-seed-1"
    with _exclusive(shared_dir / "default-world.lock"):
        if not (path / "manifest.json").exists():
            write_world(generate(build_config(preset="default"), seed=1), path)
    return read_world(path)


@pytest.fixture(scope="session")
def default_screen(default_world: World, shared_dir: Path) -> dict:
    path = shared_dir / "default-world-seed-1-screen.json"
    with _exclusive(shared_dir / "default-screen.lock"):
        if not path.exists():
            path.write_text(json.dumps(leak_screen(default_world)))
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def small_world() -> World:
    return generate(build_config(preset="small"), seed=2)


def _replace_table(world: World, partner: str, table: str, new: pa.Table) -> World:
    view = world.partners[partner]
    views = {**world.partners, partner: PartnerView(view.name, view.kind, {**view.tables, table: new})}
    return dataclasses.replace(world, partners=views)


def _injected_rows(world: World, partner: str, table: str) -> np.ndarray:
    prov = world.truth_table("provenance")
    return prov.loc[(prov["partner"] == partner) & (prov["table"] == table), "row"].to_numpy()


# ------------------------------------------------------------------------------------------------
# Statistics: a hand-computed value and a property each
# ------------------------------------------------------------------------------------------------
def test_roc_auc_known_value_and_agreement_with_sklearn() -> None:
    # 4 pairs (pos, neg): 0.35 > 0.1, 0.35 < 0.4, 0.8 > 0.1, 0.8 > 0.4 → 3 of 4
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == 0.75
    assert roc_auc(np.array([1.0, 1.0, 1.0]), np.array([0, 1, 1], bool)) == 0.5  # ties count half
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.2
    s = rng.normal(size=500) + y * 0.7 + np.round(rng.random(500), 1)  # with ties
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert roc_auc(-s, y) == pytest.approx(1 - roc_auc(s, y), abs=1e-12)
    assert math.isnan(roc_auc(s, np.zeros(500, bool)))


def test_auc_standard_error_known_value_and_shrinks_with_n() -> None:
    # Hanley & McNeil: A = 0.75 → Q1 = 0.6, Q2 = 1.125/1.75; n⁺ = n⁻ = 10
    q2 = 2 * 0.75**2 / 1.75
    var = (0.75 * 0.25 + 9 * (0.6 - 0.5625) + 9 * (q2 - 0.5625)) / 100
    assert auc_standard_error(0.75, n_pos=10, n_neg=10) == pytest.approx(math.sqrt(var))
    assert auc_standard_error(0.5, n_pos=1, n_neg=1) == pytest.approx(0.5)
    assert auc_standard_error(0.7, n_pos=1000, n_neg=1000) < auc_standard_error(0.7, n_pos=100, n_neg=100)


def test_two_proportion_p_value_known_value_and_chi_square() -> None:
    # 60/100 vs 40/100: pooled 0.5, SE = √(0.25 · 0.02), z = 0.2 / 0.0707 = 2.828 → p = 0.00468
    assert two_proportion_p_value(hits_a=60, n_a=100, hits_b=40, n_b=100) == pytest.approx(0.004678, abs=1e-5)
    assert two_proportion_p_value(hits_a=30, n_a=60, hits_b=50, n_b=100) == pytest.approx(1.0)
    assert two_proportion_p_value(hits_a=10, n_a=10, hits_b=90, n_b=90) == 1.0
    for a, na, b, nb in ((12, 40, 70, 300), (5, 25, 400, 1000)):
        chi = chi2_contingency([[a, na - a], [b, nb - b]], correction=False).pvalue
        assert two_proportion_p_value(hits_a=a, n_a=na, hits_b=b, n_b=nb) == pytest.approx(chi, rel=1e-9)


# ------------------------------------------------------------------------------------------------
# The default preset: calibrated and free of leaks
# ------------------------------------------------------------------------------------------------
def test_default_world_is_calibrated(default_world: World) -> None:
    rows = calibration_table(default_world)
    assert {r["key"] for r in rows} == {t.key for t in CALIBRATION_TARGETS}
    judged = [r for r in rows if not r["context"]]
    assert len(judged) >= 13 and all(r["generated"] is not None for r in judged)
    failing = [(r["quantity"], r["generated"], r["target"]) for r in judged if not r["ok"]]
    assert failing == []
    assert all(r["ok"] is None for r in rows if r["context"])


def test_calibration_rows_recompute_from_truth(default_world: World) -> None:
    cases = default_world.truth_table("cases")
    persons, years = 20_000, 180 / 365
    rows = {r["key"]: r for r in calibration_table(default_world)}
    hd = cases[cases["fraud_type"] == "helpdesk"]
    assert rows["helpdesk_victims_nl"]["generated"] == pytest.approx(len(hd) / 25 / persons / years * NL_PERSONS_15PLUS)
    assert rows["helpdesk_eur_nl"]["generated"] == pytest.approx(
        len(hd) / 25 / persons / years * NL_PERSONS_15PLUS * hd["loss_eur"].mean()
    )
    pur = cases.loc[cases["fraud_type"] == "purchase", "loss_eur"]
    assert rows["purchase_loss_p75"]["generated"] == pytest.approx(np.quantile(pur, 0.75))
    n_hd, n_wa = len(hd), int((cases["fraud_type"] == "whatsapp").sum())
    assert rows["payment_victims_pct"]["generated"] == pytest.approx(100 * (n_hd / 25 + n_wa) / persons / years)
    assert rows["payment_victims_pct"]["n"] == n_hd + n_wa
    hours = (hd["t_loss"] - hd["ts_contact"]) / 3600
    assert rows["helpdesk_contact_to_loss_h"]["generated"] == pytest.approx(hours.median())


def test_default_world_has_no_undesigned_leak(default_screen: dict) -> None:
    assert default_screen["leaks"] == []
    # no amount or format tell: no value-shape probe separates fraud from legitimate rows beyond noise
    assert default_screen["value_shape"]["probes"] > 1000
    assert default_screen["value_shape"]["flagged"] == []
    assert default_screen["verdicts"]["value_shape"]
    assert default_screen["verdicts"]["single_column"]
    # the screen saw every table and type, and the designed signals do show (so the screen has power)
    seen = {(r["kind"], r["table"]) for r in default_screen["single_column"]}
    assert len(seen) == 11
    assert {r["fraud_type"] for r in default_screen["single_column"]} == {
        "helpdesk",
        "purchase",
        "sale",
        "whatsapp",
        "invoice",
    }
    strong = {r["feature"] for r in default_screen["designed_signals"]}
    assert {"duration_s", "remote_access_tool"} <= strong
    assert all(r["designed"] and r["why"] for r in default_screen["designed_signals"])
    # designed binary signals all have legitimate look-alikes (nothing separable by construction)
    assert [r["feature"] for r in default_screen["designed_signals"] if r["lookalike_rows"] == 0] == []


def test_default_world_metadata_only_model_scores_chance(default_screen: dict) -> None:
    judged = [r for r in default_screen["metadata_model"] if r["ok"] is not None]
    assert len(judged) == 19  # every event and entity table of the five partners
    assert [(r["partner"], r["table"], round(r["auc"], 3)) for r in judged if not r["ok"]] == []
    # Out-of-fold AUCs of a model without signal scatter around 0.5 and, through cross-validation, a little below
    # it; a leak shows as an AUC above the range. ≤ 2 tables above it, all within the noise (`ok` above).
    lo, hi = default_screen["thresholds"]["metadata_auc_range"]
    assert sum(r["auc"] > hi for r in judged) <= 2
    aucs = np.array([r["auc"] for r in judged])
    assert 0.47 <= aucs.mean() <= 0.53


def test_default_world_key_presence_is_independent_of_the_label(default_screen: dict) -> None:
    rows = default_screen["key_presence"]
    judged = [r for r in rows if r["ok"] is not None]
    assert {r["role"] for r in judged} >= {"victim", "mule"} and len(judged) >= 12
    assert [(r["partner"], r["key"], r["role"], r["p_value"]) for r in judged if not r["ok"]] == []
    designed = [r for r in rows if r["designed"]]
    assert {(r["key"], r["role"]) for r in designed} == {("phone_hash", "fraudster"), ("payout_iban_hash", "fraudster")}
    assert default_screen["truth_named_columns"] == []
    assert default_screen["ok"]


# ------------------------------------------------------------------------------------------------
# The screen can fail: plant a leak and it is named
# ------------------------------------------------------------------------------------------------
def test_planted_undesigned_column_is_a_leak(small_world: World) -> None:
    assert "bank.sessions.device_hash" not in DESIGNED_SIGNALS
    tbl = small_world.partners["bank_1"].tables["sessions"]
    device = tbl.column("device_hash").to_numpy() % (1 << 40)
    device[_injected_rows(small_world, "bank_1", "sessions")] += 1 << 50  # fraud devices get high hashes
    leaky = _replace_table(
        small_world,
        "bank_1",
        "sessions",
        tbl.set_column(tbl.schema.get_field_index("device_hash"), "device_hash", pa.array(device)),
    )
    clean = leak_screen(small_world, only=["bank_1/sessions"])
    screen = leak_screen(leaky, only=["bank_1/sessions"])
    assert clean["verdicts"]["single_column"] and not screen["verdicts"]["single_column"]
    assert [(r["table"], r["feature"]) for r in screen["leaks"]] == [("sessions", "device_hash")]
    assert screen["leaks"][0]["separation"] > 0.99


def test_planted_timestamp_quirk_fails_the_metadata_model(small_world: World) -> None:
    tbl = small_world.partners["bank_1"].tables["transactions"]
    ts = tbl.column("ts").to_numpy().copy()
    rows = _injected_rows(small_world, "bank_1", "transactions")
    ts[rows] -= ts[rows] % 60  # fraud rows booked on the whole minute
    quirky = _replace_table(
        small_world, "bank_1", "transactions", tbl.set_column(tbl.schema.get_field_index("ts"), "ts", pa.array(ts))
    )
    clean = leak_screen(small_world, only=["bank_1/transactions"])["metadata_model"][0]
    model = leak_screen(quirky, only=["bank_1/transactions"])["metadata_model"][0]
    assert clean["ok"] and not model["ok"]
    assert model["auc"] > 0.9 and model["top_feature"] == "ts second"


def test_planted_key_gap_fails_key_presence(small_world: World) -> None:
    tbl = small_world.partners["bank_2"].tables["customers"]
    parties = small_world.truth_table("case_entities")
    victims = parties.loc[(parties["partner"] == "bank_2") & (parties["role"] == "victim"), "entity_id"]
    drop = np.isin(tbl.column("customer_id").to_numpy(), victims.to_numpy())
    phone = pa.array(
        tbl.column("phone_hash").to_numpy(zero_copy_only=False),
        mask=drop | tbl.column("phone_hash").is_null().to_numpy(zero_copy_only=False),
        type=pa.int64(),
    )
    gappy = _replace_table(
        small_world,
        "bank_2",
        "customers",
        tbl.set_column(tbl.schema.get_field_index("phone_hash"), "phone_hash", phone),
    )
    clean = leak_screen(small_world, only=["bank_2/customers"])
    screen = leak_screen(gappy, only=["bank_2/customers"])
    assert clean["verdicts"]["key_presence"] and not screen["verdicts"]["key_presence"]
    bad = [r for r in screen["key_presence"] if r["ok"] is False]
    assert [(r["key"], r["role"], r["present_role"]) for r in bad] == [("phone_hash", "victim", 0.0)]


def test_truth_named_column_is_reported(small_world: World) -> None:
    tbl = small_world.partners["telco"].tables["calls"]
    named = _replace_table(small_world, "telco", "calls", tbl.append_column("case_ref", pa.array(np.zeros(len(tbl)))))
    screen = leak_screen(named, only=["telco/calls"])
    assert screen["truth_named_columns"] == ["telco/calls.case_ref"] and not screen["ok"]


# ------------------------------------------------------------------------------------------------
# describe_world
# ------------------------------------------------------------------------------------------------
def test_describe_realistic_world_is_json_and_extrapolates(small_world: World) -> None:
    desc = describe_world(small_world, screen=False)
    json.dumps(desc, allow_nan=False)  # plain JSON: no numpy scalars, no NaN
    assert desc["rows"]["bank_1"]["transactions"] == small_world.partners["bank_1"].tables["transactions"].num_rows
    assert set(desc["rows"]["truth"]) >= {"cases", "money_outs", "provenance"}
    cases = small_world.truth_table("cases")
    cfg = small_world.config
    years = cfg.population.days / 365
    for row in fraud_type_table(small_world):
        c = cases[cases["fraud_type"] == row["fraud_type"]]
        mult = cfg.fraud[row["fraud_type"]].multiplier
        assert row["cases"] == len(c) and row["multiplier"] == mult
        assert row["per_100k_year"] == pytest.approx(len(c) / mult / cfg.population.persons / years * 1e5)
        assert row["nl_eur_year"] == pytest.approx(row["nl_victims_year"] * c["loss_eur"].mean())
        assert row["reported_share"] == pytest.approx(c["reported"].mean())
        assert 1.0 <= row["victims_per_mule"] <= 10.0


def test_describe_known_answer_world_gives_closed_form_aucs() -> None:
    config = WorldConfig(
        mode="known_answer",
        known_answer={
            "entities": 2000,
            "days": 14,
            "bank_shifts": [1.0, 0.5],
            "telco_shift": 0.8,
            "marketplace_shift": 0.0,
        },
    )
    desc = describe_world(generate(config, seed=1))
    json.dumps(desc, allow_nan=False)
    ka = desc["known_answer"]
    auc = {r["partner"]: r["optimal_auc"] for r in ka["partners"]}
    assert set(auc) == {"bank_1", "bank_2", "telco", "marketplace", "placebo"}
    assert auc["bank_1"] == pytest.approx(PHI(1.0 / math.sqrt(2)))  # 0.760
    assert auc["bank_2"] == pytest.approx(PHI(0.5 / math.sqrt(2)))  # 0.638
    assert auc["telco"] == pytest.approx(PHI(0.8 / math.sqrt(2)))  # 0.714
    assert auc["placebo"] == auc["marketplace"] == 0.5
    assert ka["all_partners_optimal_auc"] == pytest.approx(coalition_optimal_auc(config, list(auc)))
    assert ka["all_partners_optimal_auc"] > max(auc.values())
    assert ka["cases"] == 100 and desc["rows"]["truth"]["cases"] == 100
    assert "calibration" not in desc


def test_render_description_shows_what_to_look_at_first(small_world: World) -> None:
    desc = describe_world(small_world, screen=False)
    desc["leak_screen"] = leak_screen(small_world, only=["bank_1/sessions", "bank_1/customers"])  # quick
    buf = io.StringIO()
    render_description(desc, console=Console(file=buf, width=140, color_system=None))
    text = buf.getvalue()
    for expected in (
        "Rows per table",
        "Fraud types",
        "Calibration",
        "bank-helpdesk victims per year, NL",
        "NOT MODELLED FULLY",
        "Leak screen",
        "Metadata-only model",
        "Join-key presence",
        "whatsapp",
    ):
        assert expected in text, expected
