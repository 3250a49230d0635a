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

import tempfile
from pathlib import Path

import pandas as pd

from fedsim.errors import FedsimError

HEADLINE: tuple[tuple[str, dict[str, float]], ...] = (
    ("ed", {"h": 0.0}),
    ("prevented_eur", {"delta_h": 0.0, "rho": 1.0}),
    ("ap", {}),
)


def _runs_of(runs: pd.DataFrame, regime: str) -> pd.DataFrame:
    out = runs[runs["regime"] == regime]
    if out.empty:
        raise FedsimError(
            f"contrast: no finished {regime!r} run on this experiment's current world; run `fedsim run` first"
        )
    return out


DECOMPOSITION: tuple[tuple[str, str, str], ...] = (
    ("reports", "status_quo", "sharing labels (fraud reports)"),
    ("pooled", "reports", "sharing data on top of labels"),
    ("pooled", "status_quo", "pooled in total"),
)
"""status_quo → reports → pooled: the gain from sharing labels, then from sharing data (issue 9)."""


def world_capacity(ws: object, world: object) -> tuple[float, dict[str, float], float]:
    """The calibrated capacity profile of a world: (reference k, partner → w_p, effective multiplier).

    Per-kind alerts per 100k customers per day (:data:`fedsim.evaluation.alerts.ALERTS_PER_100K_PER_DAY`)
    times the world's case-weighted prevalence multiplier (:func:`fedsim.evaluation.alerts.effective_multiplier`).
    """
    from fedsim.evaluation.alerts import calibrated_fractions, capacity_profile, effective_multiplier

    cases = ws.truth["cases"]  # type: ignore[attr-defined]
    fraud = world.config.fraud  # type: ignore[attr-defined]
    mult = effective_multiplier(
        cases["fraud_type"].value_counts().to_dict(), {t: c.multiplier for t, c in fraud.items()}
    )
    kinds = {p: f.block for p, f in ws.features.items()}  # type: ignore[attr-defined]
    k, weights = capacity_profile(calibrated_fractions(kinds, multiplier=mult))
    return k, weights, mult


def primary_contrast(
    experiment: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    a: str | None = None,
    b: str | None = None,
    capacity: float | None = None,
) -> pd.DataFrame:
    """Paired A − B table per (model, ε) over the shared training seeds, at the calibrated capacity profile
    (or a uniform fraction ``capacity`` of every partner's entities when given).

    Columns: model, seeds, n_seeds, epsilon, covers, clock, capacity, a, b, metric, fraud_type, value_a, value_b
    (means over seeds), diff, lo, hi (CI covering cases × seeds), p_a_gt_b, lo_cases, hi_cases.
    When the experiment runs status_quo, reports and pooled, ``table.attrs`` also carries ``decomposition``
    (each step of :data:`DECOMPOSITION` at the same capacity) and ``capacity_curve`` (ED(0) of each regime
    and the steps' differences over :data:`fedsim.evaluation.alerts.CAPACITY_CURVE_SCALES` × calibrated).
    """
    from fedsim.evaluation.alerts import CAPACITY_CURVE_SCALES
    from fedsim.experiment import load_experiment
    from fedsim.runner import Workspace, load_or_generate_world
    from fedsim.tracking import Tracker

    spec = load_experiment(experiment)
    if (a is None or b is None) and spec.primary is None:
        raise FedsimError("contrast: the experiment declares no `primary:` contrast; pass --a and --b")
    a = a or spec.primary.contrast[0]  # type: ignore[union-attr]
    b = b or spec.primary.contrast[1]  # type: ignore[union-attr]
    root = Path(workdir)
    world = load_or_generate_world(spec, root / "worlds")
    ws = Workspace.build(spec, world, root / "artifacts")
    k_cal, weights, mult = world_capacity(ws, world)
    if capacity is not None:
        k, w, label = capacity, None, f"{capacity:g} of entities/day, every partner"
    else:
        k, w, label = k_cal, weights, _calibrated_label(mult)
    tracker = Tracker(tracking_uri, spec.name)
    runs = tracker.runs_table(spec.name)
    if runs.empty:
        raise FedsimError(f"contrast: experiment {spec.name!r} has no finished runs in this store")
    runs = runs[runs["world_hash"] == world.content_hash]
    with tempfile.TemporaryDirectory() as tmp:

        def scores_of(run: pd.Series) -> pd.DataFrame:
            local = tracker.download_artifact(run["run_id"], "scores/scores.parquet", tempfile.mkdtemp(dir=tmp))
            return pd.read_parquet(local)

        def contrast(ra: str, rb: str, ks: list[float], cap_weights: dict[str, float] | None) -> list[dict]:
            return _contrast_rows(
                _runs_of(runs, ra), _runs_of(runs, rb), ra, rb, ws, spec.metrics.bootstrap, ks, cap_weights, scores_of
            )

        rows = [{**r, "capacity": label} for r in contrast(a, b, [k], w)]
        if not rows:
            raise FedsimError(f"contrast: no {a!r} run has a {b!r} run with the same model, seed and ε")
        table = pd.DataFrame(rows)
        if capacity is None and {"status_quo", "reports", "pooled"} <= set(runs["regime"]):
            steps = [{**r, "step": why} for ra, rb, why in DECOMPOSITION for r in contrast(ra, rb, [k_cal], weights)]
            table.attrs["decomposition"] = pd.DataFrame(steps)
            scales = [s for s in CAPACITY_CURVE_SCALES if s * k_cal <= 1.0]
            curve = []
            for ra, rb, why in DECOMPOSITION:
                for r in contrast(ra, rb, [s * k_cal for s in scales], weights):
                    curve.append({**r, "step": why})
            table.attrs["capacity_curve"] = _curve_frame(pd.DataFrame(curve), k_cal)
    return table


