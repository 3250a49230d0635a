"""A run's metrics in two layers: a few headline metrics for MLflow's table, the full set as one tidy table.

A run evaluates ~1,100–2,100 flat metrics (:mod:`fedsim.evaluation.tables`: ``[<fraud_type>.]<metric>[_h<h>]
[_d<Δ>][_r<ρ>][_cal<scale>|_k<k>][_lo|_hi]``, plus regime metrics such as ``train_rows.<partner>`` and the
per-person ε ``dp_epsilon_person_*``). MLflow lists them flat and alphabetically, which no one can read, so
a run logs only the **headline** (:func:`headline_names`, fraud type "all", ≤ ~25 names) as MLflow metrics and
the **full set** as ``metrics/metrics.parquet`` (:func:`metric_table`): one row per estimate with its CI and
the parts its name encodes. :func:`flat_metrics` turns the table back into the exact flat mapping, so every
reader of :meth:`fedsim.tracking.Tracker.runs_table` sees the same columns whichever way a run was logged.

No mlflow here: the tracker writes and reads the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

TABLE_COLUMNS: tuple[str, ...] = (
    "name",
    "value",
    "lo",
    "hi",
    "has_ci",
    "metric",
    "fraud_type",
    "partner",
    "h",
    "delta_h",
    "rho",
    "capacity",
    "capacity_tag",
)
"""Columns of ``metrics/metrics.parquet``. ``name``: the flat name of the estimate; ``lo``, ``hi``: its 95% CI
(``has_ci`` False: none was logged); the parts are null where the name does not carry them (no fraud-type
prefix means all fraud types for an evaluation metric)."""

# The dimension suffixes of an evaluation metric, in the order tables.metric_name writes them.
_NUM = r"\d+(?:\.\d+)?(?:e[+-]?\d+)?"
_DIMS = re.compile(
    rf"^(?P<metric>.+?)(?:_h(?P<h>{_NUM}))?(?:_d(?P<delta_h>{_NUM}))?(?:_r(?P<rho>{_NUM}))?"
    rf"(?:_(?P<capacity_tag>cal|k)(?P<capacity>{_NUM}))?$"
)


@dataclass(frozen=True)
class MetricLayout:
    """How a run's metrics are logged: ``headline`` names go to MLflow's metric table, every metric to the tidy
    artifact, whose names are parsed with the world's ``fraud_types`` (name prefix) and ``partners`` (suffix)."""

    headline: tuple[str, ...]
    fraud_types: tuple[str, ...] = ()
    partners: tuple[str, ...] = ()


def headline_names(
    metrics: Iterable[str], *, primary: str | None = None, scale: float = 1.0, tag: str = "cal"
) -> tuple[str, ...]:
    """The headline of a run, those of ``metrics`` that exist, in reading order (fraud type "all", with CIs):

    the primary outcome at the primary capacity ``scale`` (default ED(0)); ED(h) at h = 0 and 24 h (evaluation.md
    §2: share of cases alerted ≥ h hours before the money left); € prevented at Δ = 0 h, ρ = 1; AP; ROC-AUC;
    the number of cases; and, in a DP run, the per-person ε (max, median, p99) and δ (:mod:`fedsim.person_privacy`).
    """
    have = set(metrics)
    cap = f"_{tag}{scale:g}"
    bases = [primary or "ed_h0", "ed_h0", "ed_h24", "prevented_eur_d0_r1.0", "ap", "roc_auc", "n_cases"]
    out: list[str] = []
    for base in bases:
        name = base + cap if base + cap in have else base  # AP, ROC-AUC, n_cases carry no capacity
        for key in (name, f"{name}_lo", f"{name}_hi"):
            if key in have and key not in out:
                out.append(key)
    dp = ("dp_epsilon_person_max", "dp_epsilon_person_median", "dp_epsilon_person_p99", "dp_delta_person_max")
    out += [key for key in dp if key in have]
    return tuple(out)


def split_name(name: str, *, fraud_types: Sequence[str] = (), partners: Sequence[str] = ()) -> dict[str, object]:
    """The parts of one flat name: fraud type (``<type>.`` prefix), partner (``.<partner>`` suffix), metric and
    its dimensions h, Δ (``delta_h``), ρ and capacity (with its tag: ``cal`` = multiple of the calibrated
    profile, ``k`` = fraction of entities per day). Parts the name does not carry are None."""
    parts: dict[str, object] = {"fraud_type": None, "partner": None}
    head, dot, rest = name.partition(".")
    if dot and head in fraud_types:
        parts["fraud_type"], name = head, rest
    head, dot, tail = name.rpartition(".")
    if dot and tail in partners:
        parts["partner"], name = tail, head
    found = _DIMS.match(name)
    groups = found.groupdict() if found else {"metric": name}
    parts["metric"] = groups["metric"]
    for dim in ("h", "delta_h", "rho", "capacity"):
        parts[dim] = float(groups[dim]) if groups.get(dim) else None
    parts["capacity_tag"] = groups.get("capacity_tag")
    return parts


def metric_table(metrics: Mapping[str, float], layout: MetricLayout) -> pd.DataFrame:
    """The tidy table of a run's flat metrics (:data:`TABLE_COLUMNS`): one row per estimate, its ``_lo`` /
    ``_hi`` as columns when both were logged; a bound logged alone keeps a row of its own, so
    :func:`flat_metrics` gives back exactly ``metrics``."""
    rows = []
    for name, value in metrics.items():
        base, _, bound = name.rpartition("_")
        if bound in ("lo", "hi") and base in metrics and f"{base}_lo" in metrics and f"{base}_hi" in metrics:
            continue  # carried by its estimate's row
        has_ci = f"{name}_lo" in metrics and f"{name}_hi" in metrics
        rows.append(
            {
                "name": name,
                "value": float(value),
                "lo": float(metrics[f"{name}_lo"]) if has_ci else math.nan,
                "hi": float(metrics[f"{name}_hi"]) if has_ci else math.nan,
                "has_ci": has_ci,
                **split_name(name, fraud_types=layout.fraud_types, partners=layout.partners),
            }
        )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    for col in ("value", "lo", "hi", "h", "delta_h", "rho", "capacity"):
        table[col] = table[col].astype(float)
    return table.astype({"has_ci": bool})


def flat_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The flat ``{name: value, name_lo: lo, name_hi: hi}`` mapping a table came from (:func:`metric_table`)."""
    out: dict[str, float] = {}
    for name, value, lo, hi, has_ci in table[["name", "value", "lo", "hi", "has_ci"]].itertuples(index=False):
        out[name] = float(value)
        if has_ci:
            out[f"{name}_lo"], out[f"{name}_hi"] = float(lo), float(hi)
    return out
