"""The dry-run wall-time estimate (fedsim.experiment.cost): sums of measured per-cell costs read from a real sqlite
MLflow store whose runs have known start and end times, the nearest-coalition fallback, the built-in table when
the store holds nothing, and the estimate in `fedsim run --dry-run`'s output."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fedsim.cli import app
from fedsim.experiment import RunSpec, expand, parse_experiment
from fedsim.experiment.cost import (
    COALITION_EXPONENT,
    SIZE_EXPONENT,
    CostKey,
    cell_cost,
    estimate_grid,
    measured_costs,
    person_days,
    table_cost,
    world_seconds,
)
from fedsim.tracking import Tracker, cell_params

FULL = ["bank_1", "bank_2", "bank_3", "telco", "marketplace"]
EXPERIMENT: dict[str, Any] = {
    "name": "cost_grid",
    "world": {"preset": "small", "seed": 3, "overrides": {"persons": 1000, "days": 60}},
    "split": {"train_days": 30, "gap_days": 5, "test_days": 20},
    "regimes": ["status_quo", "siloed", "pooled"],
    "coalitions": [FULL],
    "models": ["logistic"],
    "seeds": [0, 1],
    "primary": {"metric": "ed_h0", "contrast": ["pooled", "status_quo"], "min_seeds": 2},
}
T0 = 1_700_000_000_000  # ms; every synthetic run starts at a known time and lasts a known number of seconds


def _cells(spec_dict: Mapping[str, Any]) -> list[RunSpec]:
    spec = parse_experiment(spec_dict)
    return expand(spec, FULL, kinds={p: p.split("_")[0] for p in FULL})


def _track(tracker: Tracker, cell: RunSpec, seconds: float, start: int) -> None:
    """A finished run of ``cell`` lasting exactly ``seconds`` (the real store, its real params)."""
    client = tracker.client
    run = client.create_run(tracker.experiment_id, start_time=start, run_name=cell.run_name)
    tracker._active = run.info.run_id
    tracker.log_params(cell_params(cell))
    tracker._active = None
    client.set_terminated(run.info.run_id, status="FINISHED", end_time=start + int(seconds * 1000))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """status_quo 30 s; siloed 4 s (bank_1) and 6 s (telco); pooled on the full chain 10 s and 20 s;
    pooled on bank_1+telco 8 s; one unfinished run that must not count."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('cost') / 'mlflow.db'}"
    tracker = Tracker(uri, "measured")
    cells = {(c.regime, c.coalition): c for c in _cells(EXPERIMENT) if c.seed == 0}
    pair = _cells({**EXPERIMENT, "regimes": ["pooled"], "coalitions": [["bank_1", "telco"]], "primary": None})[0]
    full = tuple(sorted(FULL))
    plan = [
        (cells[("status_quo", full)], 30.0),
        (cells[("siloed", ("bank_1",))], 4.0),
        (cells[("siloed", ("telco",))], 6.0),
        (cells[("pooled", full)], 10.0),
        (cells[("pooled", full)], 20.0),
        (pair, 8.0),
    ]
    for i, (cell, seconds) in enumerate(plan):
        _track(tracker, cell, seconds, T0 + i * 100_000)
    unfinished = tracker.client.create_run(tracker.experiment_id, start_time=T0)
    tracker._active = unfinished.info.run_id
    tracker.log_params(cell_params(cells[("status_quo", full)]))
    tracker._active = None
    return uri


def test_measured_costs_are_keyed_by_regime_model_size_dp_and_world(store: str) -> None:
    pd_ = person_days(parse_experiment(EXPERIMENT).world)
    assert pd_ == 1000 * 60
    got = measured_costs(store)
    assert got[CostKey("status_quo", "logistic", 5, False, pd_)] == [30.0]  # the unfinished run is not counted
    assert sorted(got[CostKey("siloed", "logistic", 1, False, pd_)]) == [4.0, 6.0]
    assert sorted(got[CostKey("pooled", "logistic", 5, False, pd_)]) == [10.0, 20.0]
    assert got[CostKey("pooled", "logistic", 2, False, pd_)] == [8.0]


def test_grid_estimate_is_the_hand_computed_sum(store: str) -> None:
    cells = _cells(EXPERIMENT)  # 2 status_quo, 10 siloed (5 partners × 2 seeds), 2 pooled
    pd_ = person_days(parse_experiment(EXPERIMENT).world)
    est = estimate_grid(cells, measured_costs(store), world_person_days=pd_, world_cached=True)
    # status_quo 2 × 30; siloed 10 × mean(4, 6) = 5; pooled 2 × mean(10, 20) = 15
    assert est.total == pytest.approx(2 * 30 + 10 * 5 + 2 * 15)
    assert est.lo == pytest.approx(2 * 30 + 10 * 4 + 2 * 10)
    assert est.hi == pytest.approx(2 * 30 + 10 * 6 + 2 * 20)
    assert est.per_regime["siloed"][0] == pytest.approx(50.0) and est.per_regime["siloed"][3] == 10
    assert est.sources == {"exact": 14}
    assert est.measured_runs == 6
    two = estimate_grid(cells, measured_costs(store), world_person_days=pd_, n_worlds=2, workers=2)
    # two worlds on two workers: the same cell time, plus two world builds
    assert two.total == pytest.approx(est.total + 2 * world_seconds(pd_))