def _calibrated_label(mult: float) -> str:
    from fedsim.evaluation.alerts import ALERTS_PER_100K_PER_DAY

    rates = ", ".join(f"{kind} {r:g}" for kind, r in ALERTS_PER_100K_PER_DAY.items())
    return f"calibrated: alerts/day per 100k customers {rates} (× world multiplier {mult:.1f})"


def _contrast_rows(
    runs_a: pd.DataFrame,
    runs_b: pd.DataFrame,
    a: str,
    b: str,
    ws: object,
    n_boot: int,
    capacities: list[float],
    weights: dict[str, float] | None,
    scores_of: object,
) -> list[dict]:
    """Headline rows of A − B per (model, ε) over the training seeds both ran, at each capacity k."""
    from fedsim.evaluation.outcomes import clock_definition
    from fedsim.evaluation.seeds import compare_over_seeds

    rows: list[dict] = []
    for (model, eps), group in runs_a.groupby(["model", "epsilon"], sort=True, dropna=False):
        matched = _pair_by_seed(group, runs_b[(runs_b["model"] == model) & (runs_b["epsilon"] == eps)])
        if not matched:
            continue
        c = compare_over_seeds(
            [(scores_of(ra), scores_of(rb)) for _, ra, rb in matched],  # type: ignore[operator]
            ws.truth,  # type: ignore[attr-defined]
            seed_labels=[seed for seed, _, _ in matched],
            partner_sizes=ws.partner_sizes,  # type: ignore[attr-defined]
            seed=0,
            n_boot=n_boot,
            test_window_ts=(ws.split.test_start, ws.split.test_end),  # type: ignore[attr-defined]
            capacities=capacities,
            latencies_h=[0.0],
            interdiction=[1.0],
            capacity_weights=weights,
        )
        context = {
            "model": model,
            "seeds": ",".join(str(seed) for seed, _, _ in matched),
            "n_seeds": len(matched),
            "epsilon": eps,
            "covers": c.covers,
            "clock": clock_definition(),
            "a": f"{a} ({matched[0][1]['coalition']})",
            "b": f"{b} ({matched[0][2]['coalition']})",
        }
        for k in capacities:
            rows.extend({**r, "k": k} for r in _headline_rows(c.table, k, context))
    return rows


def _curve_frame(curve: pd.DataFrame, k_cal: float) -> pd.DataFrame:
    """ED(0), all fraud types, per capacity: one line per regime and per step's difference."""
    if curve.empty:
        return curve
    ed = curve[(curve["metric"].str.startswith("ed@")) & (curve["fraud_type"] == "all")].copy()
    ed["scale"] = ed["k"] / k_cal
    return ed[["model", "epsilon", "step", "a", "b", "scale", "k", "value_a", "value_b", "diff", "lo", "hi"]]


def _pair_by_seed(runs_a: pd.DataFrame, runs_b: pd.DataFrame) -> list[tuple[object, pd.Series, pd.Series]]:
    """(seed, run A, run B) for every training seed both regimes ran, in seed order."""
    out = []
    for seed, ra in runs_a.drop_duplicates("seed").sort_values("seed").set_index("seed", drop=False).iterrows():
        match = runs_b[runs_b["seed"] == seed]
        if not match.empty:
            out.append((seed, ra, match.iloc[0]))
    return out


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
                    "metric": metric if metric == "ap" else f"{metric}@{k:g}",
                    "fraud_type": r["fraud_type"],
                    "value_a": r["value_a"],
                    "value_b": r["value_b"],
                    "diff": r["diff"],
                    "lo": r["lo"],
                    "hi": r["hi"],
                    "p_a_gt_b": r["p_a_gt_b"],
                    "lo_cases": r["lo_cases"],
                    "hi_cases": r["hi_cases"],
                }
            )
    return rows


