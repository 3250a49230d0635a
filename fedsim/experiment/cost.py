"""Wall-time estimate of a grid from measured per-cell costs (`fedsim run EXPERIMENT --dry-run`).

A cell's cost is the wall time of a finished run as MLflow recorded it (end − start of the tracked run:
training, scoring, evaluation with its bootstrap, logging), read through
:func:`fedsim.tracking.finished_run_times`. What drives it is the cost key (:class:`CostKey`): regime, model,
coalition size (number of partners), whether the cell trains with DP, and the world's size in person-days
(persons × days of the world config). A cell is estimated, in this order, by

1. **exact**: the measured runs with its key (point: their mean; range: their fastest and slowest run);
2. **nearest coalition size**: the measured runs of the same regime, model, DP and world size at the closest
   coalition size (ties: the larger one), scaled by the size ratio to the power :data:`COALITION_EXPONENT`;
3. **built-in table** (:data:`CALIBRATION`): one run per (regime, model, DP) measured on this machine on the
   small world, scaled by person-days to the power :data:`SIZE_EXPONENT` and by coalition size as in 2 (both
   fitted below); range: a factor 2
   either way (one run per entry; on this shared machine one cell's runs vary that much, e.g. 34–286 s for
   the default world's status_quo cells).

The grid's total is the sum over its cells divided by the workers. `fedsim run` runs the cells of a grid
**one by one** in one process (:func:`fedsim.experiment.run_grid`; torch on one thread), so one worker; two
`fedsim run` processes on the same store split the cells through the run leases (:mod:`fedsim.tracking`), at
best halving the time on 2 cores. World generation (once per world seed, unless cached) is added: from
:data:`WORLD_SECONDS_PER_PERSON_DAY`, measured with the calibration.

The calibration (2026-12-01, 2 shared cores, load average ≈ 3 from other jobs)::

    fedsim run calibration.yaml --tracking-uri sqlite:////tmp/q4cal/mlflow.db --workdir /tmp/q4cal/.fedsim
    # calibration.yaml: world {preset: small, seed: 7} (6,000 persons × 120 days), split 70/5/45, every
    # regime on the full chain, models [logistic, gbt], seeds [0], privacy.epsilon [inf, 2], 5 FedAvg rounds,
    # bootstrap 1000; split-learning regimes train the mlp.
    # 37 cells, 12 min 31 s wall (/usr/bin/time): 726 s inside the tracked runs, 11.4 s before the first one,
    # 0.24 s between cells (lease checks), 5 s closing Ray. So the tracked runs' times are the grid's cost.
    fedsim run calibration_size.yaml --tracking-uri sqlite:////tmp/q4cal/mlflow.db --workdir /tmp/q4cal/.fedsim
    # calibration_size.yaml: the same world and split, regimes [reports, watchlist, mo_alerts, pooled] on
    # [bank_1, telco] and [bank_1, bank_2, telco], gbt, seeds [0] (COALITION_EXPONENT).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from fedsim.experiment.grid import RunSpec
from fedsim.experiment.spec import WorldSpec, world_days

CALIBRATION_PERSON_DAYS = 6_000 * 120
"""World size of the calibration runs: the small preset (6,000 persons × 120 days)."""
CALIBRATION_PARTNERS = 5
"""Coalition size of the calibration's cells (its full chain); siloed cells have one partner."""
ALL_PARTNER_REGIMES = frozenset({"status_quo", "rules"})
"""Regimes whose cells always run every partner side by side: the table is not scaled by coalition size."""

