"""`fedsim runs`: one row per finished run with the primary outcomes and their 95% CIs.

Reads only the tracking store, so it can be re-rendered at any time.
"""

from __future__ import annotations

import math

import pandas as pd

PRIMARY = (("ed_h0", "caught before money left"), ("prevented_eur_d0_r1.0", "€ prevented"), ("ap", "AP"))


def _metric(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name].astype(float) if name in df else pd.Series(math.nan, index=df.index)


def runs_summary(
    experiment_name: str, *, tracking_uri: str | None = None, capacity: float = 0.005, all_worlds: bool = False
) -> pd.DataFrame:
    """Tidy per-run table: regime, coalition, model, seed, ε and primary outcomes with lo/hi.

    By default only the runs on the newest world of the experiment (the world of its latest run), so
    runs made on an older version of a world never sit beside current ones unnoticed."""
    from fedsim.tracking import Tracker

    df = Tracker(tracking_uri, experiment_name).runs_table(experiment_name)
    if df.empty:
        return pd.DataFrame()
    if not all_worlds and "world_hash" in df:
        newest = df.sort_values("start_time")["world_hash"].iloc[-1]
        df = df[df["world_hash"] == newest]
    k = f"{capacity:g}"
    out = pd.DataFrame(
        {
            "run_id": df.get("run_id", pd.Series(index=df.index, dtype=str)),
            "regime": df.get("regime"),
            "coalition": df.get("coalition"),
            "model": df.get("model"),
            "seed": df.get("seed"),
            "epsilon": df.get("epsilon"),
            "world_hash": df.get("world_hash"),
        }
    )
    for name, _ in PRIMARY:
        key = name if name == "ap" else f"{name}_k{k}"
        for suffix in ("", "_lo", "_hi"):
            out[f"{key}{suffix}"] = _metric(df, key + suffix).to_numpy()
    out["n_cases"] = _metric(df, "n_cases").to_numpy()
    return out.sort_values(["regime", "coalition", "model", "seed"]).reset_index(drop=True)


def _fmt(v: float, lo: float, hi: float, *, pct: bool = False, eur: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if pct:
        return f"{v:.0%} [{lo:.0%}, {hi:.0%}]"
    if eur:
        return f"€{v:,.0f} [{lo:,.0f}, {hi:,.0f}]"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def render_runs(table: pd.DataFrame, experiment_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if table.empty:
        console.print(f"No finished runs for experiment {experiment_name!r} in this store.")
        return
    ed = next(c for c in table.columns if c.startswith("ed_h0_k") and not c.endswith(("_lo", "_hi")))
    pv = next(c for c in table.columns if c.startswith("prevented_eur") and not c.endswith(("_lo", "_hi")))
    worlds = ", ".join(sorted({str(w)[:12] for w in table["world_hash"].dropna()}))
    t = Table(title=f"{experiment_name}: primary outcomes (95% CI, case-level cluster bootstrap); world {worlds}")
    for col in ("regime", "coalition", "model", "seed", "ε"):
        t.add_column(col)
    t.add_column(f"caught before money left ({ed.split('_k')[1]} capacity)")
    t.add_column("€ prevented")
    t.add_column("AP")
    for _, r in table.iterrows():
        t.add_row(
            str(r["regime"]),
            str(r["coalition"]).replace("+", " + "),
            str(r["model"]),
            str(r["seed"]),
            str(r["epsilon"]),
            _fmt(r[ed], r[f"{ed}_lo"], r[f"{ed}_hi"], pct=True),
            _fmt(r[pv], r[f"{pv}_lo"], r[f"{pv}_hi"], eur=True),
            _fmt(r["ap"], r["ap_lo"], r["ap_hi"]),
        )
    console.print(t)


def privacy_curve(
    experiment_name: str, *, tracking_uri: str | None = None, capacity: float = 0.005, all_worlds: bool = False
) -> pd.DataFrame | None:
    """The privacy–utility table (ε against the primary outcomes, with CIs), or None without a DP run."""
    from fedsim.evaluation.privacy_utility import privacy_utility_table
    from fedsim.tracking import Tracker

    df = Tracker(tracking_uri, experiment_name).runs_table(experiment_name)
    if df.empty or "epsilon" not in df or (df["epsilon"].astype(str) == "inf").all():
        return None
    if not all_worlds and "world_hash" in df:
        df = df[df["world_hash"] == df.sort_values("start_time")["world_hash"].iloc[-1]]
    return privacy_utility_table(df, capacity=capacity)


def render_privacy_curve(curve: pd.DataFrame) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="privacy–utility: outcomes against ε (ε = inf is the non-private run)")
    for col in curve.columns:
        t.add_column(str(col))
    for _, r in curve.iterrows():
        t.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r])
    Console().print(t)