def render_contrast(table: pd.DataFrame) -> None:
    """Print the contrast; the header states what the CI covers and the clock ED and € use."""
    from rich.console import Console
    from rich.table import Table

    first = table.iloc[0]
    covers = " / ".join(dict.fromkeys(table["covers"]))
    t = Table(
        title=f"paired contrast A − B: A = {first['a']}, B = {first['b']} — mean over training seeds; "
        f"95% CI covers {covers}",
        caption=f"capacity: {first['capacity']}. {first['clock']}. 'cases only' = the CI if training seeds are "
        "held fixed (for contrast).",
    )
    for col in ("model", "seeds", "ε", "metric", "fraud type", "A", "B", "A − B [95% CI]", "cases only", "P(A > B)"):
        t.add_column(col)
    for _, r in table.iterrows():
        fmt = "{:,.0f}" if r["metric"].startswith("prevented") else "{:.3f}"
        t.add_row(
            str(r["model"]),
            str(r["seeds"]),
            str(r["epsilon"]),
            r["metric"],
            r["fraud_type"],
            fmt.format(r["value_a"]),
            fmt.format(r["value_b"]),
            f"{fmt.format(r['diff'])} [{fmt.format(r['lo'])}, {fmt.format(r['hi'])}]",
            f"[{fmt.format(r['lo_cases'])}, {fmt.format(r['hi_cases'])}]",
            f"{r['p_a_gt_b']:.2f}",
        )
    Console().print(t)
    if int(table["n_seeds"].min()) < 3:
        Console().print(
            "[yellow]note:[/] fewer than 3 training seeds per regime — the seed term of the CI is weak or absent; "
            "evaluation.md §3 asks for ≥ 5 seeds on the primary contrast."
        )
    _render_decomposition(table)


def _render_decomposition(table: pd.DataFrame) -> None:
    """status_quo → reports → pooled at the calibrated capacity, and the capacity curve (ED(0), all types)."""
    from rich.console import Console
    from rich.table import Table

    steps = table.attrs.get("decomposition")
    if steps is None or steps.empty:
        return
    t = Table(title="decomposition: labels (reports − status quo), then data (pooled − reports); 95% CI as above")
    for col in ("model", "step", "A − B", "metric", "fraud type", "A", "B", "A − B [95% CI]", "P(A > B)"):
        t.add_column(col)
    for _, r in steps[steps["fraud_type"] == "all"].iterrows():
        fmt = "{:,.0f}" if r["metric"].startswith("prevented") else "{:.3f}"
        t.add_row(
            str(r["model"]),
            r["step"],
            f"{r['a'].split(' ')[0]} − {r['b'].split(' ')[0]}",
            r["metric"],
            r["fraud_type"],
            fmt.format(r["value_a"]),
            fmt.format(r["value_b"]),
            f"{fmt.format(r['diff'])} [{fmt.format(r['lo'])}, {fmt.format(r['hi'])}]",
            f"{r['p_a_gt_b']:.2f}",
        )
    Console().print(t)
    curve = table.attrs.get("capacity_curve")
    if curve is None or curve.empty:
        return
    c = Table(title="capacity curve: ED(0), all fraud types, by multiple of the calibrated capacity")
    c.add_column("model")
    c.add_column("line")
    scales = sorted(curve["scale"].unique())
    for sc in scales:
        c.add_column(f"×{sc:g}")
    for model, g in curve.groupby("model", sort=True):
        lines: dict[str, dict[float, str]] = {}
        for _, r in g.iterrows():
            lines.setdefault(r["a"].split(" ")[0], {})[r["scale"]] = f"{r['value_a']:.3f}"
            lines.setdefault(r["b"].split(" ")[0], {})[r["scale"]] = f"{r['value_b']:.3f}"
            name = f"{r['step']}: {r['a'].split(' ')[0]} − {r['b'].split(' ')[0]}"
            lines.setdefault(name, {})[r["scale"]] = f"{r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}]"
        for name, vals in lines.items():
            c.add_row(str(model), name, *[vals.get(sc, "") for sc in scales])
    Console().print(c)
