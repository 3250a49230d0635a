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
coalitions is a paired one.

With ``--world-seed`` (:func:`partner_value_worlds`) the same report is made for each named draw of the experiment's
world (its runs picked by the world's content hash, as :func:`fedsim.contrast.load_world` does), followed by a
cross-world summary: each partner's Shapley value per world, and whether the most effective and the smallest
near-best coalition are the same on every world. The CIs stay per world: a world draw is a different population
(other persons, cases, mules), not another training seed of the same one, and each world's CI covers that world's
cases × training seeds. Pooling worlds into one CI would answer "what is the value on the average draw of this
config", which is not the question "does the answer hold on each draw"; with few worlds the between-world spread
would also be poorly estimated. So the summary puts the per-world values side by side instead.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import textwrap
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

    ctx = _Context.open(experiment, tracking_uri, metric, scale)
    world = load_world(ctx.spec, ctx.spec.world.seed, Path(workdir), ctx.runs)
    return _world_report(ctx, world.ws, world.capacity, world.runs, margin=margin)


def partner_value_worlds(
    experiment: str | Path,
    world_seeds: Sequence[int],
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    metric: str | None = None,
    scale: float | None = None,
    margin: float = 0.0,
) -> dict[str, Any]:
    """:func:`partner_value` on each world seed of ``world_seeds`` (the experiment's config with ``world.seed``
    replaced, :func:`fedsim.runner.with_world_seed`), plus the cross-world summary when 2+ worlds are given.

    Every world is checked for runs before any value is computed; a world seed without finished runs raises an
    error naming it. CIs are per world (see the module docstring for why worlds are not pooled like seeds).

    Returns:
        ``{"worlds": [{"world_seed", "world_hash", "report"}...], "summary": [...]}`` with each ``report`` as
        :func:`partner_value`'s and ``summary`` from :func:`cross_world_summary` (empty for one world).
    """
    seeds = list(dict.fromkeys(int(s) for s in world_seeds))
    if not seeds:
        raise FedsimError("value: no world seed given; pass --world-seed N (repeat for several worlds)")
    ctx = _Context.open(experiment, tracking_uri, metric, scale)
    loaded = [_load_world_runs(ctx, seed, Path(workdir), experiment) for seed in seeds]
    worlds = [
        {
            "world_seed": seed,
            "world_hash": world_hash,
            "report": _world_report(ctx, ws, ws.capacity(), runs, margin=margin),
        }
        for seed, (ws, world_hash, runs) in zip(seeds, loaded, strict=True)
    ]
    return {"worlds": worlds, "summary": cross_world_summary(worlds) if len(worlds) > 1 else []}


@dataclass(frozen=True)
class _Context:
    """What every world of one `fedsim value` call shares: the experiment, its outcome, store and runs."""

    spec: ExperimentSpec
    outcome: Outcome
    scale: float
    tracker: Any
    runs: pd.DataFrame

    @classmethod
    def open(
        cls, experiment: str | Path, tracking_uri: str | None, metric: str | None, scale: float | None
    ) -> _Context:
        from fedsim.experiment import load_experiment
        from fedsim.tracking import Tracker

        spec = load_experiment(experiment)
        outcome = outcome_of(metric or (spec.primary.metric if spec.primary else "ed_h0"))
        scale = scale if scale is not None else (spec.primary.capacity_scale if spec.primary else 1.0)
        tracker = Tracker(tracking_uri, spec.name)
        runs = tracker.runs_table(spec.name)
        if runs.empty:
            raise FedsimError(f"value: experiment {spec.name!r} has no finished runs in this store")
        return cls(spec, outcome, scale, tracker, runs)


def _load_world_runs(ctx: _Context, seed: int, root: Path, experiment: str | Path) -> tuple[Any, str, pd.DataFrame]:
    """(workspace, content hash, runs) of the experiment's world at ``seed``; the runs are the ones whose
    ``world_hash`` is that world's content hash (as :func:`fedsim.contrast.load_world`). A seed that no run
    logged as its ``world.seed`` is refused before its world is built (building a large world takes minutes)."""
    from fedsim.runner import Workspace, load_or_generate_world, with_world_seed

    def missing(why: str) -> FedsimError:
        return FedsimError(
            f"value: world seed {seed}: experiment {ctx.spec.name!r} has no finished runs on it in this store "
            f"({why}); run `fedsim run {experiment} --world-seed {seed}` first"
        )

    if "world.seed" in ctx.runs and not (ctx.runs["world.seed"].astype(str) == str(seed)).any():
        logged = sorted({str(s) for s in ctx.runs["world.seed"].dropna()}, key=lambda s: (len(s), s))
        raise missing(f"world seeds with runs: {', '.join(logged) or 'none'}")
    spec_w = with_world_seed(ctx.spec, seed)
    world = load_or_generate_world(spec_w, root / "worlds")
    mine = ctx.runs[ctx.runs["world_hash"] == world.content_hash]
    if mine.empty:
        raise missing(f"no run has this world's content hash {world.content_hash[:12]}; the world changed since")
    return Workspace.build(spec_w, world, root / "artifacts"), world.content_hash, mine


def _world_report(ctx: _Context, ws: Any, capacity: Any, world_runs: pd.DataFrame, *, margin: float) -> list[dict]:
    """The value report of one world (see :func:`partner_value`)."""
    from fedsim.evaluation.seeds import covers_text, mc_error_note
    from fedsim.evaluation.value import sample_permutations
    from fedsim.runner import partners_of

    spec, outcome, scale, tracker = ctx.spec, ctx.outcome, ctx.scale, ctx.tracker
    partners = partners_of(spec)
    games = games_of(spec, world_runs, partners)
    if not games:
        raise FedsimError("value: no sharing regime with runs (status_quo and siloed alone make no coalition game)")
    (k,) = capacity.fractions([scale])
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
                ws,
                outcome=outcome,
                k=k,
                weights=capacity.weights,
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
                        "capacity": capacity.label(scale),
                        "seeds": list(game.seeds),
                        "covers": covers_text(n_seeds=len(game.seeds)),
                        "mc_error": mc_error_note(spec.metrics.bootstrap),
                        "not_run": list(game.missing),
                        **analyse(sample, scope=scope, margin=margin, permutations=perms),
                    }
                )
    return report


