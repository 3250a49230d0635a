"""The report's test experiment, run once for real and shared by the report's tests (gather, render, notebooks).

``tracked_experiment``: a small realistic world (the ``small`` preset at 1,500 persons × 90 days with ONE bank, so
the partners are bank_1, telco and marketplace), 50 train days, a 5-day gap, 20 test days; regimes rules,
status_quo, siloed, reports and pooled over the coalition lattice of bank_1 and telco (silos, the pair), logistic,
2 training seeds, ε ∈ {∞, 4} (every DP-capable cell twice): 22 runs through :func:`fedsim.runner.run_experiment`
into a sqlite MLflow store (≈ 45 s on 2 shared cores). No summary run is written (``run_experiment`` alone
never writes one); a test that needs one writes it. Primary contrast: pooled − status_quo, ED(0) at the
calibrated capacity.

``tracked_experiment_with_problems``: a copy of that store in which one cell's run is deleted and another's is
marked FAILED (through the MLflow client of :class:`fedsim.tracking.Tracker`); ``broken_cells`` names them.

Both are (experiment file, tracking URI, workdir); treat them as read-only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

EXPERIMENT = "report_gather"
SPEC = {
    "name": EXPERIMENT,
    "description": "Does pooling bank and telco data catch fraud earlier than each partner alone? "
    "A small world with one bank, a telco and a marketplace; rules, status quo, reports and pooled.",
    "world": {"preset": "small", "seed": 2, "overrides": {"persons": 1500, "days": 90, "partners": {"banks": 1}}},
    "split": {"train_days": 50, "gap_days": 5, "test_days": 20},
    "regimes": ["rules", "status_quo", "siloed", "reports", "pooled"],
    "coalitions": {"lattice": ["bank_1", "telco"]},
    "models": ["logistic"],
    "seeds": [0, 1],
    "privacy": {"epsilon": [float("inf"), 4.0]},
    "training": {"epochs": 2, "max_epochs": 20, "patience": 2},
    "metrics": {
        "capacity_scales": [1],
        "horizons_h": [0, 24],
        "latencies_h": [0],
        "interdiction": [1.0],
        "bootstrap": 100,
    },
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["pooled", "status_quo"], "min_seeds": 2},
}
DELETED = ("reports", "4", "1")
"""(regime, ε, seed) of the cell whose run the problem variant deletes; FAILED: the next one."""
FAILED = ("siloed", "4", "0")


@pytest.fixture(scope="session")
def tracked_experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """The report's test experiment, run for real (module notes): (experiment file, tracking URI, workdir)."""
    from fedsim.runner import run_experiment

    tmp = tmp_path_factory.mktemp("report-experiment")
    path = tmp / f"{EXPERIMENT}.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    uri = f"sqlite:///{tmp}/mlflow.db"
    summary = run_experiment(path, tracking_uri=uri, workdir=tmp / ".fedsim", progress=False)
    assert summary.executed == 22, summary
    return path, uri, tmp / ".fedsim"


@pytest.fixture(scope="session")
def tracked_experiment_with_problems(
    tracked_experiment: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, Path]:
    """A copy of the store with one run deleted (``DELETED``) and one marked FAILED (``FAILED``); the artifacts
    stay where the original store keeps them (the copied database points at them)."""
    from fedsim.tracking import Tracker

    path, uri, workdir = tracked_experiment
    tmp = tmp_path_factory.mktemp("report-problems")
    shutil.copy(uri.removeprefix("sqlite:///"), tmp / "mlflow.db")
    copy_uri = f"sqlite:///{tmp}/mlflow.db"
    tracker = Tracker(copy_uri, EXPERIMENT)
    runs = tracker.runs_table(EXPERIMENT)
    for (regime, eps, seed), act in ((DELETED, "delete"), (FAILED, "fail")):
        hit = runs[(runs["regime"] == regime) & (runs["epsilon"] == eps) & (runs["seed"] == seed)]
        run_id = str(hit.sort_values("coalition")["run_id"].iloc[0])
        if act == "delete":
            tracker.client.delete_run(run_id)
        else:
            tracker.client.set_terminated(run_id, status="FAILED")
    return path, copy_uri, workdir
