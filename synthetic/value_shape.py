"""Value-shape probes: does the *form* of a value (its cents, roundness, last digit, length) tell fraud apart?

A generator can leak through the shape of values even when every value's size is plausible: legitimate
ATM withdrawals in whole notes next to mule cash-outs in cents, or capped fraud transfers landing on
round sums. The single-column screen looks at values; these probes look at their form:

* money columns (floats on a cent grid): the cents, "whole euros", multiples of 5/10/50/100 euros,
  the last digit of the euros;
* other floats: the number of decimals;
* integers (times, ids, hashes, durations): multiples of 5/10/50/100, last digit;
* free-text strings (more than ``MAX_LEVELS`` distinct values): length and last character. A string
  column with few levels (kind, channel, category) is a categorical whose every shape is a function
  of its level — the single-column screen already judges those values, so here they only define strata.

**Unit of comparison — the case.** Fraud rows come in cases (one case writes a payment, a cash-out,
logins), legitimate rows in entities (an account's hundred payments). A row-level AUC would let one
busy entity or one big case dominate. Each probe is therefore judged by a *case-level* AUC: positives
are the fraud rows grouped by case, negatives the legitimate rows grouped by the entity the row belongs
to (account, customer, subscriber, user), and every row is weighted 1 / (rows of its unit) — which is
exactly the expected AUC of drawing one row per case against one row per entity (weighted
Mann–Whitney statistic; Hanley & McNeil 1982 for its standard error, with the number of units as n).
Entity tables (customers, accounts, subscribers, users) use truth/case_entities: an entity in a case is
positive, grouped by its (first) case.

**Size is not shape.** The number of digits of a number is its order of magnitude — a value, which
the single-column screen judges against the designed signals (helpdesk transfers *are* large, helpdesk
calls *are* long). Number probes are therefore compared within order-of-magnitude bins (the digits of
the integer part): the AUC counts only pairs of a positive and a negative row of the same magnitude,
so "fraud amounts are larger" does not read as "fraud amounts have more digits" or "are rounder".

**Strata.** Each probe runs on the whole table and within each level of each low-cardinality string
column (e.g. ``kind = atm``), because a tell confined to one kind of row is diluted in the whole table.

**Separation** is max(AUC, 1 − AUC): a shape may mark fraud by being rarer as well as by being commoner
(for the target-encoded categorical shapes below, the AUC itself). The standard error counts distinct
positive values, not cases, when there are fewer: 90 cases run through 29 fake sellers say something
about 29 seller ids.
A probe is judged when it has at least ``min_units`` positive cases (and distinct values), and *flagged*
when its separation reaches ``FLAG_SEPARATION`` (0.6) and also exceeds 0.5 by more than z standard
errors, z set for a family-wise error of ``alpha`` over all judged probes (Bonferroni): with ~2,000
probes, a few strata of 30–50 cases reach 0.6 by chance alone; a tell does so beyond the noise.
Categorical shapes (last digit, last character) are target-encoded across two folds (each row scored
by the positive share of its level in the other fold), so that choosing the level is not fitted on the
rows it scores. The folds split the column's *values*, not its rows or cases: a crew's burner number or
fake seller recurs over many cases, and splitting by case would let the encoding memorise that one
identity's last digit — an identity, which the watchlist and the single-column screen deal with, not
a shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from synthetic.ids import splitmix64
from synthetic.world_data import World

FLAG_SEPARATION = 0.6
MAX_LEVELS = 40
MULTIPLES = (5, 10, 50, 100)

ENTITY_COLUMN: dict[str, dict[str, str]] = {
    # per partner kind and table: the column whose value is the unit of a legitimate row
    "bank": {
        "customers": "customer_id",
        "accounts": "customer_id",
        "transactions": "account_id",
        "sessions": "customer_id",
        "reports": "customer_id",
    },
    "telco": {
        "subscribers": "subscriber_id",
        "sim_events": "subscriber_id",
        "calls": "subscriber_id",
        "flagged_numbers": "phone_hash",
    },
    "marketplace": {
        "users": "user_id",
        "listings": "user_id",
        "messages": "from_user_id",
        "orders": "buyer_user_id",
        "reports": "reporter_user_id",
    },
    "signals": {"entities": "entity_id", "signals": "entity_id"},
}
ENTITY_TABLES = {("bank", "customers"), ("bank", "accounts"), ("telco", "subscribers"), ("marketplace", "users")}
"""Tables with one row per entity (or per account): labelled through case_entities, not provenance."""


@dataclass
class Probe:
    partner: str
    table: str
    stratum: str
    column: str
    shape: str
    auc: float
    separation: float
    se: float
    pos_units: int  # positive cases, or distinct positive values if fewer
    neg_units: int  # negative entities
    flagged: bool


# ------------------------------------------------------------------------------------------------
# Shapes of one column
# ------------------------------------------------------------------------------------------------
def _digits(x: np.ndarray) -> np.ndarray:
    """Number of decimal digits of non-negative integers (0 has one digit)."""
    out = np.ones(len(x), dtype=np.int64)
    for k in range(1, 19):
        out += x >= 10**k
    return out


def _decimals(x: np.ndarray) -> np.ndarray:
    """Decimals needed to write x exactly (up to 12)."""
    out = np.full(len(x), 12, dtype=np.int64)
    for k in range(12, -1, -1):
        scaled = x * 10.0**k
        exact = np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, np.abs(scaled))
        out = np.where(exact, k, out)
    return out


@dataclass
class ColumnShapes:
    """The shapes of one column: name → (value per row, categorical?), NaN where the value is null; and the
    order of magnitude per row (digits of the integer part) that number probes are compared within."""

    probes: dict[str, tuple[np.ndarray, bool]]
    magnitude: np.ndarray
    value: np.ndarray  # int64 code of the raw value per row (equal values, equal code)


def shapes(col: pa.ChunkedArray | pa.Array) -> ColumnShapes:
    """Shape probes of one column; none for booleans and for low-cardinality strings (module docstring)."""
    typ = col.type
    valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    out: dict[str, tuple[np.ndarray, bool]] = {}
    magnitude = np.zeros(len(valid))
    value = pd.factorize(col.to_pandas())[0].astype(np.int64)

    def put(name: str, values: np.ndarray, categorical: bool = False) -> None:
        v = np.full(len(valid), np.nan)
        v[valid] = values.astype(float)
        out[name] = (v, categorical)

    def size(integer_part: np.ndarray) -> None:
        magnitude[valid] = _digits(integer_part)

    if pa.types.is_floating(typ):
        x = np.abs(np.asarray(col.drop_null().to_numpy(zero_copy_only=False), dtype=float))
        x = x[np.isfinite(x)] if not np.isfinite(x).all() else x
        if len(x) != int(valid.sum()):
            return ColumnShapes(out, magnitude, value)
        cents_total = np.round(x * 100.0)
        on_cents = bool(len(x)) and bool(np.all(np.abs(x * 100.0 - cents_total) < 1e-6))
        if on_cents:
            cents = (cents_total % 100).astype(np.int64)
            euros = (cents_total // 100).astype(np.int64)
            whole = cents == 0
            put("cents", cents)
            put("whole", whole)
            for m in MULTIPLES:
                put(f"mult{m}", whole & (euros % m == 0))
            put("last_digit", euros % 10, categorical=True)
            size(euros)
        else:
            put("decimals", _decimals(x))
            size(np.floor(x).astype(np.int64))
    elif pa.types.is_integer(typ):
        x = np.abs(np.asarray(col.drop_null().to_numpy(zero_copy_only=False), dtype=np.int64))
        for m in MULTIPLES:
            put(f"mult{m}", x % m == 0)
        put("last_digit", x % 10, categorical=True)
        size(x)
    elif pa.types.is_string(typ) or pa.types.is_large_string(typ):
        s = pd.Series(col.drop_null().to_pylist(), dtype=object)
        if s.nunique() <= MAX_LEVELS:
            return ColumnShapes(out, magnitude, value)
        put("length", s.str.len().to_numpy())
        last = s.str[-1:].fillna("")
        put("last_char", pd.factorize(last)[0], categorical=True)
    return ColumnShapes(out, magnitude, value)


# ------------------------------------------------------------------------------------------------
# Case-level AUC
# ------------------------------------------------------------------------------------------------
def weighted_auc(score: np.ndarray, label: np.ndarray, weight: np.ndarray, bins: np.ndarray | None = None) -> float:
    """Weighted Mann–Whitney AUC: P(score of a positive > score of a negative) + ½ P(tie), rows weighted;
    with `bins`, only pairs within the same bin count (a stratified AUC)."""
    bins = np.zeros(len(score)) if bins is None else bins
    num = den = 0.0
    for b in np.unique(bins):
        m = bins == b
        order = np.argsort(score[m], kind="stable")
        s, y, w = score[m][order], label[m][order], weight[m][order]
        _, start = np.unique(s, return_index=True)
        wp = np.add.reduceat(np.where(y, w, 0.0), start)
        wn = np.add.reduceat(np.where(y, 0.0, w), start)
        num += float(np.sum(wp * (np.cumsum(wn) - wn + 0.5 * wn)))
        den += float(wp.sum() * wn.sum())
    return num / den if den > 0 else float("nan")


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982, eq. 2), here with cases/entities as the n."""
    if n_pos < 1 or n_neg < 1 or not np.isfinite(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def _cross_fit(level: np.ndarray, label: np.ndarray, weight: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Score each row by its level's weighted positive share in the other half of the raw values."""
    fold = (splitmix64(value.astype(np.uint64)) >> np.uint64(63)).astype(np.int64)
    score = np.full(len(level), np.nan)
    for f in (0, 1):
        train, test = fold != f, fold == f
        pos = pd.Series(np.where(label[train], weight[train], 0.0)).groupby(level[train]).sum()
        tot = pd.Series(weight[train]).groupby(level[train]).sum()
        prior = float(pos.sum() / max(tot.sum(), 1e-12))
        share = (pos + prior) / (tot + 1.0)  # one pseudo-unit at the prior keeps unseen/rare levels near it
        score[test] = pd.Series(level[test]).map(share).fillna(prior).to_numpy()
    return score


# ------------------------------------------------------------------------------------------------
# The screen
# ------------------------------------------------------------------------------------------------
@dataclass
class _Labelled:
    table: pa.Table
    label: np.ndarray  # bool per row
    unit: np.ndarray  # int64 per row: case id (>= 0) for positives, -(entity + 2) style keys for negatives


def _labels(world: World, partner: str, kind: str, table_name: str, table: pa.Table) -> _Labelled | None:
    """Rows of one table with their fraud label and unit (case or entity); None when the table has no units."""
    ent_col = ENTITY_COLUMN.get(kind, {}).get(table_name)
    if ent_col is None or table.num_rows == 0:
        return None
    entity = np.asarray(table.column(ent_col).fill_null(-1).to_numpy(), dtype=np.int64)
    case = np.full(table.num_rows, -1, dtype=np.int64)
    keep = np.ones(table.num_rows, dtype=bool)
    if (kind, table_name) in ENTITY_TABLES:
        ce = world.truth_table("case_entities")
        ce = ce[ce["partner"] == partner].sort_values("case_id", kind="stable").drop_duplicates("entity_id")
        first = pd.Series(ce["case_id"].to_numpy(), index=ce["entity_id"].to_numpy())
        case = first.reindex(entity).fillna(-1).to_numpy(dtype=np.int64)
        ents = world.truth_table("entities")
        ents = ents[ents["partner"] == partner]
        role = pd.Series(ents["role"].to_numpy(), index=ents["entity_id"].to_numpy())
        # crew members' own entities that took part in no case are neither fraud nor ordinary: left out
        keep = (case >= 0) | (role.reindex(entity).fillna("ordinary").to_numpy() == "ordinary")
    else:
        prov = world.truth_table("provenance")
        p = prov[(prov["partner"] == partner) & (prov["table"] == table_name)]
        case[p["row"].to_numpy(dtype=np.int64)] = p["case_id"].to_numpy(dtype=np.int64)
    label = case >= 0
    # negatives' units must not collide with case ids: map entities into the negative range
    unit = np.where(label, case, -2 - (entity & np.int64((1 << 62) - 1)))
    rows = np.flatnonzero(keep)
    return _Labelled(table.take(pa.array(rows)), label[rows], unit[rows])


def _sample(lab: _Labelled, rng: np.random.Generator, max_negative_rows: int) -> _Labelled:
    neg = np.flatnonzero(~lab.label)
    if len(neg) <= max_negative_rows:
        return lab
    rows = np.sort(np.concatenate([np.flatnonzero(lab.label), rng.choice(neg, max_negative_rows, replace=False)]))
    return _Labelled(lab.table.take(pa.array(rows)), lab.label[rows], lab.unit[rows])


def _strata(table: pa.Table) -> list[tuple[str, np.ndarray]]:
    out = [("all", np.ones(table.num_rows, dtype=bool))]
    for name in table.column_names:
        col = table.column(name)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            continue
        values = np.asarray(col.to_pylist(), dtype=object)
        levels = pd.unique(values[pd.notna(values)])
        if 1 < len(levels) <= 12:
            out.extend((f"{name}={lv}", values == lv) for lv in sorted(levels))
    return out


@dataclass
class _Units:
    """Rows of one stratum with their case-level weights."""

    label: np.ndarray
    unit: np.ndarray
    weight: np.ndarray  # 1 / rows of the row's unit
    pos_units: int
    neg_units: int

    @classmethod
    def of(cls, label: np.ndarray, unit: np.ndarray) -> _Units:
        _, inverse, counts = np.unique(unit, return_inverse=True, return_counts=True)
        pos = len(np.unique(unit[label]))
        return cls(label, unit, 1.0 / counts[inverse], pos, len(counts) - pos)


def _probe(
    score: np.ndarray, magnitude: np.ndarray, value: np.ndarray, units: _Units, categorical: bool
) -> tuple[float, float, float, int, int, bool]:
    ok = ~np.isnan(score)
    if not ok.all():  # nulls are not a shape: drop them and re-weight the remaining rows
        units = _Units.of(units.label[ok], units.unit[ok])
        score, magnitude, value = score[ok], magnitude[ok], value[ok]
    label, weight = units.label, units.weight
    if categorical:  # a level's share may depend on magnitude (a one-digit amount's last digit is the amount)
        score = _cross_fit(magnitude * 1e6 + score, label, weight, value)
    auc = weighted_auc(score, label, weight, magnitude)
    # Cross-fitted encodings err *below* 0.5 when there is nothing to learn; only AUC > 0.5 is evidence there.
    sep = auc if categorical else max(auc, 1.0 - auc)
    # Evidence about a shape comes from distinct values: 90 cases through 29 fake sellers are 29 sellers.
    n_pos = min(units.pos_units, len(np.unique(value[label])))
    n_neg = units.neg_units  # (legitimate rows repeat popular values — €50 — without being one identity)
    se = hanley_mcneil_se(max(sep, 1.0 - sep), n_pos, n_neg)
    return auc, sep, se, n_pos, n_neg, False


def value_shape_screen(
    world: World,
    *,
    seed: int = 0,
    max_negative_rows: int = 200_000,
    min_units: int = 30,
    alpha: float = 0.05,
    partners: list[str] | None = None,
) -> list[Probe]:
    """Every shape probe of every numeric and free-text column of every partner table, per stratum.

    Returns one :class:`Probe` per (partner, table, stratum, column, shape) with enough positive cases;
    ``flagged`` marks a shape that separates fraud from legitimate rows (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    out: list[Probe] = []
    for partner, view in world.partners.items():
        if partners is not None and partner not in partners:
            continue
        for table_name, table in view.tables.items():
            lab = _labels(world, partner, view.kind, table_name, table)
            if lab is None or not lab.label.any():
                continue
            lab = _sample(lab, rng, max_negative_rows)
            columns = {name: shapes(lab.table.column(name)) for name in lab.table.column_names}
            for stratum, mask in _strata(lab.table):
                units = _Units.of(lab.label[mask], lab.unit[mask])
                if units.pos_units < min_units or units.neg_units < min_units:
                    continue
                for column, shaped in columns.items():
                    for shape, (values, categorical) in shaped.probes.items():
                        res = _probe(values[mask], shaped.magnitude[mask], shaped.value[mask], units, categorical)
                        if min(res[3], res[4]) >= min_units:
                            out.append(Probe(partner, table_name, stratum, column, shape, *res))
    z = NormalDist().inv_cdf(1.0 - alpha / (2 * max(len(out), 1)))
    for p in out:
        p.flagged = bool(p.separation >= FLAG_SEPARATION and (p.separation - 0.5) > z * p.se)
    return out


def summary(probes: list[Probe]) -> dict[str, Any]:
    """JSON-ready: the probes flagged and the strongest probe overall (for the leak-screen report)."""
    top = max(probes, key=lambda p: p.separation, default=None)
    return {
        "probes": len(probes),
        "flagged": [asdict(p) for p in probes if p.flagged],
        "strongest": asdict(top) if top is not None else None,
    }
