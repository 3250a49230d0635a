"""`fedsim value`: each partner's value to a coalition, from the tracked runs of a coalition lattice.

For every sharing regime of the experiment and every (model, ε), the coalition game v(S) is read from the runs'
logged entity-day scores (never retrained), re-evaluated on the **common test set**: the world's full truth, so
every case with its first money-out in the test window counts and a case none of S's partners can see has no
positive row of S's scores, hence is never alerted: a miss. (That is also how every run is evaluated when it is
logged: :meth:`fedsim.runner.Workspace.package` evaluates each coalition's scores against the whole world's
truth, and each partner of S works its own calibrated alert capacity; partners outside S raise no alerts.)
Singletons are the ``siloed`` runs (one partner alone is the same in every regime); v(∅) is the outcome of no
alerts at all (0 for ED, detected and €; 0.5 for ROC-AUC).

All score tables of the game share ONE set of bootstrap clusters and the same resamples
(:func:`fedsim.evaluation.api.prepare_tables`), and the training seeds are the ones every coalition ran, so every
quantity of :mod:`fedsim.evaluation.value` gets a CI covering cases × training seeds, and a difference of two
coalitions is a paired one. Only one world per call.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError

if TYPE_CHECKING:
    from fedsim.evaluation.estimator import MetricKey
    from fedsim.evaluation.value import GameSample
    from fedsim.experiment import ExperimentSpec

NOT_A_GAME = ("status_quo", "siloed", "rules")
"""Regimes without a coalition game of their own: status_quo and rules run every partner alone side by side, and
the siloed runs are the singletons of every other regime's game."""

_METRIC = re.compile(
    r"^(?:ed_h(?P<h>[0-9.]+)|detected|roc_auc|prevented_(?P<m>eur|share)_d(?P<d>[0-9.]+)_r(?P<r>[0-9.]+))$"
)
EMPTY_VALUE = {"roc_auc": 0.5}
"""v(∅) where it is not 0: no scores at all rank every entity-day alike (AUC ½)."""


@dataclass(frozen=True)
class Outcome:
    """The outcome v(S) measures: a metric key filter (fraud type left open) and its v(∅)."""

    name: str
    metric: str
    where: dict[str, float] = field(default_factory=dict)

    @property
    def empty(self) -> float:
        return EMPTY_VALUE.get(self.metric, 0.0)

    def matches(self, key: MetricKey, k: float) -> bool:
        if key.metric != self.metric:
            return False
        if self.metric != "roc_auc" and key.k != k:
            return False
        return all(getattr(key, dim) == value for dim, value in self.where.items())


def outcome_of(name: str) -> Outcome:
    """Parse ``ed_h<h>``, ``detected``, ``prevented_eur_d<Δ>_r<ρ>``, ``prevented_share_d<Δ>_r<ρ>`` or ``roc_auc``.

    AP, lift, recall and precision are refused: they are computed over the rows S scores, not over a common
    set, so v(S) of two coalitions would not be on the same test set."""
    m = _METRIC.match(name)
    if m is None:
        raise FedsimError(
            f"value: --metric {name!r}; allowed: ed_h<h>, detected, prevented_eur_d<Δ>_r<ρ>, "
            "prevented_share_d<Δ>_r<ρ>, roc_auc (outcomes on the common test set; AP, lift, recall and "
            "precision depend on the rows S scores)"
        )
    if m["h"] is not None:
        return Outcome(name, "ed", {"h": float(m["h"])})
    if m["m"] is not None:
        return Outcome(name, f"prevented_{m['m']}", {"delta_h": float(m["d"]), "rho": float(m["r"])})
    return Outcome(name, name)


ScoresOf = Callable[[pd.Series], pd.DataFrame]


