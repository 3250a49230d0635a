"""Issue 11's known-answer check of `fedsim value`: Shapley values with CIs against the closed form.

A known-answer world with ONE bank (it holds everyone, as the telco, the marketplace and the placebo do), so
every coalition scores every person and day: the entity-day ROC-AUC of a coalition is then measured on the
common test set, and its Bayes-optimal value is :func:`synthetic.known_answer.coalition_optimal_auc` (the
primary outcomes ED and € have no closed form, so v(S) here is ROC-AUC, v(∅) = ½). The whole lattice of the
4 partners is run for real (siloed singletons + pooled coalitions, logistic, three training seeds) into a sqlite
MLflow store (≈ 1 min of CPU for the runs, 20 s for the value report), then `fedsim value --json --metric roc_auc`
reads the runs back.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from synthetic.config import WorldConfig

pytestmark = pytest.mark.xdist_group("test_value_known_answer")

PLAYERS = ("bank_1", "telco", "marketplace", "placebo")
SPEC = {
    "name": "value_known_answer",
    "world": {
        "preset": "known-answer",
        "seed": 5,
        "overrides": {"known_answer": {"entities": 4000, "days": 16, "prevalence": 0.1, "bank_shifts": [1.0]}},
    },
    "split": {"train_days": 8, "gap_days": 0, "test_days": 8},
    "regimes": ["siloed", "pooled"],
    "coalitions": {"lattice": list(PLAYERS)},
    "models": ["logistic"],
    "seeds": [0, 1, 2],
    # converged (early stopping well before max_epochs): an unconverged model's seed noise would blur the game
    "training": {"epochs": 2, "max_epochs": 60, "patience": 3, "learning_rate": 0.05},
    "metrics": {"capacity_scales": [1], "bootstrap": 200},
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["pooled", "siloed"], "min_seeds": 3},
}


def closed_form_shapley(config: WorldConfig) -> dict[str, float]:
    """Exact Shapley values of the closed-form game v(S) = coalition_optimal_auc(S), v(∅) = ½."""
    from math import factorial

    from synthetic.known_answer import coalition_optimal_auc

    def v(s: tuple[str, ...]) -> float:
        return 0.5 if not s else coalition_optimal_auc(config, list(s), population="all")

    n = len(PLAYERS)
    out = {}
    for p in PLAYERS:
        others = [q for q in PLAYERS if q != p]
        out[p] = sum(
            factorial(k) * factorial(n - k - 1) / factorial(n) * (v(tuple(sorted((*s, p)))) - v(tuple(sorted(s))))
            for k in range(n)
            for s in combinations(others, k)
        )
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """The lattice run for real: (experiment file, tracking URI, workdir)."""
    from fedsim.runner import run_experiment

    tmp = tmp_path_factory.mktemp("value-ka")
    path = tmp / "value_known_answer.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    uri = f"sqlite:///{tmp}/mlflow.db"
    summary = run_experiment(path, tracking_uri=uri, workdir=tmp / ".fedsim", progress=False)
    assert summary.executed == 3 * (2 ** len(PLAYERS) - 1)  # 4 silos + 11 pooled coalitions, 3 seeds each
    return path, uri, tmp / ".fedsim"


@pytest.fixture(scope="module")
def report(store: tuple[Path, str, Path]) -> tuple[list[dict], WorldConfig]:
    from fedsim.cli import app
    from fedsim.experiment import load_experiment

    path, uri, workdir = store
    result = CliRunner().invoke(
        app,
        ["value", str(path), "--json", "--metric", "roc_auc", "--tracking-uri", uri, "--workdir", str(workdir)],
    )
    assert result.exit_code == 0, result.output
    config = load_experiment(Path(path)).world.world_config()
    return json.loads(result.stdout), config


def _entry(report: list[dict]) -> dict:
    (entry,) = [e for e in report if e["regime"] == "pooled" and e["fraud_type"] == "all"]
    return entry


def _shapley(entry: dict) -> dict[str, dict]:
    return {r["player"]: r for r in entry["values"] if r["concept"] == "shapley"}


@pytest.mark.slow
def test_shapley_cis_cover_the_closed_form_values(report: tuple[list[dict], WorldConfig]) -> None:
    payload, config = report
    entry = _entry(payload)
    assert entry["metric"] == "roc_auc" and entry["seeds"] == ["0", "1", "2"] and entry["not_run"] == []
    truth = closed_form_shapley(config)
    measured = _shapley(entry)
    for p in PLAYERS:
        r = measured[p]
        assert r["lo"] <= truth[p] <= r["hi"], (p, truth[p], r)
    # the informative partners are told apart from nothing, in the order of their shifts
    assert measured["bank_1"]["lo"] > 0 and measured["telco"]["lo"] > 0 and measured["marketplace"]["lo"] > 0
    assert measured["bank_1"]["value"] > measured["telco"]["value"] > measured["marketplace"]["value"]


@pytest.mark.slow
def test_efficiency_exactly_and_the_placebo_is_worth_nothing(report: tuple[list[dict], WorldConfig]) -> None:
    payload, _ = report
    entry = _entry(payload)
    measured = _shapley(entry)
    full = next(r for r in entry["coalitions"] if r["coalition"] == "+".join(PLAYERS))
    assert sum(r["value"] for r in measured.values()) == pytest.approx(full["value"] - 0.5, abs=1e-9)
    placebo = measured["placebo"]
    assert placebo["lo"] <= 0.0 <= placebo["hi"]
    assert abs(placebo["value"]) < 0.02


@pytest.mark.slow
def test_smallest_near_best_coalition_and_flags(report: tuple[list[dict], WorldConfig]) -> None:
    payload, config = report
    from synthetic.known_answer import coalition_optimal_auc

    entry = _entry(payload)
    best = entry["best"]
    # the placebo adds nothing, so the best coalition's near-twin without it is as good: the smallest near-best
    # coalition never needs the placebo, and holds the strongest partner
    assert "placebo" not in best["smallest_near_best"].split("+")
    assert "bank_1" in best["smallest_near_best"].split("+")
    assert best["shortfall_lo"] <= 0.0
    gains = {(r["coalition"], r["added"]): r for r in entry["gains"]}
    g = gains[("bank_1+telco", "marketplace")]
    exact = coalition_optimal_auc(config, ["bank_1", "telco", "marketplace"]) - coalition_optimal_auc(
        config, ["bank_1", "telco"]
    )
    assert g["lo"] <= exact <= g["hi"]
    assert entry["waterfall"][0]["step"] == "best silo: bank_1"
    # the steps add up from v(∅) = ½ (no scores) to the last coalition of the path
    end = next(r["value"] for r in entry["coalitions"] if r["coalition"] == entry["waterfall"][-1]["coalition"])
    assert np.isclose(0.5 + sum(r["value"] for r in entry["waterfall"]), end)
    assert entry["flags"]["diminishing_returns"] is True  # Φ(√(Σd²)/√2) is concave in the partners added


@pytest.mark.slow
def test_value_table_names_the_coalitions_and_every_partner(store: tuple[Path, str, Path]) -> None:
    from fedsim.cli import app

    path, uri, workdir = store
    args = ["value", str(path), "--metric", "roc_auc", "--tracking-uri", uri, "--workdir", str(workdir)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "most effective coalition: bank_1+telco+marketplace" in out
    assert "smallest within CI of it:" in out and "waterfall from the best silo" in out
    assert all(f"{p} " in out for p in PLAYERS) and "cases × 3 training seeds" in out
