"""`fedsim runs`: the primary outcomes per configuration, over training seeds, with 95% CIs.

Reads only the tracking store, so it can be re-rendered at any time. :func:`runs_summary` is one row
per finished run (each with its case-only CI); :func:`seed_summary` — what `fedsim runs` shows — is one
row per (regime, coalition, model, ε): the mean over its training seeds with a CI that covers cases ×
seeds (:func:`fedsim.evaluation.seeds.interval_from_runs`). The header states that and the clock.
"""

from __future__ import annotations

import math
import re

import pandas as pd

from fedsim.sheet import Sheet, print_sheet, stdout_console

PRIMARY = (("ed_h0", "caught before money left"), ("prevented_eur_d0_r1.0", "€ prevented"), ("ap", "AP"))


def _metric(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name].astype(float) if name in df else pd.Series(math.nan, index=df.index)


def capacity_suffix(*, scale: float = 1.0, capacity: float | None = None) -> str:
    """The capacity tag of logged metric names: ``_cal<scale>`` (a multiple of the calibrated capacity, what
    runs log) or, for stores written before the calibrated capacity, ``_k<fraction>``."""
    return f"_k{capacity:g}" if capacity is not None else f"_cal{scale:g}"


def runs_summary(
    experiment_name: str,
    *,
    tracking_uri: str | None = None,
    scale: float = 1.0,
    capacity: float | None = None,
    all_worlds: bool = False,
) -> pd.DataFrame:
    """Tidy per-run table: regime, coalition, model, seed, ε and primary outcomes with lo/hi.

    The outcomes are those at ``scale`` × the calibrated alert capacity (``capacity``: a uniform fraction, the
    names of older stores). By default only the runs on the newest world of the experiment (the world of its
    latest run), so runs made on an older version of a world never sit beside current ones unnoticed."""
    from fedsim.tracking import Tracker

    df = Tracker(tracking_uri, experiment_name).runs_table(experiment_name)
    if df.empty:
        return pd.DataFrame()
    if not all_worlds and "world_hash" in df:
        newest = df.sort_values("start_time")["world_hash"].iloc[-1]
        df = df[df["world_hash"] == newest]
    tag = capacity_suffix(scale=scale, capacity=capacity)
    out = pd.DataFrame(
        {
            "run_id": df.get("run_id", pd.Series(index=df.index, dtype=str)),
            "regime": df.get("regime"),
            "coalition": df.get("coalition"),
            "model": df.get("model"),
            "seed": df.get("seed"),
            "epsilon": df.get("epsilon"),
            "world_hash": df.get("world_hash"),
            "capacity": df.get("capacity", "uniform fraction (run logged before calibration)"),
        }
    )
    for name, _ in PRIMARY:
        key = name if name == "ap" else f"{name}{tag}"
        for bound in ("", "_lo", "_hi"):
            out[f"{key}{bound}"] = _metric(df, key + bound).to_numpy()
    out["n_cases"] = _metric(df, "n_cases").to_numpy()
    for column, values in person_privacy_columns(df).items():
        out[column] = values.to_numpy()
    return out.sort_values(["regime", "coalition", "model", "seed"]).reset_index(drop=True)


PERSON_METRICS = {
    "epsilon_person": "dp_epsilon_person_max",
    "epsilon_person_p90": "dp_epsilon_person_p90",
    "epsilon_person_median": "dp_epsilon_person_median",
    "delta_person": "dp_delta_person_max",
    "persons_multi_model": "dp_persons_share_multi_model",
}
"""runs-table column → the run's per-person privacy metric (:mod:`fedsim.person_privacy`)."""
PERSON_LABEL = "ε per person (all models composed)"
PERSON_CAPTION = (
    "ε per person: the largest over persons (worst seed) of the composition of every DP model of the run that "
    "holds the person's data, joined features included (fedsim.person_privacy); odds: an attacker's odds rise "
    "at most e^ε-fold."
)


def person_privacy_columns(df: pd.DataFrame) -> dict[str, pd.Series]:
    """Per run: the per-person ε (max, p90, median over persons; all the run's DP models composed), its δ,
    the share of persons in ≥ 2 models, the largest single-model ε (``epsilon_model_max``) and ``privacy_unit``.

    ``epsilon_person`` is the figure to report; a non-private run has ε = inf. Runs logged before per-person
    accounting have no ``dp_epsilon_person_max``: their ``epsilon_person`` is NaN, never a single model's ε.
    """
    model_eps = [c for c in df.columns if re.match(r"^dp_epsilon\.", c)]
    model_max = df[model_eps].apply(pd.to_numeric, errors="coerce").max(axis=1) if model_eps else None
    private = model_max.notna() if model_max is not None else pd.Series(False, index=df.index)
    # a DP cell whose regime trained no model (nothing reported yet) released no training data: ε = 0, not ∞
    private = private | (pd.to_numeric(df.get("dp_models", pd.Series(math.nan, index=df.index))) == 0)
    out = {}
    for column, metric in PERSON_METRICS.items():
        values = _metric(df, metric)
        if column in ("epsilon_person", "epsilon_person_p90", "epsilon_person_median"):
            values = values.where(private, math.inf)
        out[column] = values
    out["epsilon_model_max"] = (model_max if model_max is not None else pd.Series(math.nan, index=df.index)).where(
        private, math.inf
    )
    unit = df["dp_unit"] if "dp_unit" in df else pd.Series("", index=df.index)
    out["privacy_unit"] = unit.fillna("").astype(str)
    return out