@dataclass(frozen=True)
class Game:
    """One regime's game at one (model, ε): the runs behind each coalition (mask → runs by seed)."""

    regime: str
    model: str
    epsilon: str
    players: tuple[str, ...]
    runs: dict[int, dict[str, pd.Series]]
    seeds: tuple[str, ...]
    missing: tuple[str, ...]


def games_of(spec: ExperimentSpec, runs: pd.DataFrame, partners: Sequence[str]) -> list[Game]:
    """Every regime's game per (model, ε) from the finished runs; singletons from ``siloed``; only the seeds that
    every present coalition ran (so each seed's v table is complete)."""
    from fedsim.evaluation.value import mask_of

    lattice = spec.lattice
    players = lattice.players(partners) if lattice is not None else tuple(partners)
    wanted = {mask_of(c, players) for c in spec.coalition_list(partners) if set(c) <= set(players)}
    silo = runs[runs["regime"] == "siloed"]
    out = []
    for regime in [r for r in spec.regimes if r not in NOT_A_GAME]:
        mine = runs[runs["regime"] == regime]
        for (model, eps), group in mine.groupby(["model", "epsilon"], sort=True):
            by_mask: dict[int, dict[str, pd.Series]] = {}
            for source in (group, silo[(silo["model"] == model) & (silo["epsilon"] == eps)]):
                for _, run in source.iterrows():
                    coalition = str(run["coalition"]).split("+")
                    if set(coalition) <= set(players):
                        by_mask.setdefault(mask_of(coalition, players), {}).setdefault(str(run["seed"]), run)
            seeds = set.intersection(*[set(r) for r in by_mask.values()]) if by_mask else set()
            missing = [m for m in sorted(wanted) if m not in by_mask]
            names = tuple("+".join(p for i, p in enumerate(players) if m >> i & 1) for m in missing)
            runs_kept = {m: {s: r[s] for s in seeds} for m, r in by_mask.items()}
            out.append(Game(regime, str(model), str(eps), players, runs_kept, tuple(sorted(seeds, key=int)), names))
    return out


def sample_game(
    game: Game, ws: Any, *, outcome: Outcome, k: float, weights: dict[str, float], n_boot: int, scores_of: ScoresOf
) -> dict[str, GameSample]:
    """fraud type → the game's v table over seeds and the shared case resamples (see the module docstring)."""
    from fedsim.evaluation.api import point_and_resamples, prepare_tables
    from fedsim.evaluation.inputs import EvaluationSettings
    from fedsim.evaluation.value import GameSample

    if not game.seeds:
        raise FedsimError(
            f"value: {game.regime} ({game.model}, ε = {game.epsilon}): no training seed ran every coalition"
        )
    order = [(m, s) for m in sorted(game.runs) for s in game.seeds]
    settings = EvaluationSettings(
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        capacities=(k,),
        horizons_h=tuple(sorted({outcome.where.get("h", 0.0)})),
        latencies_h=(outcome.where.get("delta_h", 0.0),),
        interdiction=(outcome.where.get("rho", 1.0),),
        n_boot=n_boot,
        capacity_weights=tuple(sorted(weights.items())),
    )
    prepared = prepare_tables([scores_of(game.runs[m][s]) for m, s in order], ws.truth, ws.partner_sizes, settings)
    n, n_seeds = len(game.players), len(game.seeds)
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, (m, s) in enumerate(order):
        keys, (point,), (draws,) = point_and_resamples([prepared.estimator(i)], settings)
        for j, key in enumerate(keys):
            if outcome.matches(key, k):
                if key.fraud_type not in samples:
                    pts = np.full((n_seeds, 1 << n), np.nan)
                    drs = np.full((n_seeds, 1 << n, n_boot), np.nan)
                    pts[:, 0], drs[:, 0] = outcome.empty, outcome.empty
                    samples[key.fraud_type] = (pts, drs)
                pts, drs = samples[key.fraud_type]
                row = game.seeds.index(s)
                pts[row, m], drs[row, m] = point[j], draws[j]
    return {
        ft: GameSample(players=game.players, points=p, draws=d, seed_labels=game.seeds)
        for ft, (p, d) in samples.items()
    }


