"""ε recomputed independently (dp-accounting) from the ledgers real runs logged to MLflow is within 5% of the
logged ε: central DP (pooled), horizontal DP without SecAgg+ and horizontal DP with SecAgg+ (Flower simulation).

Small known-answer world (3 banks), target ε = 1, 2 federated rounds of 1 local epoch; the runs go through
the runner and the tracking store, and the ledgers are read back from MLflow, as a reviewer would.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tests.federation.horizontal_worlds import BANKS, SPLIT, world_spec
from tests.privacy_ledgers import check_ledgers

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower")]

TOLERANCE = 0.05


def _spec(name: str, regime: str, *, secure: bool) -> dict[str, Any]:
    return {
        "name": name,
        "world": world_spec(),
        "split": SPLIT,
        "regimes": [regime],
        "coalitions": [list(BANKS)],
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.05, "negative_rate": 0.2},
        "federation": {"rounds": 2, "secure_aggregation": secure},
        "privacy": {"epsilon": [1.0], "max_rows_per_entity": 4},
        "metrics": {"bootstrap": 1},
    }


def _tracked_runs(tmp_path: Path) -> dict[str, Any]:
    import mlflow

    from fedsim.runner import run_experiment
    from fedsim.tracking import Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    runs = {}
    cells = (("eps-pooled", "pooled", False), ("eps-hz", "horizontal", False), ("eps-hz-secagg", "horizontal", True))
    for name, regime, secure in cells:  # one experiment each: a multi-regime one must declare a contrast
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(_spec(name, regime, secure=secure)))
        summary = run_experiment(tmp_path / f"{name}.yaml", tracking_uri=uri, workdir=tmp_path / "work", progress=False)
        client = mlflow.MlflowClient(tracking_uri=uri)
        for run_id in summary.run_ids:
            run = client.get_run(run_id)
            key = run.data.params["regime"] + ("+secagg" if secure else "")
            # every metric (headline + the tidy table) beside the params: what check_ledgers reads
            runs[key] = SimpleNamespace(metrics=Tracker(uri, name).run_metrics(run_id), params=run.data.params)
    return runs


def test_logged_epsilon_is_recomputed_within_5_percent_for_central_and_horizontal_runs(tmp_path: Path) -> None:
    runs = _tracked_runs(tmp_path)
    assert set(runs) == {"pooled", "horizontal", "horizontal+secagg"}
    for key, data in runs.items():
        checked = check_ledgers(data.metrics, data.params)
        for c in checked:
            print(
                f"{key} {c.ledger.name or '(run)'}: logged ε = {c.ledger.epsilon:.4f}, {c.reference} ε = "
                f"{c.recomputed_epsilon:.4f} ({c.relative_difference:+.2%}); σ = {c.ledger.sigma:.4g}, "
                f"q = {c.ledger.sample_rate:.4g}, steps = {c.ledger.steps}, δ = {c.ledger.delta:.3g}"
            )
            assert c.relative_difference <= TOLERANCE, (key, c)
        if key.startswith("horizontal"):  # one full ledger per bank, with SecAgg+ too
            assert sorted(c.ledger.name for c in checked) == sorted(BANKS), (key, [c.ledger.name for c in checked])
            assert all(c.ledger.steps == 2 * round(1 / c.ledger.sample_rate) for c in checked)  # 2 rounds × 1 epoch


def test_a_ledger_missing_a_field_is_refused() -> None:
    metrics = {"dp_epsilon.bank_1": 1.0, "dp_delta.bank_1": 1e-5, "dp_sigma.bank_1": 1.0, "dp_steps.bank_1": 8}
    with pytest.raises(AssertionError, match="sample_rate"):
        check_ledgers(metrics, {"dp_accountant": "prv"})


def test_recomputation_disagrees_with_a_wrong_epsilon() -> None:
    # the tolerance can fail: a ledger whose ε was logged 20% low is more than 5% off the recomputed ε
    metrics = {"dp_delta": 1e-5, "dp_sigma": 1.1, "dp_sample_rate": 0.01, "dp_steps": 1000}
    true = check_ledgers({**metrics, "dp_epsilon": 1.0}, {"dp_accountant": "rdp"})[0].recomputed_epsilon
    wrong = check_ledgers({**metrics, "dp_epsilon": 0.8 * true}, {"dp_accountant": "rdp"})[0]
    right = check_ledgers({**metrics, "dp_epsilon": true}, {"dp_accountant": "rdp"})[0]
    assert wrong.relative_difference > TOLERANCE and right.relative_difference < 1e-9
