"""`fedsim run` / `fedsim runs` through the real CLI, world generator, regimes, evaluation and MLflow store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fedsim.tracking import Tracker, TrackingError

FEDSIM = str(Path(sys.executable).with_name("fedsim"))

SPEC = {
    "name": "cli_test",
    "world": {"preset": "small", "seed": 3, "overrides": {"persons": 2500, "days": 60}},
    "split": {"train_days": 35, "gap_days": 3, "test_days": 22},
    "regimes": ["status_quo", "watchlist", "pooled"],
    "coalitions": "all",
    "models": ["logistic"],
    "seeds": [0],
    "training": {"epochs": 2},
    "metrics": {"bootstrap": 50},
    "primary": {"metric": "ed_h0", "contrast": ["pooled", "status_quo"]},
}


def _write(tmp: Path, spec: dict) -> Path:  # type: ignore[type-arg]
    path = tmp / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _fedsim(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FEDSIM, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"}
    )


def _finished(uri: str, name: str) -> pd.DataFrame:
    from fedsim.tracking import Tracker

    return Tracker(uri, name).runs_table(name)


@pytest.mark.slow
def test_run_then_runs_and_every_metric_recomputes_from_the_logged_scores(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from fedsim.evaluation.alerts import calibrated_capacity
    from fedsim.evaluation.api import evaluate_calibrated
    from synthetic.world import read_world, to_pandas

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = _write(tmp_path, SPEC)
    done = _fedsim("run", str(exp), "--tracking-uri", uri, "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = _fedsim("runs", "cli_test", "--tracking-uri", uri, "--json", cwd=tmp_path)
    rows = json.loads(out.stdout)["runs"]
    assert sorted(r["regime"] for r in rows) == ["pooled", "status_quo", "watchlist"]
    assert all(r["ed_h0_cal1_lo"] <= r["ed_h0_cal1"] <= r["ed_h0_cal1_hi"] for r in rows)

    # Recompute from the artifact alone: same world (from its cache), the logged scores, the logged settings.
    runs = _finished(uri, "cli_test")
    run = runs[runs["regime"] == "pooled"].iloc[0]
    client = MlflowClient(uri)
    scores = pd.read_parquet(client.download_artifacts(run["run_id"], "scores/scores.parquet", str(tmp_path)))
    world = read_world(next((tmp_path / ".fedsim" / "worlds").iterdir()))
    truth = {k: to_pandas(world.truth[k]) for k in ("cases", "money_outs", "case_entities")}
    sizes = {
        p: world.partners[p].tables[t].num_rows
        for p, t in [
            (p, {"bank": "customers", "telco": "subscribers", "marketplace": "users"}[world.partners[p].kind])
            for p in world.partners
        ]
    }
    test = (38 * 86_400, 60 * 86_400)
    # the calibrated capacity profile, rebuilt from the world alone (no fedsim state)
    capacity = calibrated_capacity(
        truth["cases"]["fraud_type"].value_counts().to_dict(),
        {t: c.multiplier for t, c in world.config.fraud.items()},
        {p: v.kind for p, v in world.partners.items()},
    )
    assert float(run["capacity_reference_k"]) == pytest.approx(capacity.reference, rel=1e-12)
    again = evaluate_calibrated(
        scores, truth, capacity=capacity, scales=[1.0], partner_sizes=sizes, test_window_ts=test, seed=0, n_boot=50
    )
    for name in ("ed_h0_cal1", "prevented_eur_d0_r1.0_cal1", "ap", "helpdesk.ed_h0_cal1"):
        assert again.flat()[name] == pytest.approx(float(run[name]), rel=1e-9), name
    assert run["world_hash"] == world.content_hash
    assert len(run["git_commit"]) >= 7 and run["config_hash"]


def _first_finished_runs(proc: subprocess.Popen[bytes], tracker: Tracker, timeout: float) -> list[str]:
    """Run ids of the FINISHED runs as soon as there is one, polled while ``proc`` runs.

    Returns what the store holds once ``proc`` has exited (read after the exit was seen, so runs finished
    just before it count), and ``[]`` at the timeout."""
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = proc.poll() is not None
        try:
            finished = list(tracker.runs_table()["run_id"])
        except (TrackingError, MlflowException):  # no experiment yet, or the store is busy with a write
            finished = []
        if finished or exited:
            return finished
        time.sleep(0.2)
    return []


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_duplicating_runs(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = _write(tmp_path, {**SPEC, "name": "resume_test"})
    # Create (migrate) the store before the child starts. MLflow migrates an empty sqlite store on first open,
    # and two processes that first open it at the same time both migrate it: one fails ("table runs already
    # exists"). The poller used to be the other process, so the child could crash before its first run.
    poller = Tracker(uri, "resume_test")
    poller.client.search_experiments()
    log = tmp_path / "killed_run.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [FEDSIM, "run", str(exp), "--tracking-uri", uri, "--quiet"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        first = _first_finished_runs(proc, poller, timeout=600)
    alive = proc.poll() is None
    if not alive:
        tail = log.read_text(errors="replace")[-3000:]
        assert proc.returncode == 0, f"fedsim run failed before it could be killed:\n{tail}"
    assert first, "no run finished within 600 s" if alive else "fedsim run exited without a finished run"
    # The kill must land mid-grid: some runs finished, the others not started or running.
    assert alive and len(first) < 3, f"the grid ended before the kill ({len(first)} runs finished)"
    os.killpg(proc.pid, signal.SIGKILL)  # mid-grid, no chance to clean up
    proc.wait()
    done = _fedsim("run", str(exp), "--tracking-uri", uri, "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _finished(uri, "resume_test")
    assert len(runs) == 3 and runs["config_hash"].is_unique
    assert set(first) <= set(runs["run_id"])  # the runs finished before the kill were kept, not redone


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"regimes": ["status_quo", "telepathy"]}, "regimes[1]"),
        ({"coalitions": [[]]}, "coalitions[0]"),
        ({"coalitions": [["bank_1", "bank_9"]]}, "bank_9"),
        ({"seeds": [-1]}, "seeds[0]"),
    ],
)
def test_bad_experiment_fails_before_any_work(tmp_path: Path, change: dict, field: str) -> None:  # type: ignore[type-arg]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = _write(tmp_path, {**SPEC, **change, "name": "bad"})
    done = _fedsim("run", str(exp), "--tracking-uri", uri, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert field in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / ".fedsim" / "worlds").exists()  # no world was built
    assert not (tmp_path / "mlflow.db").exists()  # no MLflow run was opened


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_metrics_in_fresh_processes(tmp_path: Path) -> None:
    """Reproducible end to end: two processes (different PYTHONHASHSEED, separate stores and caches)."""
    spec = {
        **SPEC,
        "name": "repro",
        "regimes": ["siloed", "pooled"],
        "coalitions": [["bank_1", "telco"]],
        "primary": {"metric": "ed_h0", "contrast": ["pooled", "siloed"]},
    }
    exp = _write(tmp_path, spec)
    metrics = []
    for i, hashseed in enumerate(("1", "2")):
        cwd = tmp_path / f"p{i}"
        cwd.mkdir()
        uri = f"sqlite:///{cwd}/mlflow.db"
        done = subprocess.run(
            [FEDSIM, "run", str(exp), "--tracking-uri", uri, "--quiet"],
            cwd=cwd,
            text=True,
            capture_output=True,
            timeout=600,
            env={**os.environ, "PYTHONHASHSEED": hashseed},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs = _finished(uri, "repro").set_index("run_name").sort_index()
        metrics.append(runs[[c for c in runs.columns if c.startswith(("ed_", "prevented_", "ap"))]])
        worlds = list((cwd / ".fedsim" / "worlds").iterdir())
        metrics[-1]["world"] = (worlds[0] / "manifest.json").read_text().split('"content_hash": "')[1][:64]
    pd.testing.assert_frame_equal(metrics[0], metrics[1])