def analyse(sample: GameSample, *, scope: str, margin: float, permutations: np.ndarray | None) -> dict[str, Any]:
    """Every table of the value report for one fraud type (:mod:`fedsim.evaluation.value`)."""
    from fedsim.evaluation import value as V

    kw = {"scope": scope}
    return {
        "coalitions": V.coalition_values(sample, **kw),
        "values": V.player_values(sample, permutations=None if V.is_exact(sample) else permutations, **kw),
        "gains": V.gains(sample, **kw),
        "waterfall": V.waterfall(sample, **kw),
        "best": V.best_and_smallest(sample, margin=margin, **kw),
        "flags": V.flags(sample, **kw),
    }


def partner_value(
    experiment: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    metric: str | None = None,
    scale: float | None = None,
    margin: float = 0.0,
) -> list[dict[str, Any]]:
    """The value report per regime, (model, ε) and fraud type, from the tracked runs of the experiment's world.

    ``metric`` defaults to the primary's (else ``ed_h0``), ``scale`` to the primary's capacity scale (else 1):
    each partner works ``scale`` × its calibrated alert capacity. ``margin``: see
    :func:`fedsim.evaluation.value.best_and_smallest`.
    """
    from fedsim.contrast import load_world
    from fedsim.evaluation.seeds import covers_text, mc_error_note
    from fedsim.evaluation.value import sample_permutations
    from fedsim.experiment import load_experiment
    from fedsim.runner import partners_of
    from fedsim.tracking import Tracker

    spec = load_experiment(experiment)
    outcome = outcome_of(metric or (spec.primary.metric if spec.primary else "ed_h0"))
    scale = scale if scale is not None else (spec.primary.capacity_scale if spec.primary else 1.0)
    tracker = Tracker(tracking_uri, spec.name)
    runs = tracker.runs_table(spec.name)
    if runs.empty:
        raise FedsimError(f"value: experiment {spec.name!r} has no finished runs in this store")
    world = load_world(spec, spec.world.seed, Path(workdir), runs)
    partners = partners_of(spec)
    games = games_of(spec, world.runs, partners)
    if not games:
        raise FedsimError("value: no sharing regime with runs (status_quo and siloed alone make no coalition game)")
    (k,) = world.capacity.fractions([scale])
    lattice = spec.lattice
    report = []
    with tempfile.TemporaryDirectory() as tmp:

        def scores_of(run: pd.Series) -> pd.DataFrame:
            local = tracker.download_artifact(run["run_id"], "scores/scores.parquet", tempfile.mkdtemp(dir=tmp))
            return pd.read_parquet(local)

        for game in games:
            perms = None
            if lattice is not None and not lattice.exact(partners):
                perms = sample_permutations(len(game.players), lattice.permutations, lattice.permutation_seed)
            per_type = sample_game(
                game,
                world.ws,
                outcome=outcome,
                k=k,
                weights=world.capacity.weights,
                n_boot=spec.metrics.bootstrap,
                scores_of=scores_of,
            )
            for fraud_type, sample in sorted(per_type.items(), key=lambda kv: (kv[0] != "all", kv[0])):
                scope = f"{game.regime}|{game.model}|{game.epsilon}|{fraud_type}"
                report.append(
                    {
                        "regime": game.regime,
                        "model": game.model,
                        "epsilon": game.epsilon,
                        "fraud_type": fraud_type,
                        "metric": outcome.name,
                        "capacity": world.capacity.label(scale),
                        "seeds": list(game.seeds),
                        "covers": covers_text(n_seeds=len(game.seeds)),
                        "mc_error": mc_error_note(spec.metrics.bootstrap),
                        "not_run": list(game.missing),
                        **analyse(sample, scope=scope, margin=margin, permutations=perms),
                    }
                )
    return report