CALIBRATION: dict[tuple[str, str, bool], float] = {
    # (regime, model, DP): seconds of one cell on the small world's full chain (siloed: mean of the 5 partners)
    ("rules", "logistic", False): 3.1,
    ("status_quo", "logistic", False): 7.1,
    ("status_quo", "logistic", True): 38.0,
    ("status_quo", "gbt", False): 26.7,
    ("siloed", "logistic", False): 4.9,
    ("siloed", "logistic", True): 6.5,
    ("siloed", "gbt", False): 11.7,
    ("reports", "logistic", False): 25.2,
    ("reports", "logistic", True): 40.5,
    ("reports", "gbt", False): 20.2,
    ("watchlist", "logistic", False): 7.1,
    ("watchlist", "logistic", True): 9.1,
    ("watchlist", "gbt", False): 24.3,
    ("mo_alerts", "logistic", False): 7.4,
    ("mo_alerts", "logistic", True): 9.5,
    ("mo_alerts", "gbt", False): 19.5,
    ("pooled", "logistic", False): 13.1,
    ("pooled", "logistic", True): 26.4,
    ("pooled", "gbt", False): 35.5,
    ("horizontal", "logistic", False): 31.0,
    ("horizontal", "logistic", True): 26.4,
    ("vertical", "mlp", False): 61.3,
    ("vertical", "mlp", True): 57.3,
    ("hybrid", "mlp", False): 58.5,
    ("hybrid", "mlp", True): 63.3,
}
"""Seconds per cell at :data:`CALIBRATION_PERSON_DAYS`, by (regime, model, DP); measured, see the module notes."""

WORLD_SECONDS_PER_PERSON_DAY = 1.6e-5
"""Start-up before the first cell (imports, world generation, verification, features), seconds per person-day:
11.4 s for the small world in the calibration run. Cross-check: the headline's default-world runs (3.6M
person-days) took 36–78 s of wall time beyond their cells (README: 16, 21, 29 min per world), 1.0–2.2e-5."""

SIZE_EXPONENT = 0.68
"""Cost ∝ person-days ** this. Fitted on the three (regime, gbt) cells measured on both worlds: the default world
(3.6M person-days, headline store, 15 runs each: mean status_quo 92 s, reports 49 s, pooled 112 s) over the small
one (0.72M, calibration: 26.7 s, 20.2 s, 35.5 s) is 3.5×, 2.4×, 3.2× — geometric mean 3.0 = 5 ** 0.68 (fixed
costs, e.g. the case bootstrap, grow slower than the rows)."""

COALITION_EXPONENT = 1.0
"""Cost ∝ coalition size ** this. Fitted on the small world, gbt, one seed: reports, watchlist, mo_alerts and pooled
on bank_1+telco and on the full chain of 5 (calibration_size.yaml: 8.8/9.1/7.9/10.4 s vs the table's
20.2/24.3/19.5/35.5 s) give exponents 0.91, 1.07, 0.98, 1.34, mean 1.08; 1 is used. It is rough: which partners
matter too (bank_3 is the largest; bank_1+bank_2+telco cost only 6–24% more than bank_1+telco)."""

TABLE_SPREAD = 2.0
"""A built-in table entry's range: its value divided and multiplied by this factor."""


@dataclass(frozen=True, order=True)
class CostKey:
    """What drives one cell's wall time."""

    regime: str
    model: str
    coalition_size: int
    dp: bool
    person_days: int


@dataclass(frozen=True)
class CellCost:
    """One cell's estimated seconds (point and range) and where the number comes from."""

    seconds: float
    lo: float
    hi: float
    source: str  # "exact", "nearest", "table"


@dataclass
class GridEstimate:
    """The estimate of a grid: total and per regime (seconds, point and range), and its provenance."""

    total: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    per_regime: dict[str, tuple[float, float, float, int]] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    world_seconds: float = 0.0
    workers: int = 1
    measured_runs: int = 0


def person_days(world: WorldSpec) -> int:
    """Persons × days of a world spec's resolved config (entities × days for a known-answer world)."""
    config = world.world_config()
    persons = config.known_answer.entities if config.mode == "known_answer" else config.population.persons
    return int(persons) * world_days(config)


