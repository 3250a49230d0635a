"""`fedsim compare`: the experiment's pre-declared primary contrast as a paired comparison over seeds.

Reads only what the runs logged (their per-entity-day score artifacts) plus the experiment's cached world,
so the headline number can be recomputed at any time. For each (model, ε), every training seed that both
regimes ran gives a pair (A_s, B_s); the difference is the mean over those seeds and its CI covers the
test cases *and* the training seeds (:mod:`fedsim.evaluation.seeds`: paired case bootstrap shared by
all seeds + a t-distributed between-seed term; evaluation.md §3). Each row says which axes its CI
covers (``covers``) and which clock ED and € use (``clock``); ``lo_cases, hi_cases`` is the case-only
CI of the same mean, shown for contrast.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fedsim.errors import FedsimError
from fedsim.evaluation.alerts import CalibratedCapacity

if TYPE_CHECKING:  # annotations only: the runner loads torch, so it is imported where it is used
    from fedsim.evaluation.seeds import SeedComparison
    from fedsim.experiment import ExperimentSpec
    from fedsim.runner import Workspace

ScoresOf = Callable[[pd.Series], pd.DataFrame]
"""Reads a run's logged entity-day scores (the run's row of the runs table → its score table)."""

HEADLINE: tuple[tuple[str, dict[str, float]], ...] = (
    ("ed", {"h": 0.0}),
    ("prevented_eur", {"delta_h": 0.0, "rho": 1.0}),
    ("ap", {}),
)


def _runs_of(runs: pd.DataFrame, regime: str) -> pd.DataFrame:
    """The regime's runs on its largest coalition (the full chain of a lattice; among equal sizes the first by
    name), so that a seed is never paired with one of the lattice's smaller coalitions."""
    out = runs[runs["regime"] == regime]
    if out.empty:
        raise FedsimError(
            f"contrast: no finished {regime!r} run on this experiment's current world; run `fedsim run` first"
        )
    coalitions = sorted(set(out["coalition"].astype(str)), key=lambda c: (-len(c.split("+")), c))
    return out[out["coalition"].astype(str) == coalitions[0]]


DECOMPOSITION: tuple[tuple[str, str, str], ...] = (
    ("reports", "status_quo", "sharing labels (fraud reports)"),
    ("pooled", "reports", "sharing data on top of labels"),
    ("pooled", "status_quo", "pooled in total"),
)
"""status_quo → reports → pooled: the gain from sharing labels, then from sharing data (issue 9)."""


@dataclass
class _World:
    """One world of the contrast: its workspace, calibrated capacity and the runs made on it."""

    seed: int
    ws: Workspace
    capacity: CalibratedCapacity
    runs: pd.DataFrame

    def ks(self, scales: Sequence[float], uniform: float | None) -> tuple[list[float], dict[float, float]]:
        """Capacity keys of the evaluation and their labels (the multiple of the calibrated profile, or the
        uniform fraction itself)."""
        if uniform is not None:
            return [uniform], {uniform: uniform}
        ks = self.capacity.fractions(scales)
        return ks, dict(zip(ks, map(float, scales), strict=True))


