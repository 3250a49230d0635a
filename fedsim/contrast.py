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


def primary_contrast(
    experiment: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    a: str | None = None,
    b: str | None = None,
    capacity: float | None = None,
) -> pd.DataFrame:
    """Paired A − B table per (model, ε) over the shared training seeds.

    Columns: model, seeds, n_seeds, epsilon, covers, clock, a, b, metric, fraud_type, value_a, value_b
    (means over seeds), diff, lo, hi (CI covering cases × seeds), p_a_gt_b, lo_cases, hi_cases.
    """
    from fedsim.evaluation.outcomes import clock_definition
    from fedsim.evaluation.seeds import compare_over_seeds
    from fedsim.experiment import load_experiment
    from fedsim.runner import Workspace, load_or_generate_world
    from fedsim.tracking import Tracker

    spec = load_experiment(experiment)
    if (a is None or b is None) and spec.primary is None:
        raise FedsimError("contrast: the experiment declares no `primary:` contrast; pass --a and --b")
    a = a or spec.primary.contrast[0]  # type: ignore[union-attr]
    b = b or spec.primary.contrast[1]  # type: ignore[union-attr]
    k = capacity if capacity is not None else (spec.primary.capacity if spec.primary else spec.metrics.capacities[0])
    root = Path(workdir)
    world = load_or_generate_world(spec, root / "worlds")
    ws = Workspace.build(spec, world, root / "artifacts")
    tracker = Tracker(tracking_uri, spec.name)
    runs = tracker.runs_table(spec.name)
    if runs.empty:
        raise FedsimError(f"contrast: experiment {spec.name!r} has no finished runs in this store")
    runs = runs[runs["world_hash"] == world.content_hash]
    rows: list[dict] = []
    runs_a, runs_b = _runs_of(runs, a), _runs_of(runs, b)
    with tempfile.TemporaryDirectory() as tmp:

        def scores_of(run: pd.Series) -> pd.DataFrame:
            local = tracker.download_artifact(run["run_id"], "scores/scores.parquet", tempfile.mkdtemp(dir=tmp))
            return pd.read_parquet(local)

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
                n_boot=spec.metrics.bootstrap,
                test_window_ts=(ws.split.test_start, ws.split.test_end),
                capacities=[k],
                latencies_h=[0.0],
                interdiction=[1.0],
            )
            first_a, first_b = matched[0][1], matched[0][2]
            context = {
                "model": model,
                "seeds": ",".join(str(seed) for seed, _, _ in matched),
                "n_seeds": len(matched),
                "epsilon": eps,
                "covers": c.covers,
                "clock": clock_definition(),
                "a": f"{a} ({first_a['coalition']})",
                "b": f"{b} ({first_b['coalition']})",
            }
            rows.extend(_headline_rows(c.table, k, context))
    if not rows:
        raise FedsimError(f"contrast: no {a!r} run has a {b!r} run with the same model, seed and ε")
    return pd.DataFrame(rows)


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
        caption=f"{first['clock']}. 'cases only' = the CI if training seeds are held fixed (for contrast).",
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
