"""The report's view of one experiment's tracked runs: its world, its finished runs, their artifacts, and the paired
contrast of two regimes on the full chain.

The contrast is `fedsim compare`'s own machinery (:mod:`fedsim.contrast`: paired over training seeds, CI covering
cases × seeds), applied to each regime's **full-chain** runs: in a coalition lattice a regime has a run for every
coalition, and the report's contrasts (the primary one, each sharing form − status quo) are about the whole
chain, i.e. each regime's largest coalition.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from fedsim.contrast import _World
    from fedsim.experiment import ExperimentSpec
    from fedsim.tracking import Tracker

SHARING = ("reports", "watchlist", "mo_alerts", "pooled", "horizontal", "vertical", "hybrid")
"""Sharing regimes the report contrasts with status quo, in the order of how much leaves a partner."""
CONTRAST_METRICS = ("ed_h0", "prevented_eur_d0_r1.0", "ap")
"""The metrics :func:`fedsim.contrast.primary_contrast` puts in its rows (:data:`fedsim.contrast.HEADLINE_NAMES`)."""


def full_chain(runs: pd.DataFrame, *, best_silo: str | None = None) -> pd.DataFrame:
    """Each regime's runs on its largest coalition (status_quo and rules already run every partner side by side).

    siloed has no chain: it is left out, unless ``best_silo`` names a logged metric, then the runs of the silo with
    the highest mean of it stand for siloed (the "best silo" of evaluation.md §6, for a contrast against siloed)."""
    if runs.empty:
        return runs
    size = runs["coalition"].astype(str).str.count(r"\+") + 1
    biggest = size.groupby(runs["regime"]).transform("max")
    keep = (size == biggest) & (runs["regime"] != "siloed")
    silo = runs["regime"] == "siloed"
    if best_silo is not None and best_silo in runs and silo.any():
        means = pd.to_numeric(runs.loc[silo, best_silo], errors="coerce").groupby(runs.loc[silo, "coalition"]).mean()
        keep |= silo & (runs["coalition"] == means.idxmax())
    return runs[keep]


def metric_column(metric: str, fraud_type: str, scale: float) -> str:
    """The logged name of ``metric`` for ``fraud_type`` at ``scale`` × the calibrated capacity
    (:mod:`fedsim.evaluation.tables`: ``[<type>.]<metric>_cal<scale>``; AP, lift and ROC-AUC carry no capacity)."""
    prefix = "" if fraud_type == "all" else f"{fraud_type}."
    tag = "" if metric in ("ap", "lift", "roc_auc", "prevalence") else f"_cal{scale:g}"
    return f"{prefix}{metric}{tag}"


@dataclass
class Store:
    """One experiment's world and finished runs, with cached artifact downloads (a report reads a run's scores
    for several contrasts)."""

    spec: ExperimentSpec
    tracker: Tracker
    world: _World
    workdir: Path
    scale: float
    tmp: Path
    _paths: dict[tuple[str, str], Path] = field(default_factory=dict)
    _contrasts: dict[tuple[str, str, tuple[str, str] | None], pd.DataFrame] = field(default_factory=dict)

    @property
    def runs(self) -> pd.DataFrame:
        """Every finished run on the experiment's world (the world of ``spec.world.seed``)."""
        return self.world.runs

    def artifact(self, run_id: str, path: str) -> Path:
        """A run's logged artifact as a local file (downloaded once)."""
        key = (run_id, path)
        if key not in self._paths:
            self._paths[key] = self.tracker.download_artifact(run_id, path, tempfile.mkdtemp(dir=self.tmp))
        return self._paths[key]

    def scores_of(self, run: pd.Series) -> pd.DataFrame:
        return pd.read_parquet(self.artifact(str(run["run_id"]), "scores/scores.parquet"))

    def contrast(self, a: str, b: str, cell: tuple[str, str] | None = None) -> pd.DataFrame:
        """A − B on the full chain, `fedsim compare`'s rows (per model, ε, metric, fraud type) with the run ids
        of both sides (``run_ids``), only at ``cell`` = (model, ε) when given; empty when the two regimes share no
        (model, ε, seed). Computed once per (A, B, cell)."""
        from fedsim.contrast import contrast_rows

        key = (a, b, cell)
        if key in self._contrasts:
            return self._contrasts[key]
        runs = full_chain(self.runs, best_silo=metric_column("ed_h0", "all", self.scale))
        if cell is not None:
            runs = headline_runs(runs, *cell)
        table = pd.DataFrame()
        if {a, b} <= set(runs["regime"]):
            world = replace(self.world, runs=runs)
            rows = contrast_rows([world], a, b, self.spec.metrics.bootstrap, [self.scale], None, self.scores_of)
            table = pd.DataFrame(rows)
        if not table.empty:
            ids = {k: self._pair_ids(runs, a, b, g.iloc[0]) for k, g in table.groupby(["model", "epsilon", "seeds"])}
            table["run_ids"] = [ids[(r["model"], r["epsilon"], r["seeds"])] for _, r in table.iterrows()]
        self._contrasts[key] = table
        return table

    @staticmethod
    def _pair_ids(runs: pd.DataFrame, a: str, b: str, row: pd.Series) -> tuple[str, ...]:
        seeds = set(str(row["seeds"]).split(","))
        same = (runs["model"] == row["model"]) & (runs["epsilon"] == row["epsilon"]) & runs["seed"].isin(seeds)
        side = [runs[same & (runs["regime"] == r)].drop_duplicates("seed") for r in (a, b)]
        return tuple(str(i) for s in side for i in s.sort_values("seed")["run_id"])