def cell_key(cell: RunSpec, world_person_days: int) -> CostKey:
    """The cost key of a grid cell (DP: a target ε or a noise multiplier)."""
    dp = not math.isinf(cell.epsilon) or (cell.privacy is not None and cell.privacy.noise_multiplier is not None)
    return CostKey(cell.regime, cell.model, len(cell.coalition), dp, world_person_days)


def key_from_params(params: Mapping[str, str], sizes: dict[str, int | None]) -> CostKey | None:
    """The cost key of a tracked run from its params; None when its world's size cannot be resolved
    (e.g. a world config file that is gone). ``sizes`` caches person-days per world description."""
    try:
        regime, model, coalition = params["regime"], params["model"], params["coalition"]
        epsilon = float(params.get("epsilon", "inf"))
    except (KeyError, ValueError):
        return None
    dp = not math.isinf(epsilon) or params.get("privacy.noise_multiplier", "None") not in ("None", "")
    world = {k[len("world.") :]: v for k, v in params.items() if k.startswith("world.")}
    ident = repr(sorted(world.items()))
    if ident not in sizes:
        sizes[ident] = _world_size(world)
    size = sizes[ident]
    if size is None:
        return None
    return CostKey(regime, model, len(coalition.split("+")), dp, size)


def _world_size(world: Mapping[str, str]) -> int | None:
    overrides: dict[str, Any] = {}
    for key, text in world.items():
        if key.startswith("overrides."):
            *path, leaf = key[len("overrides.") :].split(".")
            node = overrides
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(text)
    raw = {"preset": world.get("preset"), "config": world.get("config"), "seed": 0, "overrides": overrides}
    try:
        return person_days(WorldSpec.model_validate({k: v for k, v in raw.items() if v is not None}))
    except Exception:  # a world this code cannot rebuild (gone file, older schema): its runs are not used
        return None


def measured_costs(tracking_uri: str | None) -> dict[CostKey, list[float]]:
    """Seconds of every finished run in the store, by cost key (runs whose world cannot be sized are left out)."""
    from fedsim.tracking import finished_run_times

    sizes: dict[str, int | None] = {}
    out: dict[CostKey, list[float]] = {}
    for run in finished_run_times(tracking_uri):
        key = key_from_params(run.params, sizes)
        if key is not None and run.seconds > 0:
            out.setdefault(key, []).append(run.seconds)
    return out


def cell_cost(key: CostKey, measured: Mapping[CostKey, Sequence[float]]) -> CellCost:
    """One cell's cost: exact key, else the nearest coalition size, else the built-in table."""
    if key in measured:
        return _from_runs(measured[key], "exact")
    same = [
        k
        for k in measured
        if (k.regime, k.model, k.dp, k.person_days) == (key.regime, key.model, key.dp, key.person_days)
    ]
    if same:
        nearest = min(same, key=lambda k: (abs(k.coalition_size - key.coalition_size), -k.coalition_size))
        return _from_runs(measured[nearest], "nearest", _coalition_scale(key.coalition_size, nearest.coalition_size))
    return table_cost(key)


def _coalition_scale(size: int, measured_size: int) -> float:
    return float((size / measured_size) ** COALITION_EXPONENT)


def _from_runs(seconds: Sequence[float], source: str, scale: float = 1.0) -> CellCost:
    return CellCost(scale * statistics.fmean(seconds), scale * min(seconds), scale * max(seconds), source)


def table_cost(key: CostKey) -> CellCost:
    """The built-in calibration: the entry of (regime, model, DP), else the regime's slowest other model with the
    same DP, else the median entry; scaled by person-days ** :data:`SIZE_EXPONENT` and coalition size **
    :data:`COALITION_EXPONENT` (not for :data:`ALL_PARTNER_REGIMES`)."""
    entry = CALIBRATION.get((key.regime, key.model, key.dp))
    if entry is None:
        alike = [s for (r, _, dp), s in CALIBRATION.items() if r == key.regime and dp == key.dp]
        entry = max(alike) if alike else statistics.median(CALIBRATION.values())
    measured_size = 1 if key.regime == "siloed" else CALIBRATION_PARTNERS
    seconds = entry * (key.person_days / CALIBRATION_PERSON_DAYS) ** SIZE_EXPONENT
    seconds *= 1.0 if key.regime in ALL_PARTNER_REGIMES else _coalition_scale(key.coalition_size, measured_size)
    return CellCost(seconds, seconds / TABLE_SPREAD, seconds * TABLE_SPREAD, "table")