def _fmt_person(eps: float) -> str:
    """'2.99 (odds ×20)'; '1.81e+03 (odds ×>1 billion)'; inf → '∞ (no DP)'; no per-person accounting → '–'."""
    from fedsim.privacy import NO_PRACTICAL_BOUND_ODDS, odds_factor

    if eps is None or math.isnan(eps):
        return "–"
    if math.isinf(eps):
        return "∞ (no DP)"
    fold = odds_factor(eps)
    if fold >= NO_PRACTICAL_BOUND_ODDS:
        return f"{eps:.3g} (odds ×>1 billion)"
    return f"{eps:.3g} (odds ×{fold:.1f})" if fold < 10 else f"{eps:.3g} (odds ×{fold:,.0f})"


def _fmt(v: float, lo: float, hi: float, *, pct: bool = False, eur: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if pct:
        return f"{v:.0%} [{lo:.0%}, {hi:.0%}]"
    if eur:
        return f"€{v:,.0f} [{lo:,.0f}, {hi:,.0f}]"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


CONFIG_KEYS = ("regime", "coalition", "model", "epsilon")


def _primary_columns(table: pd.DataFrame) -> list[str]:
    return [
        c for c in table.columns if c.startswith(("ed_h0_", "prevented_eur", "ap")) and not c.endswith(("_lo", "_hi"))
    ]


def seed_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration of :func:`runs_summary`'s table: seed means with cases × seeds CIs.

    Columns: regime, coalition, model, epsilon, seeds, n_seeds, covers, then ``<metric>``, ``_lo``,
    ``_hi`` for each primary metric, ``epsilon_person`` (the largest per-person ε over the seeds' runs) and
    ``world_hash``.
    """
    from fedsim.evaluation.seeds import covers_text, interval_from_runs

    if table.empty:
        return pd.DataFrame()
    rows = []
    for key, g in table.groupby(list(CONFIG_KEYS), sort=True, dropna=False):
        row = dict(zip(CONFIG_KEYS, key, strict=True))
        row["seeds"] = ",".join(str(x) for x in sorted(g["seed"].dropna().unique(), key=str))
        row["n_seeds"] = int(g["seed"].nunique())
        row["covers"] = covers_text(n_seeds=row["n_seeds"])
        for m in _primary_columns(table):
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = interval_from_runs(g[m], g[f"{m}_lo"], g[f"{m}_hi"])
        if "epsilon_person" in g:
            # the worst seed: a guarantee must hold for every trained run
            row["epsilon_person"] = float(g["epsilon_person"].max())
        row["world_hash"] = ",".join(sorted({str(w) for w in g["world_hash"].dropna()}))
        rows.append(row)
    return pd.DataFrame(rows)


def metric_label(name: str) -> str:
    """A logged metric name in words with its parameters, e.g. ``prevented_eur_d0_r1.0`` → "€ prevented (Δ = 0 h,
    ρ = 1)": Δ is the reaction latency after the alert and ρ the share of a stoppable money-out that is stopped
    (evaluation.md, outcome definitions); ``ed_h<h>`` is early detection at horizon h hours."""
    base = name.split("@")[0]
    base = re.sub(r"_(cal|k)[0-9.e-]+$", "", base)
    if m := re.fullmatch(r"ed_h([0-9.]+)", base):
        return f"caught before money left (h = {float(m[1]):g} h)"
    if m := re.fullmatch(r"prevented_eur_d([0-9.]+)_r([0-9.]+)", base):
        return f"€ prevented (Δ = {float(m[1]):g} h, ρ = {float(m[2]):g})"
    return {"ap": "AP", "ed": "caught before money left", "prevented_eur": "€ prevented"}.get(base, name)


def runs_sheet(table: pd.DataFrame, experiment_name: str) -> Sheet:
    """:func:`seed_summary` of the per-run table as a :class:`Sheet`, headed by what the CI covers and the clock."""
    from fedsim.evaluation.outcomes import clock_definition

    ed = next(c for c in table.columns if c.startswith("ed_h0_") and not c.endswith(("_lo", "_hi")))
    pv = next(c for c in table.columns if c.startswith("prevented_eur") and not c.endswith(("_lo", "_hi")))
    worlds = ", ".join(sorted({str(w)[:12] for w in table["world_hash"].dropna()}))
    summary = seed_summary(table)
    covers = " / ".join(dict.fromkeys(summary["covers"]))
    sheet = Sheet(
        title=f"{experiment_name}: primary outcomes, mean over training seeds (95% CI covers {covers}); world {worlds}",
        columns=["regime", "coalition", "model", "ε", "seeds", metric_label(ed), metric_label(pv), "AP", PERSON_LABEL],
        caption=f"capacity: {_capacity_words(table, ed)}. {clock_definition()}. {PERSON_CAPTION}",
        keys=3,
    )
    for _, r in summary.iterrows():
        sheet.add_row(
            str(r["regime"]),
            str(r["coalition"]),
            str(r["model"]),
            str(r["epsilon"]),
            str(r["seeds"]),
            _fmt(r[ed], r[f"{ed}_lo"], r[f"{ed}_hi"], pct=True),
            _fmt(r[pv], r[f"{pv}_lo"], r[f"{pv}_hi"], eur=True),
            _fmt(r["ap"], r["ap_lo"], r["ap_hi"]),
            _fmt_person(float(r.get("epsilon_person", math.nan))),
        )
    return sheet


def render_runs(table: pd.DataFrame, experiment_name: str, fmt: str = "table") -> None:
    """Print :func:`runs_sheet` on stdout (whole labels at any width; ``fmt`` table or csv)."""
    if table.empty:
        stdout_console().print(f"No finished runs for experiment {experiment_name!r} in this store.")
        return
    print_sheet(runs_sheet(table, experiment_name), fmt)


def _capacity_words(table: pd.DataFrame, ed_column: str) -> str:
    """The capacity of the shown outcomes, in words, from the runs' ``capacity`` param."""
    labels = list(dict.fromkeys(str(c) for c in table.get("capacity", pd.Series(dtype=str)).dropna()))
    tag = ed_column.removeprefix("ed_h0_")
    if tag.startswith("k"):
        return f"{tag[1:]} of every partner's entities per day (uniform)"
    scale = float(tag.removeprefix("cal"))
    prefix = "" if scale == 1.0 else f"{scale:g} × "
    return prefix + ("; ".join(labels) if labels else "calibrated")


def privacy_curve(
    experiment_name: str,
    *,
    tracking_uri: str | None = None,
    scale: float = 1.0,
    capacity: float | None = None,
    all_worlds: bool = False,
) -> pd.DataFrame | None:
    """The privacy–utility table (ε against the primary outcomes, with CIs), or None without a DP run."""
    from fedsim.evaluation.privacy_utility import privacy_utility_table
    from fedsim.tracking import Tracker

    df = Tracker(tracking_uri, experiment_name).runs_table(experiment_name)
    if df.empty or "epsilon" not in df or (df["epsilon"].astype(str) == "inf").all():
        return None
    if not all_worlds and "world_hash" in df:
        df = df[df["world_hash"] == df.sort_values("start_time")["world_hash"].iloc[-1]]
    return privacy_utility_table(df, capacity=capacity, scale=scale)


CURVE_LABELS = {
    "epsilon": "target ε per model",
    "epsilon_person": "ε per person (max; all models composed)",
    "epsilon_person_p90": "ε per person (p90)",
    "delta_person": "δ per person (max)",
    "epsilon_spent": "ε of the largest single model",
    "epsilon_total": "Σ model ε",
    "odds_factor": "attacker's odds × at most (per person)",
    "privacy_unit": "unit of ε",
}
"""Privacy–utility columns in words (the unit of every ε is named)."""


def render_privacy_curve(curve: pd.DataFrame, *, capacity: str = "calibrated", fmt: str = "table") -> None:
    """Print the privacy–utility table (ε against the outcomes) on stdout."""
    covers = " / ".join(dict.fromkeys(curve["covers"])) if "covers" in curve else "cases"
    sheet = Sheet(
        title=f"privacy–utility: outcomes against ε (ε = inf is the non-private run); 95% CI covers {covers}",
        columns=[CURVE_LABELS.get(str(c), metric_label(str(c))) for c in curve.columns],
        caption=f"capacity: {capacity}. {PERSON_CAPTION}",
    )
    for _, r in curve.iterrows():
        sheet.add_row(*[_curve_cell(str(c), v, r) for c, v in r.items()])
    print_sheet(sheet, fmt)


def _curve_cell(column: str, value: object, row: pd.Series) -> str:
    """One cell of the privacy–utility table; odds past a billion under DP are words (fedsim.privacy), since
    e^ε overflows to inf there and would read like the non-private runs' inf."""
    from fedsim.privacy import NO_PRACTICAL_BOUND_ODDS

    under_dp = math.isfinite(float(row.get("epsilon_person", math.inf)))
    if column == "odds_factor" and isinstance(value, float) and value >= NO_PRACTICAL_BOUND_ODDS and under_dp:
        return ">1e9 (no practical bound)"
    return f"{value:.3g}" if isinstance(value, float) else str(value)
