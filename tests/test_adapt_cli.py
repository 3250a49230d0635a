"""`fedsim adapt` on a tiny tracked experiment: a small realistic world with a caller-ID barrier inside the test
window, status_quo and reports run for real (gbt, two training seeds) into a sqlite MLflow store, then read back.

The daily rates the command reports must add up to each regime's logged ED(0) (the same alerts), and the table
must have a row per regime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytestmark = pytest.mark.xdist_group("test_adapt_cli")

BARRIER_DAY = 65
SPEC = {
    "name": "adapt_cli",
    "world": {
        "preset": "small",
        "seed": 2,
        "overrides": {
            "persons": 1500,
            "days": 90,
            "fraud": {"helpdesk": {"multiplier": 480}},
            "barriers": [
                {
                    "name": "caller-ID block",
                    "day": BARRIER_DAY,
                    "fraud_type": "helpdesk",
                    "removes": "caller_id_spoofing",
                    "adapt_share": 0.7,
                    "adapt_delay_days": 3,
                }
            ],
        },
    },
    "split": {"train_days": 50, "gap_days": 5, "test_days": 20},
    "regimes": ["status_quo", "reports"],
    "coalitions": "all",
    "models": ["gbt"],
    "seeds": [0, 1],
    "metrics": {"capacity_scales": [1], "horizons_h": [0], "latencies_h": [0], "interdiction": [1.0], "bootstrap": 30},
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["reports", "status_quo"], "min_seeds": 2},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """(experiment file, tracking URI, workdir) after a real `fedsim run` of SPEC."""
    from fedsim.runner import run_experiment

    tmp = tmp_path_factory.mktemp("adapt-cli")
    path = tmp / "adapt_cli.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    uri = f"sqlite:///{tmp}/mlflow.db"
    summary = run_experiment(path, tracking_uri=uri, workdir=tmp / ".fedsim", progress=False)
    assert summary.executed == 4
    return path, uri, tmp / ".fedsim"


def _invoke(store: tuple[Path, str, Path], *extra: str) -> str:
    from fedsim.cli import app

    path, uri, workdir = store
    result = CliRunner().invoke(app, ["adapt", str(path), "--tracking-uri", uri, "--workdir", str(workdir), *extra])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_report_matches_the_logged_primary_outcome(store: tuple[Path, str, Path]) -> None:
    from fedsim.tracking import Tracker

    report = json.loads(_invoke(store, "--json", "--window", "3"))
    assert report["barrier"] == {"name": "caller-ID block", "day": BARRIER_DAY, "fraud_type": "helpdesk"}
    assert report["settings"]["observed_days"] == [55, 75]
    rows = {(r["regime"], r["fraud_type"]): r for r in report["rows"]}
    assert set(rows) == {(g, t) for g in ("status_quo", "reports") for t in ("all", "helpdesk")}
    runs = Tracker(store[1], "adapt_cli").runs_table("adapt_cli")
    for regime in ("status_quo", "reports"):
        daily = [d for d in report["daily"] if d["regime"] == regime and d["fraud_type"] == "all"]
        cases = np.array([d["cases"] for d in daily], dtype=float)
        rate = np.nan_to_num(np.array([np.nan if d["rate"] is None else d["rate"] for d in daily], dtype=float))
        logged = runs.loc[runs["regime"] == regime, "ed_h0_cal1"].astype(float).mean()
        assert (rate * cases).sum() / cases.sum() == pytest.approx(logged, abs=1e-9)
        r = rows[(regime, "all")]
        assert r["pre_lo"] <= r["pre"] <= r["pre_hi"]
        assert r["n_cases"] == cases.sum()
    gained = rows[("reports", "all")]
    assert gained["gain_post_lo"] <= gained["gain_post"] <= gained["gain_post_hi"]
    assert "gain_post" not in rows[("status_quo", "all")]  # the baseline has no gain over itself


def test_table_prints_a_row_per_regime(store: tuple[Path, str, Path]) -> None:
    out = _invoke(store, "--format", "csv")
    lines = [line for line in out.splitlines() if line.startswith("gbt,")]
    assert sorted({line.split(",")[2] for line in lines}) == ["reports", "status_quo"]
    assert len(lines) == 4  # two regimes × (all, helpdesk)


def test_a_barrier_outside_the_window_is_refused(store: tuple[Path, str, Path]) -> None:
    from fedsim.cli import app

    path, uri, workdir = store
    result = CliRunner().invoke(
        app, ["adapt", str(path), "--tracking-uri", uri, "--workdir", str(workdir), "--barrier-day", "80"]
    )
    assert result.exit_code == 2
    assert "no barrier" in result.output