def value_payload(report: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report JSON-able: data frames as records, NaN as null."""

    def plain(value: Any) -> Any:
        if isinstance(value, pd.DataFrame):
            return json.loads(value.to_json(orient="records"))
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, float | np.floating) and not np.isfinite(value):
            return None
        if isinstance(value, np.generic):
            return value.item()
        return value

    return [plain(entry) for entry in report]


def _ci(row: pd.Series, fmt: str) -> str:
    return f"{fmt.format(row['value'])} [{fmt.format(row['lo'])}, {fmt.format(row['hi'])}]"


def render_value(report: list[dict[str, Any]], fmt: str = "table") -> None:
    """Print each game's value tables (labels never cut, :mod:`fedsim.sheet`); gains only for all fraud types."""
    from fedsim.sheet import Sheet, print_sheet

    for e in report:
        f = "{:+,.0f}" if e["metric"].startswith("prevented_eur") else "{:+.3f}"
        head = f"{e['regime']} ({e['model']}, ε = {e['epsilon']}), {e['fraud_type']}: v(S) = {e['metric']}"
        sheet = Sheet(
            title=f"{head}; partner values, 95% CI covers {e['covers']}",
            columns=["partner", "concept", "value [95% CI]", "P(> 0)"],
            caption=f"capacity: {e['capacity']}. Common test set: a case S cannot see is a miss. {e['mc_error']}",
            keys=2,
        )
        for _, r in e["values"].iterrows():
            sheet.add_row(r["player"], r["concept"], _ci(r, f), f"{r['p_gt_0']:.2f}")
        print_sheet(sheet, fmt)
        b = e["best"]
        fl = e["flags"]
        lines = [
            f"most effective coalition: {b['best']} (v = {b['best_value']:.3f}); smallest within CI of it: "
            f"{b['smallest_near_best']} (v = {b['smallest_value']:.3f}, short by {b['shortfall']:+.3f} "
            f"[{b['shortfall_lo']:+.3f}, {b['shortfall_hi']:+.3f}]; within CI = lower end of the paired CI "
            f"≤ {b['margin']:g})",
        ]
        if "every_partner_gains" in fl:
            lines.append(f"every partner gains (full chain − each silo, CI > 0): {fl['every_partner_gains']}")
        if "diminishing_returns" in fl:
            m = ", ".join(f"{v:+.3f}" for v in fl["marginal_by_size"]["value"])
            lines.append(f"returns diminish (k-th partner adds {m}; first − last CI > 0): {fl['diminishing_returns']}")
        below = fl["below_best_silo"]
        if not below.empty:
            worst = below[below["hi"] < 0]
            lines.append(
                f"below its best silo: {len(below)} coalition(s), {len(worst)} with CI below 0"
                + (
                    ": " + ", ".join(f"{c} < {s}" for c, s in zip(worst["coalition"], worst["best_silo"], strict=True))
                    if len(worst)
                    else ""
                )
            )
        if e["not_run"]:
            lines.append(f"coalitions without runs: {', '.join(e['not_run'])}")
        if fmt == "table":
            for line in lines:
                print(line)
        w = Sheet(title=f"{head}; waterfall from the best silo", columns=["step", "coalition", "gain [95% CI]"], keys=1)
        for _, r in e["waterfall"].iterrows():
            w.add_row(r["step"], r["coalition"], _ci(r, f))
        print_sheet(w, fmt)
        if e["fraud_type"] == "all" and not e["gains"].empty:
            g = Sheet(
                title=f"{head}; gain from adding X to S",
                columns=["S", "+ X", "gain [95% CI]", "P(> 0)", "q (BH)"],
                keys=2,
            )
            for _, r in e["gains"].iterrows():
                g.add_row(r["coalition"], r["added"], _ci(r, f), f"{r['p_gt_0']:.2f}", f"{r['q_bh']:.3f}")
            print_sheet(g, fmt)
