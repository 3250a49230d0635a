"""Horizontal FL on Flower's simulation engine: accuracy against pooled, non-IID, SecAgg+, FedProx,
the partner boundary, dropout, Ray kept warm, and a tracked run through the experiment runner.

All on a known-answer world (3 banks × 1,000 people, 20 days), 1–3 rounds. Ray-using tests share one
xdist worker (``xdist_group("flower")``) so Ray starts once per test session.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsim.errors import FedsimError
from fedsim.federation.boundary import BoundaryRules, check_messages, identifier_values
from fedsim.federation.engine import RAY_STATS, read_capture
from fedsim.federation.partner_data import build_partner_data, partner_only
from fedsim.regimes import get_regime
from tests.federation.horizontal_worlds import BANKS, average_precision, context, workspace

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower")]


def test_fedavg_reaches_pooled_average_precision_on_similar_banks() -> None:
    # prepare: three banks of equal size and equal evidence (d = 2)
    ws = workspace()
    # execute: pooled (central) vs. horizontal FedAvg, same model, seed and local recipe
    pooled = get_regime("pooled").run(context(ws))
    fed = get_regime("horizontal").run(context(ws, rounds=3))
    ap_pooled, ap_fed = average_precision(ws, pooled.scores), average_precision(ws, fed.scores)
    # assert: ≥ 95% of the pooled AP; one weighted loss per round, falling; settings recorded
    assert ap_pooled > 0.05
    assert ap_fed >= 0.95 * ap_pooled, (ap_fed, ap_pooled)
    curve = fed.step_metrics["train_loss.bank"]
    assert len(curve) == 3 and all(math.isfinite(v) for v in curve) and curve[-1] < curve[0]
    assert (fed.params["fl_rounds"], fed.params["fl_strategy"], fed.params["fl_proximal_mu"]) == (3, "fedavg", 0.0)
    assert set(fed.scores["partner"]) == set(BANKS)
    assert len(fed.scores) == len(pooled.scores)


def test_non_iid_case_split_runs_and_records() -> None:
    ws = workspace(case_shares=[0.8, 0.1, 0.1])
    result = get_regime("horizontal").run(context(ws, rounds=2))
    ap = average_precision(ws, result.scores)
    positives = {p: int(build_partner_data(partner_only(context(ws), p), p).y.sum()) for p in BANKS}
    print(f"non-IID [0.8, 0.1, 0.1]: horizontal AP = {ap:.4f}, training positives per bank {positives}")
    assert positives["bank_1"] > 3 * positives["bank_2"]  # the skew is really there
    assert 0 < ap <= 1
    assert all(len(result.step_metrics[f"train_loss.{p}"]) == 2 for p in BANKS)
    assert result.metrics["train_rows.bank_1"] > 0


def test_secure_aggregation_gives_the_plain_fedavg_model_up_to_quantisation() -> None:
    ws = workspace()
    plain = get_regime("horizontal").run(context(ws, rounds=2, strategy="fedprox"))
    secure = get_regime("horizontal").run(context(ws, rounds=2, strategy="fedprox", secure=True))
    a = plain.scores.sort_values(["partner", "entity_id", "day"])["score"].to_numpy()
    b = secure.scores.sort_values(["partner", "entity_id", "day"])["score"].to_numpy()
    assert secure.params["fl_secure_aggregation"] == "secagg+" and secure.params["fl_proximal_mu"] == 0.1
    assert np.max(np.abs(a - b)) < 1e-3  # SecAgg+ quantises to 2^22 levels over ±16
    assert secure.step_metrics["train_loss.bank"] == pytest.approx(plain.step_metrics["train_loss.bank"], rel=1e-4)
    assert "train_loss.bank_1" not in secure.step_metrics  # per-partner losses stay hidden under SecAgg+


def test_only_model_updates_and_aggregates_cross_the_partner_boundary(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = workspace()
    ctx = context(ws, rounds=2, capture_dir=str(tmp_path / "capture"))
    data = {p: build_partner_data(partner_only(ctx, p), p) for p in BANKS}
    rules = BoundaryRules(
        identifiers=identifier_values([ws.features[p].keys() for p in BANKS] + [ws.truth["entities"][["entity_id"]]]),
        row_counts=frozenset(n for d in data.values() for n in [d.n_rows, *map(len, d.tests.values())]),
        weight_names=frozenset({"net.weight", "net.bias"}))
    # execute
    get_regime("horizontal").run(ctx)
    messages = read_capture(tmp_path / "capture")
    # assert: every message of every partner was seen (stats + 2 rounds + score, in and out) and is clean
    assert len(messages) == len(BANKS) * 4 * 2
    assert sum(1 for m in messages if m.message_type == "train" and m.direction == "from_partner") == 6
    assert all(m.arrays for m in messages if m.message_type == "train")
    assert check_messages(messages, rules) == []


def test_a_partner_dropping_out_is_recorded_and_the_rest_completes() -> None:
    ws = workspace()
    result = get_regime("horizontal").run(context(ws, rounds=3, faults={"bank_2": 2}))
    assert result.params["fl_dropouts"] == "bank_2@rounds 2,3"
    assert result.metrics["fl_partners_dropped.bank"] == 1.0
    loss = result.step_metrics["train_loss.bank_2"]
    assert math.isfinite(loss[0]) and math.isnan(loss[1]) and math.isnan(loss[2])
    assert all(math.isfinite(v) for v in result.step_metrics["train_loss.bank"])
    assert set(result.scores["partner"]) == set(BANKS)  # it still scores with the consortium model


def test_every_partner_failing_stops_the_run_naming_partners_and_round() -> None:
    ws = workspace()
    with pytest.raises(FedsimError, match=r"every partner failed in round 1 \(bank_1: .*; bank_3: .*\)"):
        get_regime("horizontal").run(context(ws, ("bank_1", "bank_3"), rounds=2, faults={"bank_1": 1, "bank_3": 1}))


def test_mixed_kinds_federate_the_banks_and_run_the_telco_siloed() -> None:
    ws = workspace()
    result = get_regime("horizontal").run(context(ws, ("bank_1", "bank_2", "telco"), rounds=1))
    assert result.params["siloed_members"] == "telco"
    assert result.params["fl_groups"] == "bank: bank_1+bank_2"
    assert set(result.scores["partner"]) == {"bank_1", "bank_2", "telco"}


def test_ray_stays_warm_between_federated_runs() -> None:
    ws = workspace()
    get_regime("horizontal").run(context(ws, ("bank_1", "bank_2"), rounds=1))
    built, reused = RAY_STATS.pools_built, RAY_STATS.pools_reused
    get_regime("horizontal").run(context(ws, ("bank_2", "bank_3"), rounds=1))
    assert RAY_STATS.installed
    assert (RAY_STATS.pools_built, RAY_STATS.pools_reused) == (built, reused + 1)


def test_horizontal_run_is_tracked_like_any_other_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import mlflow
    import yaml

    from fedsim.runner import run_experiment
    from tests.federation.horizontal_worlds import SPLIT, world_spec

    spec = {"name": "hz-sim", "world": world_spec(), "split": SPLIT, "regimes": ["horizontal"],
            "coalitions": [list(BANKS)], "models": ["logistic"], "seeds": [0],
            "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "negative_rate": 0.2},
            "federation": {"rounds": 2, "strategy": "fedprox", "proximal_mu": 0.05}, "metrics": {"bootstrap": 20}}
    (tmp_path / "hz.yaml").write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    summary = run_experiment(tmp_path / "hz.yaml", tracking_uri=uri, workdir=tmp_path / "work", progress=False)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(summary.run_ids[0])
    assert run.data.params["fl_rounds"] == "2" and run.data.params["fl_strategy"] == "fedprox"
    assert run.data.params["fl_proximal_mu"] == "0.05" and run.data.params["fl_engine"] == "simulation"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss.bank")] == [0, 1]
    assert run.data.tags["fedsim.regime"] == "horizontal" and "ap" in " ".join(run.data.metrics)