def test_nearest_coalition_size_scaled_then_table() -> None:
    measured = {
        CostKey("pooled", "gbt", 2, False, 100): [8.0],
        CostKey("pooled", "gbt", 4, False, 100): [30.0, 50.0],
        CostKey("pooled", "gbt", 4, False, 999): [1000.0],  # another world size: never used for 100
    }
    three = cell_cost(CostKey("pooled", "gbt", 3, False, 100), measured)
    # a tie (2 and 4): the larger coalition, scaled by size ** COALITION_EXPONENT
    assert three.source == "nearest"
    assert three.seconds == pytest.approx(40.0 * (3 / 4) ** COALITION_EXPONENT)
    five = cell_cost(CostKey("pooled", "gbt", 5, False, 100), measured)
    scale = (5 / 4) ** COALITION_EXPONENT
    assert (five.seconds, five.lo, five.hi) == pytest.approx((40.0 * scale, 30.0 * scale, 50.0 * scale))
    dp = cell_cost(CostKey("pooled", "gbt", 2, True, 100), measured)
    assert dp.source == "table" and dp == table_cost(CostKey("pooled", "gbt", 2, True, 100))


def test_table_scales_with_world_and_coalition_but_not_for_every_partner_regimes() -> None:
    small, big = CostKey("pooled", "gbt", 5, False, 100_000), CostKey("pooled", "gbt", 5, False, 400_000)
    assert table_cost(big).seconds == pytest.approx(table_cost(small).seconds * 4**SIZE_EXPONENT)
    pair = CostKey("pooled", "gbt", 2, False, 100_000)
    assert table_cost(pair).seconds == pytest.approx(table_cost(small).seconds * (2 / 5) ** COALITION_EXPONENT)
    sq3, sq5 = CostKey("status_quo", "gbt", 3, False, 100_000), CostKey("status_quo", "gbt", 5, False, 100_000)
    assert table_cost(sq3) == table_cost(sq5)
    cost = table_cost(small)
    assert (cost.lo, cost.hi) == pytest.approx((cost.seconds / 2, cost.seconds * 2))


def test_a_grid_cell_between_measured_sizes_uses_the_nearest(store: str) -> None:
    chain = {**EXPERIMENT, "regimes": ["pooled"], "coalitions": [["bank_1", "telco", "marketplace"]], "primary": None}
    cells = _cells(chain)
    pd_ = person_days(parse_experiment(chain).world)
    est = estimate_grid(cells, measured_costs(store), world_person_days=pd_, world_cached=True)
    # size 3: the measured pair (8 s, distance 1) rather than the full chain (distance 2), × (3/2) ** exponent
    assert est.sources == {"nearest": 2}
    assert est.total == pytest.approx(2 * 8.0 * (3 / 2) ** COALITION_EXPONENT)


def test_empty_store_falls_back_to_the_table_and_says_so(tmp_path: Path) -> None:
    cells = _cells(EXPERIMENT)
    pd_ = person_days(parse_experiment(EXPERIMENT).world)
    empty = measured_costs(f"sqlite:///{tmp_path / 'none.db'}")
    assert empty == {} and not (tmp_path / "none.db").exists()  # reading never creates a store
    est = estimate_grid(cells, empty, world_person_days=pd_)
    expected = sum(table_cost(CostKey(c.regime, c.model, len(c.coalition), False, pd_)).seconds for c in cells)
    assert est.total == pytest.approx(expected + world_seconds(pd_))
    assert est.sources == {"table": len(cells)} and est.measured_runs == 0


def test_dry_run_prints_the_estimate(store: str, tmp_path: Path) -> None:
    path = tmp_path / "cost_grid.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    out = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--tracking-uri", store, "--workdir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "cost_grid: 14 runs" in out.output
    # 140 s of cells (2 × 30 + 10 × 5 + 2 × 15) plus the world: "≈ 2 min" or "≈ 3 min" as the world rate says
    pd_ = person_days(parse_experiment(EXPERIMENT).world)
    total = round((140 + world_seconds(pd_)) / 60)
    assert f"estimated wall time ≈ {total} min" in out.output
    assert f"from 6 measured runs in {store}" in out.output
    assert "14 from measured runs of the same key" in out.output


def test_dry_run_estimates_only_the_cells_not_yet_finished(store: str, tmp_path: Path) -> None:
    # Two of the grid's 14 cells finished in its own experiment (config-hash tag, as fedsim run logs them): the
    # estimate covers the other 12, and the finished ones are named as reused.
    from fedsim.tracking import CONFIG_HASH_TAG

    path = tmp_path / "cost_grid.yaml"
    path.write_text(yaml.safe_dump(EXPERIMENT))
    tracker = Tracker(store, "cost_grid")
    world_hash = "5" * 64  # fedsim run hashes a cell with its world's content hash (not cached here: read from runs)
    cells = _cells(EXPERIMENT)
    done = [c.model_copy(update={"world_digest": world_hash}) for c in cells if c.regime == "status_quo"]
    for i, cell in enumerate(done):  # 30 s each, as the measured store's status quo
        _track(tracker, cell, 30.0, T0 + 10_000_000 + i * 100_000)
    for run in tracker.client.search_runs([tracker.experiment_id]):
        match = next(c for c in done if c.run_name == run.info.run_name)
        tracker.client.set_tag(run.info.run_id, CONFIG_HASH_TAG, match.config_hash)
        tracker.client.log_param(run.info.run_id, "world_hash", world_hash)
    out = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--tracking-uri", store, "--workdir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "2 of 14 runs already finished" in out.output and "the estimate is for the other 12" in out.output
    pd_ = person_days(parse_experiment(EXPERIMENT).world)
    total = round((140 - 2 * 30 + world_seconds(pd_)) / 60)  # the test above's 140 s without the two status quo
    assert f"estimated wall time ≈ {total} min" in out.output
    assert "12 from measured runs of the same key" in out.output
