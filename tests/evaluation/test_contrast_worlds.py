"""Runs log the calibrated capacity; `fedsim compare` combines several worlds × training seeds (issue 9).

A real small experiment (no mocks): two world seeds × two training seeds × status_quo, reports and pooled,
run through the runner into a sqlite MLflow store, then compared through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

# the module's worlds are built once: keep its tests in one xdist worker
pytestmark = pytest.mark.xdist_group("test_contrast_worlds")

SPEC = {
    "name": "worlds_test",
    "world": {"preset": "small", "seed": 3, "overrides": {"persons": 2500, "days": 60}},
    "split": {"train_days": 35, "gap_days": 3, "test_days": 22},
    "regimes": ["status_quo", "reports", "pooled"],
    "coalitions": "all",
    "models": ["logistic"],
    "seeds": [0, 1],
    "training": {"epochs": 2, "max_epochs": 6, "patience": 2},
    "metrics": {"capacity_scales": [1, 4], "bootstrap": 60},
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["pooled", "status_quo"]},
}
WORLD_SEEDS = (3, 4)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    from fedsim.runner import run_experiment

    tmp = tmp_path_factory.mktemp("worlds")
    path = tmp / "worlds_test.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    uri = f"sqlite:///{tmp}/mlflow.db"
    for seed in WORLD_SEEDS:
        run_experiment(path, tracking_uri=uri, workdir=tmp / ".fedsim", progress=False, world_seed=seed)
    return path, uri, tmp / ".fedsim"


def _runs(uri: str) -> pd.DataFrame:
    from fedsim.tracking import Tracker

    return Tracker(uri, "worlds_test").runs_table("worlds_test")


@pytest.mark.slow
def test_runs_log_the_calibrated_capacity_and_recompute(study: tuple[Path, str, Path]) -> None:
    from mlflow.tracking import MlflowClient

    from fedsim.evaluation.api import evaluate_calibrated
    from fedsim.experiment import load_experiment
    from fedsim.runner import Workspace, load_or_generate_world, with_world_seed

    path, uri, workdir = study
    runs = _runs(uri)
    # 3 regimes × 2 training seeds on each of 2 worlds, one experiment, told apart by world hash
    assert len(runs) == 12 and runs["world_hash"].nunique() == 2
    assert "ed_h0_cal1" in runs and "ed_h0_cal4_hi" in runs and not [c for c in runs if "_k0." in c]
    assert runs["capacity"].str.startswith("calibrated (bank 20, telco 5, marketplace 10 alerts/day").all()
    # the logged value is the calibrated evaluation of the logged scores (world seed 4's workspace)
    spec = with_world_seed(load_experiment(path), 4)
    world = load_or_generate_world(spec, workdir / "worlds")
    ws = Workspace.build(spec, world, workdir / "artifacts")
    run = runs[(runs["world_hash"] == world.content_hash) & (runs["regime"] == "pooled")].iloc[0]
    scores = pd.read_parquet(MlflowClient(uri).download_artifacts(run["run_id"], "scores/scores.parquet", str(workdir)))
    again = evaluate_calibrated(
        scores,
        ws.truth,
        capacity=ws.capacity(),
        scales=[1, 4],
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=int(run["seed"]),
        n_boot=60,
    ).flat()
    for name in ("ed_h0_cal1", "prevented_eur_d0_r1.0_cal4", "helpdesk.ed_h0_cal1_lo"):
        assert again[name] == pytest.approx(float(run[name]), rel=1e-9), name
    assert float(run["capacity_reference_k"]) == pytest.approx(ws.capacity().reference)


@pytest.mark.slow
def test_compare_combines_worlds_deterministically_with_decomposition_in_json(study: tuple[Path, str, Path]) -> None:
    from fedsim.cli import app

    path, uri, workdir = study
    args = ["compare", str(path), "--tracking-uri", uri, "--workdir", str(workdir), "--json"]
    worlds = [a for s in WORLD_SEEDS for a in ("--world-seed", str(s))]

    both = CliRunner().invoke(app, [*args, *worlds])
    again = CliRunner().invoke(app, [*args, *worlds])
    one = CliRunner().invoke(app, [*args, "--world-seed", "3"])

    assert both.exit_code == 0, both.output[-3000:]
    payload = json.loads(both.stdout)
    rows = pd.DataFrame(payload["contrast"])
    assert set(rows["covers"]) == {"cases × 2 worlds × 2 training seeds"} and set(rows["n_worlds"]) == {2}
    assert payload["warnings"] and "only 2 training seed" in payload["warnings"][0]
    assert "Monte-Carlo error" in payload["mc_error"]
    # the primary contrast reappears as the decomposition's last step with the very same CI
    steps = pd.DataFrame(payload["decomposition"])
    assert set(steps["step"]) == {"sharing labels (fraud reports)", "sharing data on top of labels", "pooled in total"}
    key = ["metric", "fraud_type"]
    total = steps[steps["step"] == "pooled in total"].set_index(key)[["diff", "lo", "hi"]]
    assert total.sort_index().equals(rows.set_index(key)[["diff", "lo", "hi"]].sort_index())
    curve = pd.DataFrame(payload["capacity_curve"])
    assert {0.25, 1.0, 4.0} <= set(curve["scale"]) and curve["hi"].ge(curve["lo"]).all()
    # the same call gives the same CIs; one world alone is another estimate
    assert json.loads(again.stdout)["contrast"] == payload["contrast"]
    single = pd.DataFrame(json.loads(one.stdout)["contrast"])
    assert set(single["covers"]) == {"cases × 2 training seeds"}
    assert not single.set_index(key)["diff"].sort_index().equals(rows.set_index(key)["diff"].sort_index())


@pytest.mark.slow
def test_runs_and_compare_name_the_capacity_worlds_and_seed_warning(study: tuple[Path, str, Path]) -> None:
    from fedsim.cli import app

    path, uri, workdir = study

    runs = CliRunner().invoke(app, ["runs", "worlds_test", "--tracking-uri", uri, "--json"])
    shown = CliRunner(env={"COLUMNS": "250"}).invoke(
        app,
        [
            "compare",
            str(path),
            "--tracking-uri",
            uri,
            "--workdir",
            str(workdir),
            "--world-seed",
            "3",
            "--world-seed",
            "4",
        ],
    )

    assert runs.exit_code == 0, runs.output[-3000:]
    over = pd.DataFrame(json.loads(runs.stdout)["over_seeds"])
    assert over[["ed_h0_cal1", "prevented_eur_d0_r1.0_cal1", "ap"]].notna().all().all() and len(over) == 3
    assert shown.exit_code == 0, shown.output[-3000:]
    text = " ".join(shown.stdout.split())
    assert "cases × 2 worlds × 2 training seeds" in text and "world seed(s) 3,4" in text
    assert "calibrated (bank 20, telco 5, marketplace 10 alerts/day per 100k customers × each world's" in text
    warnings = " ".join(shown.output.split())  # warnings go to stderr (logs and warnings apart from tables)
    assert "WARNING: only 2 training seed(s) per regime" in warnings and "decomposition" in text