def headline_cell(spec: ExperimentSpec, runs: pd.DataFrame, a: str, b: str, scale: float) -> tuple[str, str]:
    """The (model, ε) page one reports: the experiment's first model that both regimes ran on the full chain, at
    ε = ∞ when both ran it (the non-private outcome; the privacy cost is reported beside it), else their smallest
    common ε. Raises FedsimError when the two regimes share no (model, ε)."""
    from fedsim.errors import FedsimError

    chain = full_chain(runs, best_silo=metric_column("ed_h0", "all", scale))
    mine = [chain[chain["regime"] == r] for r in (a, b)]
    cells = [set(zip(m["model"], m["epsilon"].astype(str), strict=True)) for m in mine]
    common = cells[0] & cells[1]
    if not common:
        raise FedsimError(f"report: no finished {a!r} and {b!r} runs with the same model and ε on the full chain")
    models = [m for m in spec.models if any(c[0] == m for c in common)] or sorted({c[0] for c in common})
    eps = sorted((e for m, e in common if m == models[0]), key=_eps_key)
    return models[0], ("inf" if "inf" in eps else eps[0])


def _eps_key(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return math.inf


def open_store(spec: ExperimentSpec, tracking_uri: str | None, workdir: Path, tmp: Path) -> Store:
    """The experiment's world (cached under ``workdir``, generated if absent) and its finished runs on it."""
    from fedsim.contrast import load_world
    from fedsim.errors import FedsimError
    from fedsim.tracking import Tracker

    tracker = Tracker(tracking_uri, spec.name)
    runs = tracker.runs_table(spec.name)
    if runs.empty:
        raise FedsimError(f"report: experiment {spec.name!r} has no finished runs in {tracker.tracking_uri}")
    world = load_world(spec, spec.world.seed, workdir, runs)
    scale = spec.primary.capacity_scale if spec.primary else 1.0
    return Store(spec=spec, tracker=tracker, world=world, workdir=workdir, scale=scale, tmp=tmp)


def world_hash(store: Store) -> str:
    return str(store.world.ws.world.content_hash)


def seed_mean(runs: pd.DataFrame, column: str) -> tuple[float, float, float]:
    """Seed mean of a logged metric with the cases × seeds CI of `fedsim runs`
    (:func:`fedsim.evaluation.seeds.interval_from_runs`); NaNs when no run logged it."""
    from fedsim.evaluation.seeds import interval_from_runs

    if column not in runs or runs.empty:
        return (math.nan, math.nan, math.nan)
    v, lo, hi = (
        pd.to_numeric(runs.get(c, pd.Series(math.nan, index=runs.index)), errors="coerce")
        for c in (column, f"{column}_lo", f"{column}_hi")
    )
    return tuple(float(x) for x in interval_from_runs(v, lo, hi))  # type: ignore[return-value]


def headline_runs(runs: pd.DataFrame, model: str, epsilon: str) -> pd.DataFrame:
    """The runs of the headline (model, ε)."""
    return runs[(runs["model"] == model) & (runs["epsilon"].astype(str) == epsilon)]
