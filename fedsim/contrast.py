"""`fedsim compare`: the experiment's pre-declared primary contrast as a paired comparison.

Reads only what the runs logged (their per-entity-day score artifacts) plus the experiment's cached world,
so the headline number can be recomputed at any time. Each (model, seed) of regime A is paired with the
run of regime B with the same model and seed; both are evaluated on the same cases with the same
bootstrap resamples (evaluation.md §3: CI of the difference and P(A > B)).
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
    """Paired A − B table: model, seed, coalitions, metric, fraud type, values, diff [lo, hi], P(A > B)."""
    from fedsim.evaluation import compare
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
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _, ra in _runs_of(runs, a).iterrows():
            match = _runs_of(runs, b)
            match = match[
                (match["model"] == ra["model"]) & (match["seed"] == ra["seed"]) & (match["epsilon"] == ra["epsilon"])
            ]
            if match.empty:
                continue
            rb = match.iloc[0]
            sa, sb = (
                pd.read_parquet(
                    tracker.download_artifact(r["run_id"], "scores/scores.parquet", tempfile.mkdtemp(dir=tmp))
                )
                for r in (ra, rb)
            )
            c = compare(
                sa,
                sb,
                ws.truth,
                partner_sizes=ws.partner_sizes,
                seed=0,
                n_boot=spec.metrics.bootstrap,
                test_window_ts=(ws.split.test_start, ws.split.test_end),
                capacities=[k],
                latencies_h=[0.0],
                interdiction=[1.0],
            )
            t = c.table
            for metric, where in HEADLINE:
                sel = t[t["metric"] == metric]
                if metric != "ap":
                    sel = sel[sel["k"] == k]
                for col, val in where.items():
                    sel = sel[sel[col] == val]
                for _, r in sel.iterrows():
                    rows.append(
                        {
                            "model": ra["model"],
                            "seed": ra["seed"],
                            "epsilon": ra["epsilon"],
                            "a": f"{a} ({ra['coalition']})",
                            "b": f"{b} ({rb['coalition']})",
                            "metric": metric if metric == "ap" else f"{metric}@{k:g}",
                            "fraud_type": r["fraud_type"],
                            "value_a": r["value_a"],
                            "value_b": r["value_b"],
                            "diff": r["diff"],
                            "lo": r["lo"],
                            "hi": r["hi"],
                            "p_a_gt_b": r["p_a_gt_b"],
                        }
                    )
    if not rows:
        raise FedsimError(f"contrast: no {a!r} run has a {b!r} run with the same model, seed and ε")
    return pd.DataFrame(rows)


def render_contrast(table: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    first = table.iloc[0]
    t = Table(title=f"paired contrast A − B: A = {first['a']}, B = {first['b']} (95% CI of the difference)")
    for col in ("model", "seed", "ε", "metric", "fraud type", "A", "B", "A − B [95% CI]", "P(A > B)"):
        t.add_column(col)
    for _, r in table.iterrows():
        fmt = "{:,.0f}" if r["metric"].startswith("prevented") else "{:.3f}"
        t.add_row(
            str(r["model"]),
            str(r["seed"]),
            str(r["epsilon"]),
            r["metric"],
            r["fraud_type"],
            fmt.format(r["value_a"]),
            fmt.format(r["value_b"]),
            f"{fmt.format(r['diff'])} [{fmt.format(r['lo'])}, {fmt.format(r['hi'])}]",
            f"{r['p_a_gt_b']:.2f}",
        )
    Console().print(t)