def primary_contrast(
    experiment: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    a: str | None = None,
    b: str | None = None,
    capacity: float | None = None,
    scale: float | None = None,
    world_seeds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Paired A − B table per (model, ε) over the shared training seeds (and worlds), at ``scale`` × each world's
    calibrated capacity profile (default: the primary's ``capacity_scale``), or at a uniform fraction
    ``capacity`` of every partner's entities when given.

    ``world_seeds``: worlds of the experiment's config to combine (default: the experiment's own world seed);
    each world's seed comparison (:func:`fedsim.evaluation.seeds.compare_over_seeds`) is combined with
    :func:`fedsim.evaluation.seeds.combine_worlds`, so the CI covers cases × worlds × training seeds.

    Columns: model, seeds, n_seeds, world_seeds, n_worlds, epsilon, covers, clock, capacity, k (the multiple of
    the calibrated capacity, or the uniform fraction), a, b, metric, fraud_type, value_a, value_b (means over
    seeds and worlds), diff, lo, hi, p_a_gt_b, lo_cases, hi_cases (one world only).
    ``table.attrs``: ``warnings`` (e.g. fewer training seeds than the primary's ``min_seeds``), ``mc_error``
    and, when the experiment runs status_quo, reports and pooled, ``decomposition`` (each step of
    :data:`DECOMPOSITION`) and ``capacity_curve`` (ED(0) of each regime and each step's difference over
    :data:`fedsim.evaluation.alerts.CAPACITY_CURVE_SCALES` × calibrated). :func:`contrast_payload` puts all
    of it in one JSON-able mapping.
    """
    from fedsim.evaluation.alerts import CAPACITY_CURVE_SCALES
    from fedsim.evaluation.seeds import mc_error_note
    from fedsim.experiment import load_experiment
    from fedsim.tracking import Tracker

    spec = load_experiment(experiment)
    if (a is None or b is None) and spec.primary is None:
        raise FedsimError("contrast: the experiment declares no `primary:` contrast; pass --a and --b")
    a = a or spec.primary.contrast[0]  # type: ignore[union-attr]
    b = b or spec.primary.contrast[1]  # type: ignore[union-attr]
    scale = scale if scale is not None else (spec.primary.capacity_scale if spec.primary else 1.0)
    min_seeds = spec.primary.min_seeds if spec.primary else 5
    tracker = Tracker(tracking_uri, spec.name)
    runs = tracker.runs_table(spec.name)
    if runs.empty:
        raise FedsimError(f"contrast: experiment {spec.name!r} has no finished runs in this store")
    worlds = [load_world(spec, seed, Path(workdir), runs) for seed in (world_seeds or [spec.world.seed])]
    with tempfile.TemporaryDirectory() as tmp:

        def scores_of(run: pd.Series) -> pd.DataFrame:
            local = tracker.download_artifact(run["run_id"], "scores/scores.parquet", tempfile.mkdtemp(dir=tmp))
            return pd.read_parquet(local)

        def contrast(ra: str, rb: str, scales: Sequence[float], uniform: float | None) -> list[dict]:
            return contrast_rows(worlds, ra, rb, spec.metrics.bootstrap, scales, uniform, scores_of)

        table = pd.DataFrame(contrast(a, b, [scale], capacity))
        if table.empty:
            raise FedsimError(f"contrast: no {a!r} run has a {b!r} run with the same model, seed and ε")
        label = f"{capacity:g} of entities/day, every partner" if capacity is not None else _label(worlds, scale)
        table["capacity"] = label
        table.attrs["warnings"] = _seed_warnings(table, min_seeds)
        table.attrs["mc_error"] = mc_error_note(spec.metrics.bootstrap)
        have = set.intersection(*[set(w.runs["regime"]) for w in worlds])
        if capacity is None and {"status_quo", "reports", "pooled"} <= have:
            steps = [{**r, "step": why} for ra, rb, why in DECOMPOSITION for r in contrast(ra, rb, [scale], None)]
            table.attrs["decomposition"] = pd.DataFrame(steps)
            # the largest scale every world can take (k ≤ 1)
            top = min(1.0 / w.capacity.reference for w in worlds)
            scales = [sc for sc in CAPACITY_CURVE_SCALES if sc <= top]
            curve = [{**r, "step": why} for ra, rb, why in DECOMPOSITION for r in contrast(ra, rb, scales, None)]
            table.attrs["capacity_curve"] = _curve_frame(pd.DataFrame(curve))
    return table


def load_world(spec: ExperimentSpec, seed: int, root: Path, runs: pd.DataFrame) -> _World:
    """The experiment's world at world seed ``seed`` (cached or generated) and the runs made on it."""
    from fedsim.runner import Workspace, load_or_generate_world, with_world_seed

    spec_w = with_world_seed(spec, seed)
    world = load_or_generate_world(spec_w, root / "worlds")
    ws = Workspace.build(spec_w, world, root / "artifacts")
    mine = runs[runs["world_hash"] == world.content_hash]
    if mine.empty:
        raise FedsimError(
            f"contrast: no finished run on world seed {seed} of this experiment; run `fedsim run --world-seed {seed}`"
        )
    return _World(seed=seed, ws=ws, capacity=ws.capacity(), runs=mine)


def _label(worlds: list[_World], scale: float) -> str:
    """The capacity in words; with several worlds, their prevalence multipliers are listed."""
    if len(worlds) == 1:
        return worlds[0].capacity.label(scale)
    mults = ", ".join(f"{w.capacity.multiplier:.3g}" for w in worlds)
    return (
        worlds[0]
        .capacity.label(scale)
        .replace(
            f"prevalence multiplier {worlds[0].capacity.multiplier:.3g}",
            f"each world's prevalence multiplier ({mults})",
        )
    )


def _seed_warnings(table: pd.DataFrame, min_seeds: int) -> list[str]:
    """A loud line when the primary contrast rests on fewer training seeds than it should (issue 9: ≥ 5)."""
    fewest = int(table["n_seeds"].min())
    if fewest >= min_seeds:
        return []
    return [
        f"WARNING: only {fewest} training seed(s) per regime (the primary contrast needs ≥ {min_seeds}): the seed "
        "term of the CI is weak or absent; add seeds to the experiment and rerun `fedsim run`."
    ]


def contrast_rows(
    worlds: list[_World],
    a: str,
    b: str,
    n_boot: int,
    scales: Sequence[float],
    uniform: float | None,
    scores_of: ScoresOf,
) -> list[dict]:
    """Headline rows of A − B per (model, ε) over the training seeds both ran, in every world, at each capacity."""
    from fedsim.evaluation.outcomes import clock_definition
    from fedsim.evaluation.seeds import combine_worlds

    per_world = [_world_comparisons(w, a, b, n_boot, scales, uniform, scores_of) for w in worlds]
    rows: list[dict] = []
    for cell in sorted(set.intersection(*[set(p) for p in per_world]), key=str):
        parts = [p[cell] for p in per_world]
        c = combine_worlds([comparison for comparison, _ in parts], seed=0, label=f"{a} − {b}")
        seeds = [seed for _, context in parts for seed in context["seeds"]]
        first = parts[0][1]
        context = {
            "model": cell[0],
            "seeds": ",".join(dict.fromkeys(str(s) for s in seeds)),
            "n_seeds": min(len(context["seeds"]) for _, context in parts),
            "world_seeds": ",".join(str(w.seed) for w in worlds),
            "n_worlds": len(worlds),
            "epsilon": cell[1],
            "covers": c.covers,
            "clock": clock_definition(),
            "a": f"{a} ({first['coalition_a']})",
            "b": f"{b} ({first['coalition_b']})",
        }
        labels = [uniform] if uniform is not None else list(map(float, scales))
        for k in labels:
            rows.extend({**r, "k": k} for r in _headline_rows(c.table, k, context))
    return rows


def _world_comparisons(
    world: _World,
    a: str,
    b: str,
    n_boot: int,
    scales: Sequence[float],
    uniform: float | None,
    scores_of: ScoresOf,
) -> dict[tuple[object, object], tuple[SeedComparison, dict]]:
    """(model, ε) → (seed comparison A − B on this world with k relabelled to the capacity labels, context)."""
    from fedsim.evaluation.seeds import compare_over_seeds

    ws = world.ws
    ks, to_label = world.ks(scales, uniform)
    runs_a, runs_b = _runs_of(world.runs, a), _runs_of(world.runs, b)
    out: dict[tuple[object, object], tuple[SeedComparison, dict]] = {}
    for (model, eps), group in runs_a.groupby(["model", "epsilon"], sort=True, dropna=False):
        matched = _pair_by_seed(group, runs_b[(runs_b["model"] == model) & (runs_b["epsilon"] == eps)])
        if not matched:
            continue
        c = compare_over_seeds(
            [(scores_of(ra), scores_of(rb)) for _, ra, rb in matched],
            ws.truth,
            seed_labels=[seed for seed, _, _ in matched],
            partner_sizes=ws.partner_sizes,
            seed=0,
            n_boot=n_boot,
            test_window_ts=(ws.split.test_start, ws.split.test_end),
            capacities=ks,
            latencies_h=[0.0],
            interdiction=[1.0],
            capacity_weights=None if uniform is not None else world.capacity.weights,
            label=f"{a} − {b}",
        )
        context = {
            "seeds": [seed for seed, _, _ in matched],
            "coalition_a": matched[0][1]["coalition"],
            "coalition_b": matched[0][2]["coalition"],
        }
        out[(model, eps)] = (c.with_capacity_labels(to_label), context)
    return out


def _curve_frame(curve: pd.DataFrame) -> pd.DataFrame:
    """ED(0), all fraud types, per multiple of the calibrated capacity: one line per regime and per step."""
    if curve.empty:
        return curve
    ed = curve[(curve["metric"] == "ed_h0") & (curve["fraud_type"] == "all")].copy()
    ed["scale"] = ed["k"]
    return ed[["model", "epsilon", "step", "a", "b", "scale", "value_a", "value_b", "diff", "lo", "hi", "covers"]]


def _pair_by_seed(runs_a: pd.DataFrame, runs_b: pd.DataFrame) -> list[tuple[object, pd.Series, pd.Series]]:
    """(seed, run A, run B) for every training seed both regimes ran, in seed order."""
    out = []
    for seed, ra in runs_a.drop_duplicates("seed").sort_values("seed").set_index("seed", drop=False).iterrows():
        match = runs_b[runs_b["seed"] == seed]
        if not match.empty:
            out.append((seed, ra, match.iloc[0]))
    return out


HEADLINE_NAMES = {"ed": "ed_h0", "prevented_eur": "prevented_eur_d0_r1.0", "ap": "ap"}
"""Names of the headline metrics in the contrast table (as the runs log them, without the capacity tag)."""


def _headline_rows(table: pd.DataFrame, k: float, context: dict) -> list[dict]:
    rows = []
    for metric, where in HEADLINE:
        sel = table[table["metric"] == metric]
        if metric != "ap":
            sel = sel[sel["k"] == k]
        for col, val in where.items():
            sel = sel[sel[col] == val]
        for _, r in sel.iterrows():
            rows.append(
                {
                    **context,
                    "metric": HEADLINE_NAMES[metric],
                    "fraud_type": r["fraud_type"],
                    "value_a": r["value_a"],
                    "value_b": r["value_b"],
                    "diff": r["diff"],
                    "lo": r["lo"],
                    "hi": r["hi"],
                    "p_a_gt_b": r["p_a_gt_b"],
                    "lo_cases": r.get("lo_cases", math.nan),
                    "hi_cases": r.get("hi_cases", math.nan),
                }
            )
    return rows


def contrast_payload(table: pd.DataFrame) -> dict[str, Any]:
    """Everything `fedsim compare` shows, JSON-able: the contrast rows, the decomposition, the capacity curve,
    the warnings and the Monte-Carlo error of the CI endpoints."""
    import json

    def records(frame: pd.DataFrame | None) -> list[dict]:
        return [] if frame is None or frame.empty else json.loads(frame.to_json(orient="records"))

    return {
        "contrast": records(table),
        "decomposition": records(table.attrs.get("decomposition")),
        "capacity_curve": records(table.attrs.get("capacity_curve")),
        "warnings": list(table.attrs.get("warnings", [])),
        "mc_error": table.attrs.get("mc_error", ""),
    }


def render_contrast(table: pd.DataFrame, fmt: str = "table") -> None:
    """Print the contrast on stdout (warnings on stderr); the header states what the CI covers, the worlds, the
    capacity and the clock; metric names state their Δ, ρ and horizon. Labels are never cut (:mod:`fedsim.sheet`)."""
    from rich.console import Console

    from fedsim.sheet import Sheet, print_sheet
    from fedsim.summary import metric_label

    err = Console(stderr=True)
    for line in table.attrs.get("warnings", []):
        err.print(f"[bold red]{line}[/]", highlight=False)
    first = table.iloc[0]
    covers = " / ".join(dict.fromkeys(table["covers"]))
    worlds = f"world seed(s) {first['world_seeds']}" if "world_seeds" in table else "one world"
    sheet = Sheet(
        title=f"paired contrast A − B: A = {first['a']}, B = {first['b']} — mean over training seeds and worlds "
        f"({worlds}); 95% CI covers {covers}",
        columns=["model", "seeds", "ε", "metric", "fraud type", "A", "B", "A − B [95% CI]", "cases only", "P(A > B)"],
        caption=f"capacity: {first['capacity']}. {first['clock']}. 'cases only' = the CI if training seeds are "
        f"held fixed (one world only, for contrast). {table.attrs.get('mc_error', '')}",
        keys=5,
    )
    for _, r in table.iterrows():
        f = "{:,.0f}" if r["metric"].startswith("prevented") else "{:.3f}"
        cases_only = "–" if pd.isna(r["lo_cases"]) else f"[{f.format(r['lo_cases'])}, {f.format(r['hi_cases'])}]"
        sheet.add_row(
            str(r["model"]),
            str(r["seeds"]),
            str(r["epsilon"]),
            metric_label(r["metric"]),
            r["fraud_type"],
            f.format(r["value_a"]),
            f.format(r["value_b"]),
            f"{f.format(r['diff'])} [{f.format(r['lo'])}, {f.format(r['hi'])}]",
            cases_only,
            f"{r['p_a_gt_b']:.2f}",
        )
    print_sheet(sheet, fmt)
    for line in table.attrs.get("warnings", []):  # again below the table, where the eye lands
        err.print(f"[bold red]{line}[/]", highlight=False)
    _render_decomposition(table, fmt)


def _render_decomposition(table: pd.DataFrame, fmt: str) -> None:
    """status_quo → reports → pooled at the calibrated capacity, and the capacity curve (ED(0), all types)."""
    from fedsim.sheet import Sheet, print_sheet
    from fedsim.summary import metric_label

    steps = table.attrs.get("decomposition")
    if steps is None or steps.empty:
        return
    sheet = Sheet(
        title="decomposition: labels (reports − status quo), then data (pooled − reports); 95% CI as above",
        columns=["model", "step", "A − B", "metric", "fraud type", "A", "B", "A − B [95% CI]", "P(A > B)"],
        keys=4,
    )
    for _, r in steps[steps["fraud_type"] == "all"].iterrows():
        f = "{:,.0f}" if r["metric"].startswith("prevented") else "{:.3f}"
        sheet.add_row(
            str(r["model"]),
            r["step"],
            f"{r['a'].split(' ')[0]} − {r['b'].split(' ')[0]}",
            metric_label(r["metric"]),
            r["fraud_type"],
            f.format(r["value_a"]),
            f.format(r["value_b"]),
            f"{f.format(r['diff'])} [{f.format(r['lo'])}, {f.format(r['hi'])}]",
            f"{r['p_a_gt_b']:.2f}",
        )
    print_sheet(sheet, fmt)
    curve = table.attrs.get("capacity_curve")
    if curve is None or curve.empty:
        return
    scales = sorted(curve["scale"].unique())
    c = Sheet(
        title="capacity curve: ED(0), all fraud types, by multiple of the calibrated capacity",
        columns=["model", "line", *[f"×{sc:g}" for sc in scales]],
        keys=2,
    )
    for model, g in curve.groupby("model", sort=True):
        lines: dict[str, dict[float, str]] = {}
        for _, r in g.iterrows():
            lines.setdefault(r["a"].split(" ")[0], {})[r["scale"]] = f"{r['value_a']:.3f}"
            lines.setdefault(r["b"].split(" ")[0], {})[r["scale"]] = f"{r['value_b']:.3f}"
            name = f"{r['step']}: {r['a'].split(' ')[0]} − {r['b'].split(' ')[0]}"
            lines.setdefault(name, {})[r["scale"]] = f"{r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
        for name, vals in lines.items():
            c.add_row(str(model), name, *[vals.get(sc, "") for sc in scales])
    print_sheet(c, fmt)
