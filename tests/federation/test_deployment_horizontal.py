"""Horizontal FL on Flower's deployment engine: a real SuperLink and one SuperNode process per bank on
localhost, driven by the experiment runner, ending in the same kind of MLflow run as the simulation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.federation.horizontal_worlds import SPLIT, world_spec

if TYPE_CHECKING:
    from fedsim.runner import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower")]


def secret_workspace(tmp_path: Path) -> Workspace:
    """The horizontal tests' known-answer world (:func:`world_spec`), generated with a secret."""
    from fedsim.experiment import parse_experiment
    from fedsim.runner import Workspace
    from synthetic.world import WorldSecret, generate

    spec = parse_experiment(
        {
            "name": "hz",
            "world": world_spec(),
            "split": SPLIT,
            "regimes": ["horizontal"],
            "coalitions": "all",
            "models": ["logistic"],
            "seeds": [0],
        }
    )
    world = generate(spec.world.world_config(), spec.world.seed, secret=WorldSecret(b"hz-secret-" * 4))
    return Workspace.build(spec, world, tmp_path / "artifacts")


def test_a_dp_run_on_the_deployment_engine_is_tracked_with_rounds_strategy_and_each_partners_epsilon(
    tmp_path: Path,
) -> None:
    """One deployment-engine run through the runner (SuperLink + SuperNodes from the written app) checks both the
    tracking (rounds, strategy, per-round loss, evaluation) and DP-SGD inside each partner (ε within target):
    two separate deployment runs cost ~70 s each on 2 cores."""
    import mlflow
    import yaml

    from fedsim.runner import run_experiment
    from fedsim.tracking import Tracker

    # prepare: two banks, one round, deployment engine, DP-SGD at target ε = 4, a world with a secret (the engine
    # exports partner folders)
    (tmp_path / "world.secret").write_bytes(b"horizontal-deployment-test-secret-0123456789")
    spec = {
        "name": "hz-deploy",
        "world": {**world_spec(entities=1200), "secret_file": "world.secret"},
        "split": SPLIT,
        "regimes": ["horizontal"],
        "coalitions": [["bank_1", "bank_2"]],
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "negative_rate": 0.2},
        "federation": {"rounds": 1, "engine": "deployment"},
        "privacy": {"epsilon": [4.0], "max_rows_per_entity": 4},
        "metrics": {"bootstrap": 20},
    }
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # execute
    summary = run_experiment(tmp_path / "deploy.yaml", tracking_uri=uri, workdir=tmp_path / "work", progress=False)
    # assert: one finished run with the federation settings, a per-round loss and the evaluation metrics
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(summary.run_ids[0])
    assert run.info.status == "FINISHED"
    assert run.data.params["fl_engine"] == "deployment" and run.data.params["fl_rounds"] == "1"
    assert run.data.params["fl_strategy"] == "fedavg" and run.data.params["fl_dropouts"] == "none"
    metrics = Tracker(uri, spec["name"]).run_metrics(run.info.run_id)  # headline + the tidy metric table
    assert metrics["train_rows.bank_1"] > 0 and "ap" in metrics
    # ... and every partner trained with DP and spent an ε within the target
    epsilons = [metrics[f"dp_epsilon.{bank}"] for bank in ("bank_1", "bank_2")]
    assert all(0 < e <= 4.0 * (1 + 1e-6) for e in epsilons), epsilons


def test_the_deployment_engine_refuses_a_world_without_a_secret(tmp_path: Path) -> None:
    from fedsim.errors import FedsimError
    from fedsim.federation.horizontal import HorizontalSettings, run_horizontal
    from tests.federation.horizontal_worlds import context, workspace

    ctx = context(workspace(), ("bank_1", "bank_2"), rounds=1, engine="deployment")
    with pytest.raises(FedsimError, match="world.secret_file"):
        run_horizontal(
            ctx, ["bank_1", "bank_2"], HorizontalSettings.from_context(ctx), engine="deployment", work_dir=tmp_path
        )
    assert not (tmp_path / "out").exists()  # refused before any process started


def test_local_deployment_stops_every_process_it_started(tmp_path: Path) -> None:
    from fedsim.federation.deployment import LocalDeployment

    with LocalDeployment({"a": {"partner": "a", "world-dir": str(tmp_path)}}, tmp_path / "flower") as dep:
        pids = [p.pid for p in dep.processes.values()]
        assert len(pids) == 2 and all(p.poll() is None for p in dep.processes.values())
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
