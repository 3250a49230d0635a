"""The README's deployment recipe, run for real on this machine: write-app → export-partner per partner →
flower-superlink + one flower-supernode per partner (the partners' exported folders) → flwr run → collect
each partner's scores → `fedsim deploy evaluate` → one MLflow run, equal to a re-evaluation of those scores
and close to the simulation of the same cell."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from fedsim.cli import app
from tests.test_deploy_evaluate import BANKS, re_evaluated

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower")]


def _experiment(tmp_path: Path, engine: str) -> Path:
    from tests.federation.horizontal_worlds import SPLIT, world_spec

    # the coordinator's world secret: the partners' exports then carry nothing that rebuilds the world
    (tmp_path / "world.secret").write_bytes(b"deployment-recipe-test-secret-0123456789")
    spec = {
        "name": "deploy-recipe",
        "world": {**world_spec(entities=1200), "secret_file": "world.secret"},
        "split": SPLIT,
        "regimes": ["horizontal"],
        "coalitions": [BANKS],
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "negative_rate": 0.2},
        "federation": {"rounds": 2, "engine": engine},
        "metrics": {"bootstrap": 20},
    }
    path = tmp_path / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_readme_recipe_ends_in_the_simulations_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from fedsim.federation.deployment import LocalDeployment
    from fedsim.runner import run_experiment
    from fedsim.tracking import Tracker

    monkeypatch.chdir(tmp_path)
    experiment = _experiment(tmp_path, "simulation")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out_dir = tmp_path / "machines" / "fedsim-out"  # every machine's --out-dir (one machine here)
    # coordinator: write the app (builds the world into .fedsim/worlds/)
    wrote = CliRunner().invoke(app, ["deploy", "write-app", str(experiment), "--out", "app", "--out-dir", str(out_dir)])
    assert wrote.exit_code == 0, wrote.output
    (world,) = (tmp_path / ".fedsim" / "worlds").iterdir()
    # each partner: its own folder, exported from the world with the real command
    for partner in BANKS:
        cmd = [sys.executable, "-m", "fedsim.federation.deployment", "export-partner", "--world", str(world)]
        subprocess.run([*cmd, "--partner", partner, "--out", f"partners/{partner}"], check=True, capture_output=True)
        assert sorted(p.name for p in (tmp_path / "partners" / partner).iterdir()) == [
            "manifest.json",
            "partners",
            "received_reports.parquet",
        ]
    nodes = {p: {"partner": p, "world-dir": str(tmp_path / "partners" / p)} for p in BANKS}
    # superlink --insecure, one supernode per partner, config.toml connection, flwr run app fedsim --stream
    with LocalDeployment(nodes, tmp_path / "flower") as deployment:
        deployment.run(tmp_path / "app", timeout_s=600)
    # collect: each partner's scores folder and the server's outcome, gathered on the coordinator
    for name in [*BANKS, "server"]:
        shutil.copytree(out_dir / name, tmp_path / "collected" / name, ignore=shutil.ignore_patterns("data"))
    evaluated = CliRunner().invoke(
        app, ["deploy", "evaluate", str(experiment), "--scores", "collected", "--tracking-uri", uri]
    )
    assert evaluated.exit_code == 0, evaluated.output
    # the same cell on the simulation engine, in the same store
    simulated = run_experiment(experiment, tracking_uri=uri, workdir=tmp_path / ".fedsim", progress=False)
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("deploy-recipe").experiment_id])  # type: ignore[union-attr]
    by_engine = {r.data.params["fl_engine"]: r for r in runs}
    assert set(by_engine) == {"deployment", "simulation"} and simulated.executed == 1
    deployed, sim = by_engine["deployment"], by_engine["simulation"]
    tracker = Tracker(uri, "deploy-recipe")  # every metric: the headline ones and the tidy table's
    deployed_m, sim_m = tracker.run_metrics(deployed.info.run_id), tracker.run_metrics(sim.info.run_id)
    # the deployment's run is the evaluation of the scores its partners wrote ...
    scores = pd.concat([pd.read_parquet(tmp_path / "collected" / p / "scores_test.parquet") for p in BANKS])
    expected = re_evaluated(experiment, tmp_path / ".fedsim", scores.reset_index(drop=True))
    assert {k: deployed_m[k] for k in expected} == pytest.approx(expected, nan_ok=True)
    # ... with the simulation's params and metric names, and (same seeds, same rounds) close to its results
    same = {k for k in sim.data.params if not k.startswith(("fl_engine", "federation.engine", "config_hash"))}
    assert {k: deployed.data.params.get(k) for k in same - {"git_commit"}} == {
        k: sim.data.params[k] for k in same - {"git_commit"}
    }
    missing = set(sim_m) - set(deployed_m)
    assert missing <= {"fl_seconds.bank", "fl_prepare_seconds.bank"}, missing
    assert {k: v for k, v in deployed_m.items() if k.startswith("train_rows.")} == {
        k: v for k, v in sim_m.items() if k.startswith("train_rows.")
    }
    for name in ("ap", "fl_final_train_loss.bank"):
        assert deployed_m[name] == pytest.approx(sim_m[name], abs=0.02), (
            name,
            deployed_m[name],
            sim_m[name],
        )
