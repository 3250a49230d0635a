"""`fedsim adapt`: does each form of sharing keep its gain after a barrier, and how many days until it recovers?

Reads only what the runs logged — each run's per-case alert times (``case_alerts``: the primary outcome ED(0) at
the calibrated capacity, the same alerts its logged metrics count) — plus the experiment's world config for the
barrier day. Definitions, CIs and their sources: :mod:`fedsim.evaluation.adaptation`.

The observed days are the run's test window and, when a run also logged the second test window's case alerts
(artifact ``case_alerts_second``), the second window right after it; the barrier must fall inside them. Every
regime is compared with the baseline (default status_quo) on the training seeds both ran, per (model, ε).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError
from fedsim.evaluation.adaptation import (
    DEFAULT_TOLERANCE,
    DEFAULT_WINDOW_DAYS,
    AdaptationSettings,
    Hits,
    case_hits,
    daily_rates,
    gain,
    recovery,
    stack_seeds,
)
from fedsim.evaluation.seeds import covers_text

if TYPE_CHECKING:
    from fedsim.experiment import ExperimentSpec

CASE_ALERTS = "case_alerts/case_alerts.parquet"
SECOND_CASE_ALERTS = "case_alerts_second/case_alerts_second.parquet"
"""Where a run's second-window case alerts would be logged (read when present)."""
CaseAlertsOf = Callable[[pd.Series], pd.DataFrame]


@dataclass(frozen=True)
class Barrier:
    """The barrier the analysis is centred on (from the world config)."""

    name: str
    day: int
    fraud_type: str


def observed_days(spec: ExperimentSpec, *, second: bool) -> tuple[int, int]:
    """[start, end) days: the test window, extended by the second test window when its alerts were logged."""
    w = spec.split.windows()
    end = w["second_test"][1] if second and "second_test" in w else w["test"][1]
    return w["test"][0], end


def barrier_of(spec: ExperimentSpec, start: int, end: int, day: int | None = None) -> Barrier:
    """The world's barrier inside [start, end) (the one on ``day`` when given; else the first)."""
    inside = [b for b in spec.world.world_config().barriers if start < b.day < end and (day is None or b.day == day)]
    if not inside:
        days = [b.day for b in spec.world.world_config().barriers]
        raise FedsimError(
            f"adapt: no barrier of the world falls inside the observed days [{start}, {end}) (barrier days: "
            f"{days or 'none'}); place one there with world.overrides.barriers"
        )
    b = sorted(inside, key=lambda x: x.day)[0]
    return Barrier(b.name, int(b.day), str(b.fraud_type))


def adaptation_report(
    experiment: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    baseline: str = "status_quo",
    scale: float | None = None,
    window_days: int = DEFAULT_WINDOW_DAYS,
    tolerance: float = DEFAULT_TOLERANCE,
    barrier_day: int | None = None,
) -> dict[str, Any]:
    """Per (model, ε, regime, fraud type): pre/post-barrier ED(0), recovery days and the gain over ``baseline``.

    ``scale``: the multiple of the calibrated capacity whose alerts are read (default: the primary's, else 1).
    Returns a JSON-able mapping: ``barrier``, ``settings``, ``rows`` and ``daily`` (daily and forward rates)."""
    from fedsim.contrast import load_world
    from fedsim.experiment import load_experiment
    from fedsim.tracking import Tracker

    spec = load_experiment(experiment)
    scale = scale if scale is not None else (spec.primary.capacity_scale if spec.primary else 1.0)
    tracker = Tracker(tracking_uri, spec.name)
    runs = tracker.runs_table(spec.name)
    if runs.empty:
        raise FedsimError(f"adapt: experiment {spec.name!r} has no finished runs in this store")
    runs = load_world(spec, spec.world.seed, Path(workdir), runs).runs
    with tempfile.TemporaryDirectory() as tmp:

        def fetch(run: pd.Series, path: str) -> pd.DataFrame | None:
            folder = path.split("/")[0]
            if not any(a.path == path for a in tracker.client.list_artifacts(run["run_id"], folder)):
                return None
            return pd.read_parquet(tracker.download_artifact(run["run_id"], path, tempfile.mkdtemp(dir=tmp)))

        def alerts_of(run: pd.Series) -> pd.DataFrame:
            first = fetch(run, CASE_ALERTS)
            if first is None:
                raise FedsimError(f"adapt: run {run['run_id']} logged no {CASE_ALERTS}")
            second = fetch(run, SECOND_CASE_ALERTS)
            return first if second is None else pd.concat([first, second], ignore_index=True)

        hits = _hits_by_cell(runs, alerts_of, scale)
    second = any(bool(h.days.max() >= spec.split.windows()["test"][1]) for h in hits.values())
    start, end = observed_days(spec, second=second)
    barrier = barrier_of(spec, start, end, barrier_day)
    st = AdaptationSettings(
        barrier_day=barrier.day,
        start_day=start,
        end_day=end,
        window_days=window_days,
        tolerance=tolerance,
        n_boot=spec.metrics.bootstrap,
    )
    rows, daily = _rows(hits, st, barrier, baseline)
    return {
        "experiment": spec.name,
        "barrier": {"name": barrier.name, "day": barrier.day, "fraud_type": barrier.fraud_type},
        "settings": {
            "observed_days": [start, end],
            "window_days": window_days,
            "tolerance": tolerance,
            "capacity_scale": scale,
            "baseline": baseline,
            "n_boot": st.n_boot,
            "outcome": "ED(0): caught before the first money-out, at the calibrated capacity",
        },
        "rows": rows,
        "daily": daily,
    }