def cross_world_summary(worlds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (regime, model, ε, fraud type): each partner's Shapley value per world with that world's CI, and
    whether the most effective and the smallest near-best coalition are the same on every world.

    A game that some world lacks (e.g. a fraud type without test cases on one draw) is listed with the worlds that
    have it, and its stability is ``None`` (not decided): it cannot be the same on every world."""
    seeds = [w["world_seed"] for w in worlds]
    by_key: dict[tuple[str, str, str, str], dict[int, dict[str, Any]]] = {}
    for w in worlds:
        for e in w["report"]:
            key = (e["regime"], e["model"], e["epsilon"], e["fraud_type"])
            by_key.setdefault(key, {})[w["world_seed"]] = e
    out = []
    for (regime, model, eps, fraud_type), per_world in by_key.items():
        have = [s for s in seeds if s in per_world]
        shapley = []
        for s in have:
            values = per_world[s]["values"]
            if values.empty:
                continue
            rows = values[values["concept"].str.startswith("shapley")]
            for _, r in rows.iterrows():
                shapley.append(
                    {
                        "partner": r["player"],
                        "world_seed": s,
                        "concept": r["concept"],
                        "value": float(r["value"]),
                        "lo": float(r["lo"]),
                        "hi": float(r["hi"]),
                    }
                )
        per = [
            {
                "world_seed": s,
                "covers": per_world[s]["covers"],
                **{k: per_world[s]["best"][k] for k in ("best", "best_value", "smallest_near_best", "smallest_value")},
            }
            for s in have
        ]
        every = len(have) == len(seeds)
        out.append(
            {
                "regime": regime,
                "model": model,
                "epsilon": eps,
                "fraud_type": fraud_type,
                "metric": per_world[have[0]]["metric"],
                "world_seeds": have,
                "shapley": pd.DataFrame(shapley, columns=["partner", "world_seed", "concept", "value", "lo", "hi"]),
                "per_world": per,
                "best_stable": len({p["best"] for p in per}) == 1 if every else None,
                "smallest_stable": len({p["smallest_near_best"] for p in per}) == 1 if every else None,
            }
        )
    return out


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


def render_value(report: list[dict[str, Any]], fmt: str = "table", width: int | None = None) -> None:
    """Print each game's value tables (labels never cut, :mod:`fedsim.sheet`); gains only for all fraud types.

    ``width``: wrap the text lines between the tables at this many columns (None: one line each)."""
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
                print(textwrap.fill(line, width, subsequent_indent="  ") if width else line)
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


def value_worlds_payload(result: dict[str, Any]) -> dict[str, Any]:
    """:func:`partner_value_worlds`'s result JSON-able (each world's report as :func:`value_payload`)."""
    return {
        "worlds": [{**w, "report": value_payload(w["report"])} for w in result["worlds"]],
        "summary": value_payload(result["summary"]),
    }


def _stable(flag: bool | None) -> str:
    return {True: "yes", False: "no", None: "n/a"}[flag]


def render_value_worlds(result: dict[str, Any], fmt: str = "table") -> None:
    """Each world's value tables under a heading naming its seed, then the cross-world summary: per game, one
    sheet of Shapley values per (fraud type, partner, world) and one of the best and smallest near-best
    coalition per fraud type with its stability. Narrow columns, so the summary fits 80 columns when piped."""
    from fedsim.sheet import Sheet, print_sheet, stdout_console

    console = stdout_console()

    def heading(text: str) -> None:
        if fmt == "csv":
            sys.stdout.write(f"# {text}\n")
        else:
            console.print(f"\n[bold]{text}[/]", highlight=False)  # wrapped at the console's width

    for w in result["worlds"]:
        heading(f"world seed {w['world_seed']} (world hash {w['world_hash'][:12]})")
        render_value(w["report"], fmt, width=console.width)
    summary = result["summary"]
    if not summary:
        return
    seeds = ", ".join(str(w["world_seed"]) for w in result["worlds"])
    heading(f"across world seeds {seeds}: CIs per world (a world draw is another population, not a seed)")
    games: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for e in summary:
        games.setdefault((e["regime"], e["model"], e["epsilon"]), []).append(e)
    for (regime, model, eps), entries in games.items():
        metric = entries[0]["metric"]
        f = "{:+,.0f}" if metric.startswith("prevented_eur") else "{:+.3f}"
        head = f"{regime} ({model}, ε = {eps}), v(S) = {metric}"
        covers = sorted({p["covers"] for e in entries for p in e["per_world"]})
        values = Sheet(
            title=f"{head}: Shapley value per world",
            columns=["fraud type", "partner", "world seed", "Shapley [95% CI]"],
            caption=f"Each CI covers one world's {' / '.join(covers)}; worlds are shown side by side, not pooled.",
            keys=3,
        )
        for e in entries:
            shapley = e["shapley"]
            for partner in dict.fromkeys(shapley["partner"]):
                for _, r in shapley[shapley["partner"] == partner].iterrows():
                    values.add_row(e["fraud_type"], partner, str(r["world_seed"]), _ci(r, f))
        print_sheet(values, fmt, console)
        coalitions = Sheet(
            title=f"{head}: coalitions per world",
            columns=["fraud type", "world seed", "most effective", "smallest near-best"],
            caption="Row 'stable?': the same coalition on every world seed (n/a: a fraud type not on every world).",
            keys=2,
        )
        for e in entries:
            for p in e["per_world"]:
                coalitions.add_row(e["fraud_type"], str(p["world_seed"]), p["best"], p["smallest_near_best"])
            coalitions.add_row(e["fraud_type"], "stable?", _stable(e["best_stable"]), _stable(e["smallest_stable"]))
        print_sheet(coalitions, fmt, console)
