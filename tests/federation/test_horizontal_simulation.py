"""Horizontal FL on Flower's simulation engine: accuracy against pooled, the in-process reference, non-IID,
SecAgg+, FedProx, DP-SGD, dropout, mixed kinds, Ray kept warm, and a tracked run through the runner.

All on a known-answer world (3 banks × 1,000 people, 20 days), 1–3 rounds. Ray-using tests share one
xdist worker (``xdist_group("flower")``) so Ray starts once per test session.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fedsim.errors import FedsimError
from fedsim.federation.engine import RAY_STATS
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
    assert (fed.params["fl_rounds"], fed.params["fl_strategy"]) == (3, "fedavg")
    assert "fl_proximal_mu" not in fed.params  # μ is a FedProx setting: not logged under FedAvg
    assert set(fed.scores["partner"]) == set(BANKS)
    assert len(fed.scores) == len(pooled.scores)


def test_flower_run_gives_the_in_process_fedavg_model(tmp_path: Path) -> None:
    import pandas as pd

    from fedsim.federation.horizontal import HorizontalSettings, run_horizontal, run_in_process
    from fedsim.federation.horizontal.task import score_locally

    ws = workspace()
    ctx = context(ws, rounds=2, strategy="fedprox")
    settings = HorizontalSettings.from_context(ctx)
    # execute: the Flower simulation, and the same rounds in one process without Flower
    flower = run_horizontal(ctx, BANKS, settings)
    datas = [build_partner_data(partner_only(ctx, p), p) for p in BANKS]
    arrays, reference_outcome, config = run_in_process(datas, settings)
    losses = reference_outcome.round_loss
    for d in datas:
        score_locally(d, arrays, config, tmp_path / d.partner)
    reference = pd.concat([pd.read_parquet(tmp_path / p / "scores_test.parquet") for p in BANKS])
    # assert: same per-round loss and the same scores for every entity-day (float32 sums aside)
    assert flower.outcome.round_loss == pytest.approx(losses, rel=1e-5)
    keys = ["partner", "entity_id", "day"]
    merged = flower.scores.merge(reference, on=keys, suffixes=("_flower", "_ref"), validate="one_to_one")
    assert len(merged) == len(reference) == len(flower.scores)
    np.testing.assert_allclose(merged["score_flower"], merged["score_ref"], atol=1e-5)
    assert flower.outcome.rounds_seconds > 0


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


def test_secure_aggregation_gives_the_plain_fedavg_model_up_to_quantisation(tmp_path: Path) -> None:
    from fedsim.federation.boundary import SECAGG_COUNT_KEY, check_anonymous_replies
    from fedsim.federation.engine import read_capture
    from fedsim.federation.horizontal.protocol import SECAGG_WEIGHT

    ws = workspace()
    plain = get_regime("horizontal").run(context(ws, rounds=2, strategy="fedprox"))
    secure = get_regime("horizontal").run(
        context(ws, rounds=2, strategy="fedprox", secure=True, capture_dir=str(tmp_path / "capture"))
    )
    # nothing per partner in the clear: every train reply's count is the constant 1, no loss, no ledger
    messages = read_capture(tmp_path / "capture")
    masked = [m for m in messages if SECAGG_COUNT_KEY in m.metrics and m.direction == "from_partner"]
    assert len(masked) == len(BANKS) * 2
    assert check_anonymous_replies(messages, constant=SECAGG_WEIGHT) == []
    a = plain.scores.sort_values(["partner", "entity_id", "day"])["score"].to_numpy()
    b = secure.scores.sort_values(["partner", "entity_id", "day"])["score"].to_numpy()
    assert secure.params["fl_secure_aggregation"] == "secagg+" and secure.params["fl_proximal_mu"] == 0.1
    assert np.max(np.abs(a - b)) < 1e-3  # SecAgg+ quantises to 2^22 levels over ±16
    assert secure.step_metrics["train_loss.bank"] == pytest.approx(plain.step_metrics["train_loss.bank"], rel=1e-4)
    assert "train_loss.bank_1" not in secure.step_metrics  # per-partner losses stay hidden under SecAgg+


def test_dp_sgd_inside_each_partner_reports_each_partners_epsilon(tmp_path: Path) -> None:
    from fedsim.federation.engine import read_capture
    from fedsim.privacy import PrivacySettings

    ws = workspace()
    privacy = PrivacySettings(target_epsilon=4.0, max_rows_per_entity=4)
    result = get_regime("horizontal").run(context(ws, rounds=2, privacy=privacy, capture_dir=str(tmp_path / "c")))
    epsilons = [result.metrics[f"dp_epsilon.{p}"] for p in BANKS]
    assert all(0 < e <= 4.0 * (1 + 1e-6) for e in epsilons), epsilons
    assert all(result.metrics[f"dp_rounds.{p}"] == 2.0 for p in BANKS)
    assert result.params["dp_mode"] == "target_epsilon" and "dp_not_covered" in result.params
    assert 0 < average_precision(ws, result.scores) <= 1
    # under DP the exact train loss stays with each partner: NaN in every reply, no loss curve logged
    replies = read_capture(tmp_path / "c")
    losses = [m.metrics["metrics/train-loss"] for m in replies if "metrics/train-loss" in m.metrics]
    assert len(losses) == len(BANKS) * 2 and all(math.isnan(v) for v in losses)
    assert not [k for k in result.step_metrics if k.startswith("train_loss")]


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


def test_horizontal_run_is_tracked_like_any_other_run(tmp_path: Path) -> None:
    import mlflow
    import yaml

    from fedsim.runner import run_experiment
    from tests.federation.horizontal_worlds import SPLIT, world_spec

    spec = {
        "name": "hz-sim",
        "world": world_spec(),
        "split": SPLIT,
        "regimes": ["horizontal"],
        "coalitions": [list(BANKS)],
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "negative_rate": 0.2},
        "federation": {"rounds": 2, "strategy": "fedprox", "proximal_mu": 0.05},
        "metrics": {"bootstrap": 20},
    }
    (tmp_path / "hz.yaml").write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    summary = run_experiment(tmp_path / "hz.yaml", tracking_uri=uri, workdir=tmp_path / "work", progress=False)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(summary.run_ids[0])
    assert run.data.params["fl_rounds"] == "2" and run.data.params["fl_strategy"] == "fedprox"
    assert run.data.params["fl_proximal_mu"] == "0.05" and run.data.params["fl_engine"] == "simulation"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss.bank")] == [0, 1]
    assert run.data.tags["fedsim.regime"] == "horizontal" and "ap" in " ".join(run.data.metrics)
