"""`fedsim value --world-seed` (issue 11): the value report per world draw and whether the answer is stable.

A real tiny lattice (the small preset shrunk to 1500 persons × 60 days; bank_1 and the telco; siloed singletons +
the pooled pair; logistic, two training seeds) is run through the runner on world seeds 3 and 4 into one sqlite
MLflow store (≈ 30 s of setup at load ≈ 8 on 2 cores), then read back through the CLI. v(S) is ROC-AUC on the
common test set, so v(∅) = ½ and the game is not all zeros on so small a world (its ED(0) is 0 for every
coalition).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

pytestmark = pytest.mark.xdist_group("test_value_worlds")

SPEC = {
    "name": "value_worlds_test",
    "world": {"preset": "small", "seed": 3, "overrides": {"persons": 1500, "days": 60}},
    "split": {"train_days": 35, "gap_days": 3, "test_days": 22},
    "regimes": ["siloed", "pooled"],
    "coalitions": {"lattice": ["bank_1", "telco"]},
    "models": ["logistic"],
    "seeds": [0, 1],
    "training": {"epochs": 2, "max_epochs": 6, "patience": 2},
    "metrics": {"capacity_scales": [1], "bootstrap": 60},
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["pooled", "siloed"], "min_seeds": 2},
}
WORLD_SEEDS = (3, 4)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """Both worlds run for real; ``alone_4`` is the same experiment (same name, same MLflow experiment) whose own
    world seed is 4, so plain `fedsim value` on it reads world 4 through the single-world path."""
    from fedsim.runner import run_experiment

    tmp = tmp_path_factory.mktemp("value-worlds")
    path = tmp / "value_worlds_test.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    alone_4 = tmp / "value_worlds_test_seed4.yaml"
    alone_4.write_text(yaml.safe_dump({**SPEC, "world": {**SPEC["world"], "seed": 4}}))
    uri = f"sqlite:///{tmp}/mlflow.db"
    for seed in WORLD_SEEDS:
        summary = run_experiment(path, tracking_uri=uri, workdir=tmp / ".fedsim", progress=False, world_seed=seed)
        assert summary.executed == 2 * 3  # bank_1, telco alone + the pooled pair, two training seeds
    return {"path": path, "alone_4": alone_4, "uri": uri, "workdir": tmp / ".fedsim"}


def _value(store: dict[str, Path | str], *args: str, path: Path | str | None = None, columns: int = 200):
    from fedsim.cli import app

    base = ["value", str(path or store["path"]), "--metric", "roc_auc"]
    where = ["--tracking-uri", str(store["uri"]), "--workdir", str(store["workdir"])]
    return CliRunner().invoke(app, [*base, *args, *where], env={"COLUMNS": str(columns)})


@pytest.fixture(scope="module")
def both(store: dict[str, Path | str]) -> dict:
    result = _value(store, "--json", "--world-seed", "3", "--world-seed", "4")
    assert result.exit_code == 0, result.output[-3000:]
    return json.loads(result.stdout)


@pytest.mark.slow
def test_each_world_report_is_what_value_gives_for_that_world_alone(store: dict, both: dict) -> None:
    alone_3 = _value(store, "--json")
    alone_4 = _value(store, "--json", path=store["alone_4"])
    assert alone_3.exit_code == 0 and alone_4.exit_code == 0, (alone_3.output[-2000:], alone_4.output[-2000:])
    worlds = both["worlds"]
    assert [w["world_seed"] for w in worlds] == [3, 4] and worlds[0]["world_hash"] != worlds[1]["world_hash"]
    assert worlds[0]["report"] == json.loads(alone_3.stdout)
    assert worlds[1]["report"] == json.loads(alone_4.stdout)
    assert worlds[0]["report"] != worlds[1]["report"]  # two populations, two games


@pytest.mark.slow
def test_efficiency_per_world_and_the_summary_sets_worlds_side_by_side(both: dict) -> None:
    shapley_of: dict[int, dict[str, dict]] = {}
    for w in both["worlds"]:
        (entry,) = [e for e in w["report"] if e["regime"] == "pooled" and e["fraud_type"] == "all"]
        assert entry["covers"] == "cases × 2 training seeds" and entry["not_run"] == []
        shapley = {r["player"]: r for r in entry["values"] if r["concept"] == "shapley"}
        full = next(r["value"] for r in entry["coalitions"] if r["coalition"] == "bank_1+telco")
        assert sum(r["value"] for r in shapley.values()) == pytest.approx(full - 0.5, abs=1e-9)
        assert abs(full - 0.5) > 0.01  # a real game, not a degenerate one
        shapley_of[w["world_seed"]] = shapley
    (summary,) = [s for s in both["summary"] if s["regime"] == "pooled" and s["fraud_type"] == "all"]
    assert summary["world_seeds"] == [3, 4]
    # each world keeps its own CI: the summary's rows are that world's Shapley rows, not a pooled estimate
    for r in summary["shapley"]:
        own = shapley_of[r["world_seed"]][r["partner"]]
        assert (r["value"], r["lo"], r["hi"]) == (own["value"], own["lo"], own["hi"])
    assert len(summary["shapley"]) == 2 * 2
    best = {p["world_seed"]: p["best"] for p in summary["per_world"]}
    assert summary["best_stable"] is (best[3] == best[4])
    smallest = {p["world_seed"]: p["smallest_near_best"] for p in summary["per_world"]}
    assert summary["smallest_stable"] is (smallest[3] == smallest[4])


@pytest.mark.slow
def test_table_fits_80_columns_and_a_world_without_runs_is_named(store: dict) -> None:
    shown = _value(store, "--world-seed", "3", "--world-seed", "4", columns=80)
    assert shown.exit_code == 0, shown.output[-3000:]
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    words = " ".join(shown.stdout.split())
    assert "world seed 3 (world hash" in words and "world seed 4 (world hash" in words
    assert "Shapley value per world" in words and "stable?" in words

    worlds_before = sorted(Path(store["workdir"], "worlds").iterdir())
    missing = _value(store, "--world-seed", "3", "--world-seed", "9")
    assert missing.exit_code != 0
    text = " ".join(missing.output.split())
    assert "world seed 9" in text and "'value_worlds_test'" in text
    assert f"run `fedsim run {store['path']} --world-seed 9` first" in text
    assert sorted(Path(store["workdir"], "worlds").iterdir()) == worlds_before  # refused before building world 9
