"""Tidy result tables and their flattening into MLflow metric names.

Tidy table (one row per metric value, style.md habit 8): ``metric, fraud_type, k, h, delta_h, rho,
value, lo, hi``; a dimension that does not apply is NaN. A comparison table has ``value_a, value_b,
diff, lo, hi, p_a_gt_b`` instead, where ``lo, hi`` bound the difference A − B.

Flat names (one MLflow metric each)::

    [<fraud_type>.]<metric>[_h<h>][_d<delta_h>][_r<rho>][_k<k>][_lo|_hi]

The fraud-type prefix is left out for ``all``; numbers use ``%g`` except ρ, which keeps its decimal
point. Examples: ``ap``, ``ap_lo``, ``ed_h0_k0.005``, ``ed_h0_k0.005_hi``,
``prevented_eur_d0_r1.0_k0.005``, ``helpdesk.ed_h24_k0.01``, ``phase_contact_k0.005``.
Comparisons append ``_a``, ``_b``, ``_diff``, ``_diff_lo``, ``_diff_hi`` and ``_p_a_gt_b``.

Runs of an experiment are evaluated at multiples of the calibrated capacity profile
(:func:`fedsim.evaluation.api.evaluate_calibrated`): their ``k`` column holds the multiple and the tag is
``_cal`` instead of ``_k`` — ``ed_h0_cal1`` (at the calibrated capacity), ``prevented_eur_d0_r1.0_cal1_lo``,
``helpdesk.ed_h24_cal0.25``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fedsim.evaluation.estimator import ALL, MetricKey

DIMENSIONS: tuple[str, ...] = ("k", "h", "delta_h", "rho")
TABLE_COLUMNS: tuple[str, ...] = ("metric", "fraud_type", *DIMENSIONS, "value", "lo", "hi")
COMPARISON_COLUMNS: tuple[str, ...] = (
    "metric",
    "fraud_type",
    *DIMENSIONS,
    "value_a",
    "value_b",
    "diff",
    "lo",
    "hi",
    "p_a_gt_b",
)
COUNT_METRICS: frozenset[str] = frozenset({"n_cases", "n_positive_rows", "alerts"})
"""Descriptive sizes: reported without an interval."""


def _key_columns(keys: list[MetricKey]) -> dict[str, list]:
    cols: dict[str, list] = {"metric": [k.metric for k in keys], "fraud_type": [k.fraud_type for k in keys]}
    for dim in DIMENSIONS:
        cols[dim] = [np.nan if getattr(k, dim) is None else float(getattr(k, dim)) for k in keys]
    return cols


def tidy_table(keys: list[MetricKey], *, value: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> pd.DataFrame:
    """Tidy long table of metric values with their interval; arrays are (len(keys),)."""
    return pd.DataFrame({**_key_columns(keys), "value": value, "lo": lo, "hi": hi}, columns=list(TABLE_COLUMNS))


def comparison_table(
    keys: list[MetricKey],
    *,
    value_a: np.ndarray,
    value_b: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    p_a_gt_b: np.ndarray,
) -> pd.DataFrame:
    """Tidy table of a paired comparison: both values, their difference A − B, its interval and P(A > B)."""
    data = {
        **_key_columns(keys),
        "value_a": value_a,
        "value_b": value_b,
        "diff": value_a - value_b,
        "lo": lo,
        "hi": hi,
        "p_a_gt_b": p_a_gt_b,
    }
    return pd.DataFrame(data, columns=list(COMPARISON_COLUMNS))


def _num(x: float) -> str:
    return f"{x:g}"


FRACTION_TAG = "k"
"""Tag of a capacity given as a fraction of entities per day."""
CALIBRATED_TAG = "cal"
"""Tag of a capacity given as a multiple of the calibrated profile."""


def metric_name(row: pd.Series | dict, *, k_tag: str = FRACTION_TAG) -> str:
    """Flat name of one table row (module docstring); ``k_tag`` names the capacity dimension."""
    name = str(row["metric"])
    for dim, tag in (("h", "h"), ("delta_h", "d"), ("rho", "r"), ("k", k_tag)):
        x = row[dim]
        if x is not None and not (isinstance(x, float) and math.isnan(x)):
            name += f"_{tag}{repr(float(x)) if dim == 'rho' else _num(float(x))}"
    return name if row["fraud_type"] == ALL else f"{row['fraud_type']}.{name}"


def flatten_metrics(table: pd.DataFrame, *, k_tag: str = FRACTION_TAG) -> dict[str, float]:
    """``{name: value, name_lo: lo, name_hi: hi}`` for every row; counts get no ``_lo``/``_hi``."""
    out: dict[str, float] = {}
    has_ci = not (table["lo"].isna().all() and table["hi"].isna().all())
    for row in table.to_dict("records"):
        name = metric_name(row, k_tag=k_tag)
        out[name] = float(row["value"])
        if has_ci and row["metric"] not in COUNT_METRICS:
            out[f"{name}_lo"] = float(row["lo"])
            out[f"{name}_hi"] = float(row["hi"])
    return out


def flatten_comparison(table: pd.DataFrame) -> dict[str, float]:
    """``name_a, name_b, name_diff, name_diff_lo, name_diff_hi, name_p_a_gt_b`` per row (counts: the first 3)."""
    out: dict[str, float] = {}
    suffixes = (("a", "value_a"), ("b", "value_b"), ("diff", "diff"))
    with_ci = (("diff_lo", "lo"), ("diff_hi", "hi"), ("p_a_gt_b", "p_a_gt_b"))
    for row in table.to_dict("records"):
        name = metric_name(row)
        for suffix, col in suffixes + (() if row["metric"] in COUNT_METRICS else with_ci):
            out[f"{name}_{suffix}"] = float(row[col])
    return out


def lookup(
    table: pd.DataFrame,
    metric: str,
    *,
    fraud_type: str = ALL,
    column: str = "value",
    k: float | None = None,
    h: float | None = None,
    delta_h: float | None = None,
    rho: float | None = None,
) -> float:
    """One cell of a tidy or comparison table; a dimension left as None must be NaN in the row."""
    mask = (table["metric"] == metric) & (table["fraud_type"] == fraud_type)
    for dim, want in (("k", k), ("h", h), ("delta_h", delta_h), ("rho", rho)):
        mask &= table[dim].isna() if want is None else np.isclose(table[dim], want)
    hits = table.loc[mask, column]
    if len(hits) != 1:
        raise KeyError(
            f"lookup: {len(hits)} rows match metric={metric!r} fraud_type={fraud_type!r} "
            f"k={k} h={h} delta_h={delta_h} rho={rho}; expected exactly 1"
        )
    return float(hits.iloc[0])
