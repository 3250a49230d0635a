"""The truncation check: a feature at decision time t may only depend on what existed at t.

For a decision time t, every table of a partner is rebuilt from what the partner could hold at t:
entity rows (customers, accounts, subscribers, users) that came into being at or before t, event rows
(transactions, sessions, calls, SIM events and their handsets, listings, messages, orders, reports,
signals) that happened at or before t, and, inside a kept row, fields that only become known later
(a call's duration, an order's shipping label and delivery) censored to "not yet". The features of
the decision rows at t, computed on the rebuilt tables, must equal those computed on the full tables.

This is the "as-of" (point-in-time) discipline of feature stores; a feature that changes when the
future is removed looks ahead. The check is general: it knows the tables, not the features, so a new
feature is covered without being listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedsim.features import PartnerFeatures
from synthetic.world import PartnerView

EXISTS_SINCE: dict[str, dict[str, str]] = {
    # per partner kind, per table: the column saying since when a row exists
    "bank": {
        "customers": "customer_since",
        "accounts": "opened_ts",
        "transactions": "ts",
        "sessions": "ts",
        "reports": "ts",
    },
    "telco": {"subscribers": "activated_ts", "sim_events": "ts", "calls": "ts", "flagged_numbers": "ts"},
    "marketplace": {"users": "created_ts", "listings": "ts", "messages": "ts", "orders": "ts", "reports": "ts"},
    "signals": {"signals": "ts"},  # `entities` holds no time: every entity is kept
}
"""A table of a partner kind missing here makes `as_of` fail: a new table must say how it truncates."""

CENSORED_S = 10**9
"""A call still running at t gets this much added to its elapsed time: "ends some time after t"."""


def as_of(view: PartnerView, t: int) -> PartnerView:
    """The partner's tables as they stood at time t (rows that exist at or before t; later facts censored)."""
    known = EXISTS_SINCE[view.kind]
    tables = {}
    for name, table in view.tables.items():
        if name in known:
            table = table.filter(pc.less_equal(table.column(known[name]), t))
        elif not (view.kind == "signals" and name == "entities"):
            raise KeyError(f"{view.kind}/{name}: no rule for what existed at t (add it to EXISTS_SINCE)")
        tables[name] = _censor(view.kind, name, table, t)
    return PartnerView(view.name, view.kind, tables)


def _censor(kind: str, name: str, table: pa.Table, t: int) -> pa.Table:
    """Blank fields of kept rows that only become known after t."""
    if kind == "telco" and name == "calls":
        ts = table.column("ts").to_numpy()
        dur = table.column("duration_s").to_numpy()
        running = ts + dur > t
        censored = np.where(running, (t - ts) + CENSORED_S, dur)
        return table.set_column(table.schema.get_field_index("duration_s"), "duration_s", pa.array(censored))
    if kind == "marketplace" and name == "orders":
        for col in ("shipping_label_ts", "delivered_ts"):
            c = table.column(col)
            later = pc.fill_null(pc.greater(c, t), False)
            table = table.set_column(
                table.schema.get_field_index(col), col, pc.if_else(later, pa.nulls(len(c), c.type), c)
            )
    return table


@dataclass
class Mismatch:
    partner: str
    t: int
    column: str
    full: float
    truncated: float


def check_truncation(
    view: PartnerView,
    times: np.ndarray,
    *,
    features: Callable[[PartnerView], PartnerFeatures] = PartnerFeatures.for_view,
) -> list[Mismatch]:
    """For each decision time t in `times`: features of every decision row at t, full tables vs tables as of t.

    Returns the differing (row, column) values (NaN equals NaN); empty means no look-ahead was seen.
    """
    full = features(view)
    rows = full.decision_rows()
    out: list[Mismatch] = []
    for t in np.unique(np.asarray(times, dtype=np.int64)).tolist():
        want = full.own(rows.select(rows.ts == t))
        past = features(as_of(view, t))
        past_rows = past.decision_rows()
        got = past.own(past_rows.select(past_rows.ts == t))
        out.extend(_compare(view.name, t, want, got))
    return out


def _compare(partner: str, t: int, want: pd.DataFrame, got: pd.DataFrame) -> list[Mismatch]:
    if list(want.columns) != list(got.columns) or len(want) != len(got):
        return [Mismatch(partner, t, f"<shape {want.shape} vs {got.shape}>", np.nan, np.nan)]
    out: list[Mismatch] = []
    for col in want.columns:
        a = want[col].to_numpy(dtype=float)
        b = got[col].to_numpy(dtype=float)
        bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        out.extend(Mismatch(partner, t, col, float(x), float(y)) for x, y in zip(a[bad], b[bad], strict=True))
    return out


def sample_times(
    rows_ts: np.ndarray, rows_entity: np.ndarray, focus: np.ndarray, *, n: int, seed: int = 0
) -> np.ndarray:
    """Decision times to check: half at rows of `focus` entities (where look-ahead hides: fresh accounts,
    burner numbers, crew devices), half uniformly over all rows."""
    rng = np.random.default_rng(seed)
    in_focus = np.flatnonzero(np.isin(rows_entity, focus))
    k = min(n // 2, len(in_focus))
    picked = [rng.choice(in_focus, k, replace=False)] if k else []
    picked.append(rng.choice(len(rows_ts), min(n - k, len(rows_ts)), replace=False))
    return np.unique(rows_ts[np.concatenate(picked)])