def world_seconds(world_person_days: int) -> float:
    """Generating (and verifying) a world of this size, from the calibration's measured rate."""
    return WORLD_SECONDS_PER_PERSON_DAY * world_person_days


def estimate_grid(
    cells: Iterable[RunSpec],
    measured: Mapping[CostKey, Sequence[float]],
    *,
    world_person_days: int,
    n_worlds: int = 1,
    workers: int = 1,
    world_cached: bool = False,
) -> GridEstimate:
    """Sum of the cells' costs over ``workers`` parallel workers, plus world generation per world seed."""
    est = GridEstimate(workers=workers, measured_runs=sum(len(v) for v in measured.values()))
    per: dict[str, list[float]] = {}
    for cell in cells:
        cost = cell_cost(cell_key(cell, world_person_days), measured)
        row = per.setdefault(cell.regime, [0.0, 0.0, 0.0, 0])
        for i, value in enumerate((cost.seconds, cost.lo, cost.hi)):
            row[i] += value * n_worlds / workers
        row[3] += n_worlds
        est.sources[cost.source] = est.sources.get(cost.source, 0) + n_worlds
    est.per_regime = {r: (v[0], v[1], v[2], int(v[3])) for r, v in per.items()}
    est.world_seconds = 0.0 if world_cached else world_seconds(world_person_days) * n_worlds
    est.total = sum(v[0] for v in per.values()) + est.world_seconds
    est.lo = sum(v[1] for v in per.values()) + est.world_seconds
    est.hi = sum(v[2] for v in per.values()) + est.world_seconds
    return est


def format_duration(seconds: float) -> str:
    """Rounded for reading: '45 s', '12 min', '1 h 40 min', '26 h'."""
    if seconds < 60:
        return f"{max(0, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours >= 10:
        return f"{round(seconds / 3600)} h"
    return f"{hours} h" if rest == 0 else f"{hours} h {rest} min"


def describe_estimate(est: GridEstimate, *, store: str) -> list[str]:
    """The estimate in words: total with its range, per regime, and where the numbers come from."""
    how = ", ".join(f"{n} {_SOURCE_WORDS[s]}" for s, n in sorted(est.sources.items()))
    workers = "cells one by one" if est.workers == 1 else f"{est.workers} workers"
    lines = [
        f"estimated wall time ≈ {format_duration(est.total)} ({format_duration(est.lo)} – {format_duration(est.hi)}) "
        f"on this machine ({workers}), from {est.measured_runs} measured runs in {store}",
        f"  cells: {how}",
    ]
    if est.world_seconds:
        lines.append(f"  world generation: ≈ {format_duration(est.world_seconds)}")
    for regime, (mean, lo, hi, n) in est.per_regime.items():
        lines.append(
            f"  {regime:<14} {n:>5} cells  ≈ {format_duration(mean)} ({format_duration(lo)} – {format_duration(hi)})"
        )
    if est.workers == 1:
        lines.append(
            "  two `fedsim run` processes on the same store split the cells (run leases): at best half of it on 2 cores"
        )
    return lines


_SOURCE_WORDS = {
    "exact": "from measured runs of the same key",
    "nearest": f"from the nearest measured coalition size (scaled by size ** {COALITION_EXPONENT:g})",
    "table": f"from the built-in calibration table (small world, scaled by person-days ** {SIZE_EXPONENT})",
}