def _hits_by_cell(runs: pd.DataFrame, alerts_of: CaseAlertsOf, scale: float) -> dict[tuple[str, str, str], Hits]:
    """(regime, model, ε) → the seeds' ED(0) indicators."""
    out: dict[tuple[str, str, str], Hits] = {}
    for (regime, model, eps), group in runs.groupby(["regime", "model", "epsilon"], sort=True, dropna=False):
        group = group.drop_duplicates("seed").sort_values("seed")
        per_seed = [(r["seed"], case_hits(alerts_of(r), k=scale)) for _, r in group.iterrows()]
        out[(str(regime), str(model), str(eps))] = stack_seeds(per_seed)
    return out


def _common_seeds(a: Hits, b: Hits) -> tuple[Hits, Hits] | None:
    both = [s for s in a.seeds if s in b.seeds]
    if not both:
        return None

    def pick(h: Hits) -> Hits:
        idx = [h.seeds.index(s) for s in both]
        return Hits(h.hits[idx], h.case_ids, h.fraud_types, h.days, both)

    return pick(a), pick(b)


def _rows(
    hits: dict[tuple[str, str, str], Hits], st: AdaptationSettings, barrier: Barrier, baseline: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    daily: list[dict[str, Any]] = []
    for (regime, model, eps), h in sorted(hits.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0] != baseline)):
        base = hits.get((baseline, model, eps))
        for fraud_type in dict.fromkeys(["all", barrier.fraud_type]):
            mine = h.only(fraud_type)
            row: dict[str, Any] = {"model": model, "epsilon": eps, "regime": regime, "fraud_type": fraud_type}
            row.update(recovery(mine, st))
            paired = _common_seeds(mine, base.only(fraud_type)) if base is not None and regime != baseline else None
            if paired is not None:
                row.update(gain(*paired, st, label=f"{regime} − {baseline}|{model}|{eps}|{fraud_type}"))
                row["covers"] = covers_text(n_seeds=len(paired[0].seeds))
            rows.append(row)
            rates = daily_rates(mine, st).assign(model=model, epsilon=eps, regime=regime, fraud_type=fraud_type)
            daily.extend(json.loads(rates.to_json(orient="records")))
    return rows, daily


# ---------------------------------------------------------------------------- output


def _num(x: Any, fmt: str = "{:.3f}") -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else fmt.format(x)


def _interval(r: dict[str, Any], name: str, fmt: str = "{:.3f}") -> str:
    if f"{name}_lo" not in r:
        return _num(r.get(name), fmt)
    return f"{_num(r.get(name), fmt)} [{_num(r[f'{name}_lo'], fmt)}, {_num(r[f'{name}_hi'], fmt)}]"


def _recovery_cell(r: dict[str, Any]) -> str:
    days = r.get("recovery_days", float("nan"))
    share = r.get("p_not_recovered")
    tail = "" if share is None else f"; {share:.0%} of resamples not recovered"
    if np.isnan(days):
        return f"not within the window{tail}"
    return f"{_interval(r, 'recovery_days', '{:.0f}')}{tail}"


def _gain_cell(r: dict[str, Any], when: str) -> str:
    if f"gain_{when}" not in r:
        return "–"
    return f"{r[f'gain_{when}']:+.3f} [{r[f'gain_{when}_lo']:+.3f}, {r[f'gain_{when}_hi']:+.3f}]"


def render_adaptation(report: dict[str, Any], fmt: str = "table") -> None:
    """One row per (model, ε, regime, fraud type): levels, recovery days [CI], gain over the baseline before
    and after the barrier [CI]. Labels are never cut (:mod:`fedsim.sheet`)."""
    from fedsim.sheet import Sheet, print_sheet

    b, s = report["barrier"], report["settings"]
    start, end = s["observed_days"]
    covers = next((r["covers"] for r in report["rows"] if "covers" in r), "cases")
    sheet = Sheet(
        title=f"adaptation after the barrier {b['name']!r} on day {b['day']} ({b['fraud_type']}), days "
        f"[{start}, {end}): ED(0) at {s['capacity_scale']:g} × the calibrated capacity",
        columns=[
            "model",
            "ε",
            "regime",
            "fraud type",
            "cases",
            "before barrier",
            "after barrier",
            "recovery (days)",
            f"gain vs {s['baseline']} before",
            f"gain vs {s['baseline']} after",
        ],
        caption=f"before/after: share of cases caught before their first money-out, mean over training seeds, "
        f"95% CI over cases × seeds (two-stage bootstrap, {s['n_boot']} resamples). Recovery: days after the "
        f"barrier until the forward {s['window_days']}-day rate is back at ≥ {1 - s['tolerance']:.0%} of the "
        f"before level. Gains: paired A − B, CI covers {covers} (as `fedsim compare`).",
        keys=4,
    )
    for r in report["rows"]:
        sheet.add_row(
            r["model"],
            r["epsilon"],
            r["regime"],
            r["fraud_type"],
            f"{int(r['n_cases'])}",
            _interval(r, "pre"),
            _interval(r, "post"),
            _recovery_cell(r),
            _gain_cell(r, "pre"),
            _gain_cell(r, "post"),
        )
    print_sheet(sheet, fmt)


def adaptation_payload(report: dict[str, Any]) -> dict[str, Any]:
    """The report as strict JSON: NaN (e.g. "not recovered within the window") becomes null."""

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return dict(clean(report))
