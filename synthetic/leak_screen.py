"""The leak screen of world.md §8: can a partner column tell fraud rows apart when it should not?

Four screens against the hidden truth, on samples of every partner table of a realistic world:

1. single-column ROC-AUC of every partner column (per fraud type; ≥ :data:`LEAK_AUC` and not in
   :data:`DESIGNED_SIGNALS` is a leak),
2. a metadata-only model (ids, row order, timestamp quirks) that must score AUC in :data:`METADATA_AUC_RANGE`,
3. no partner column named like truth (case / phase / role / crew / truth),
4. join-key presence independent of being a victim or mule (two-proportion tests).

Labels come from the truth: ``truth/provenance`` names every partner row a case injected (event tables);
``truth/case_entities`` names every partner entity that took part in a case (entity tables).
Everything here reads a finished :class:`~synthetic.world_data.World`; nothing is written back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from synthetic.schema import DAY
from synthetic.stats import auc_standard_error, cluster_jackknife_auc_se, jsonable, roc_auc, two_proportion_p_value
from synthetic.value_shape import summary as value_shape_summary
from synthetic.value_shape import value_shape_screen
from synthetic.world_data import World

LEAK_AUC = 0.8
"""A single column whose AUC (either direction) reaches this and is not a designed signal is a leak."""
METADATA_AUC_RANGE = (0.45, 0.55)
"""The out-of-fold AUC a metadata-only model must stay within."""
KEY_PRESENCE_ALPHA = 0.01
"""Family-wise significance level of the key-presence tests (Bonferroni over the tests run)."""


# ================================================================================================
# Designed signals (world.md §3): columns that are *meant* to carry fraud evidence
# ================================================================================================
DESIGNED_SIGNALS: dict[str, str] = {
    # bank
    "bank.transactions.amount_eur": "helpdesk transfers near the limit; large invoice payments",
    "bank.transactions.new_payee": "fraud pays a first-time payee (mule)",
    "bank.transactions.name_check": "IBAN-name check mismatch on the mule transfer",
    "bank.transactions.is_instant": "instant transfers to the mule; fast cash-out",
    "bank.transactions.kind": "cash-out to crypto / ATM; helpdesk savings → current move",
    "bank.transactions.direction": "mule accounts receive (fan-in) and forward",
    "bank.transactions.channel": "cash-out at ATMs; invoice payments from business banking (web)",
    "bank.transactions.counterparty_bank": "cash-out to crypto exchanges / ATMs has no counterparty bank",
    "bank.transactions.counterparty_iban_hash": "cash-out without a counterparty (ATM)",
    "bank.accounts.product": "helpdesk moves savings → current; invoice fraud pays from business accounts",
    "bank.accounts.opened_ts": "mules use freshly opened accounts",
    "bank.accounts.daily_limit_eur": "fresh mule accounts",
    "bank.sessions.new_device": "login from a crew / phishing device",
    "bank.sessions.remote_access_tool": "remote-access tool during the helpdesk call",
    "bank.customers.age_band": "victim age skew per type (helpdesk victims are old)",
    "bank.customers.is_business": "invoice-fraud victims are businesses",
    "bank.customers.customer_since": "follows age (old victims are long-standing customers)",
    # telco
    "telco.calls.caller_id_mismatch": "spoofed bank caller-ID on an international trunk",
    "telco.calls.origin": "spoofed calls enter on an international trunk",
    "telco.calls.duration_s": "long helpdesk call",
    "telco.calls.kind": "WhatsApp / sale fraud texts; helpdesk calls",
    "telco.calls.direction": "burners spray outgoing messages",
    "telco.calls.presented_caller_id_hash": "the bank's own number presented by spoofers",
    "telco.sim_events.event": "crew activates prepaid SIMs",
    "telco.sim_events.handset_hash": "several burner SIMs on one crew handset",
    "telco.subscribers.prepaid": "burners are prepaid",
    "telco.subscribers.activated_ts": "burners are new numbers",
    "telco.subscribers.age_band": "burners are anonymous prepaid (null); victim age skew",
    # marketplace
    "marketplace.users.created_ts": "fake accounts created just before use",
    "marketplace.users.phone_hash": "crew accounts may lack a verified phone (presence designed)",
    "marketplace.users.payout_iban_hash": "fake sellers always set a payout IBAN, fake buyers never (designed)",
    "marketplace.users.device_hash": "crew accounts share devices",
    "marketplace.listings.price_ratio": "cheap listing",
    "marketplace.listings.price_eur": "cheap listing",
    "marketplace.listings.photos_reused": "reused photos",
    "marketplace.listings.user_id": "one fake seller lists for several victims",
    "marketplace.messages.contains_phone": "chat asks for / gives a phone number",
    "marketplace.messages.contains_iban": "chat gives the mule's IBAN",
    "marketplace.messages.contains_url": "fake payment link",
    "marketplace.messages.asks_off_platform": "asks to pay or talk outside the platform",
    "marketplace.orders.payment_method": "purchase fraud is paid by bank transfer",
    "marketplace.orders.shipping_label_ts": "goods never shipped",
    "marketplace.orders.delivered_ts": "goods never delivered",
    "marketplace.orders.amount_eur": "purchase-fraud loss distribution",
}
"""``kind.table.column`` → why the column is meant to separate fraud. Joined features count as the joined
table's column (e.g. ``bank.accounts.product`` for transactions joined with accounts)."""

DESIGNED_KEY_GAPS: dict[str, str] = {
    "marketplace.users.phone_hash:fraudster": "crew-made accounts often have no verified phone (70% burner)",
    "marketplace.users.payout_iban_hash:fraudster": "fake sellers need a payout IBAN, fake buyers have none",
}
"""Join-key presence that depends on the role by design (``kind.table.key:role``)."""

TRUTH_WORDS = ("case", "phase", "role", "crew", "truth")
"""No partner column may be named like these (hidden truth)."""

EVENT_TABLES: dict[str, tuple[str, ...]] = {
    "bank": ("transactions", "sessions"),
    "telco": ("sim_events", "calls"),
    "marketplace": ("listings", "messages", "orders"),
}
ENTITY_TABLES: dict[str, dict[str, str]] = {
    "bank": {"customers": "customer_id", "accounts": "customer_id"},
    "telco": {"subscribers": "subscriber_id"},
    "marketplace": {"users": "user_id"},
}
"""Entity tables and the column naming the entity (an account row belongs to its customer)."""

JOINS: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("bank", "transactions"): ("accounts", "account_id", ("product", "opened_ts", "daily_limit_eur")),
    ("marketplace", "listings"): ("users", "user_id", ("created_ts",)),
}
"""Event table → (entity table, key, columns): joined columns screened too (a leak can hide in a join)."""

KEY_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "bank": {"customers": ("phone_hash", "email_hash")},
    "marketplace": {"users": ("phone_hash", "email_hash", "payout_iban_hash")},
}


# ================================================================================================
# Leak screen
# ================================================================================================
def leak_screen(
    world: World,
    *,
    max_negatives: int = 20_000,
    max_positives: int = 5_000,
    seed: int = 0,
    only: Iterable[str] | None = None,
    value_shapes: bool = True,
) -> dict[str, Any]:
    """The screens of world.md §8 on samples of every partner table (realistic worlds).

    Args:
        only: restrict the screens to these ``partner/table`` names (default: every table).
        max_negatives: legitimate rows sampled per table (count).
        max_positives: fraud rows sampled per table and type (count).
        seed: sampling seed (the screen is deterministic for a given world and seed).
        value_shapes: also run the value-shape probes (:mod:`synthetic.value_shape`: cents, multiples of
            5/10/50/100, last digits, lengths of every numeric and free-text column, at case level).
    Returns a dict with ``single_column`` (rows sorted by separation), ``leaks`` (undesigned, ≥ LEAK_AUC),
    ``designed_signals`` (designed, ≥ LEAK_AUC), ``metadata_model``, ``truth_named_columns``,
    ``key_presence``, ``value_shape`` (probes run, flagged, strongest; with ``only``, every table of the
    partners named there) and one verdict per screen plus ``ok`` (all pass).
    """
    truth = _Truth.of(world)
    rng = np.random.default_rng(seed)
    chosen = None if only is None else set(only)
    samples = list(_samples(world, truth, rng, max_negatives=max_negatives, max_positives=max_positives, only=chosen))
    single = single_column_screen(samples)
    meta = metadata_model_screen(samples, truth, seed=seed)
    named = [c for c in truth_named_columns(world) if chosen is None or c.split(".")[0] in chosen]
    keys = key_presence_screen(world, truth, only=chosen)
    leaks = [r for r in single if r["leak"]]
    designed = [r for r in single if r["designed"] and r["separation"] >= LEAK_AUC]
    partners = None if chosen is None else sorted({c.split("/")[0] for c in chosen})
    shapes = value_shape_summary(value_shape_screen(world, seed=seed, partners=partners)) if value_shapes else None
    out: dict[str, Any] = {
        "single_column": single,
        "leaks": leaks,
        "designed_signals": designed,
        "metadata_model": meta,
        "truth_named_columns": named,
        "key_presence": keys,
        "value_shape": shapes,
        "verdicts": {
            "single_column": not leaks,
            "metadata_model": all(r["ok"] is not False for r in meta),
            "truth_named_columns": not named,
            "key_presence": all(r["ok"] is not False for r in keys),
            "value_shape": shapes is None or not shapes["flagged"],
        },
        "thresholds": {
            "leak_auc": LEAK_AUC,
            "metadata_auc_range": list(METADATA_AUC_RANGE),
            "key_presence_alpha": KEY_PRESENCE_ALPHA,
        },
    }
    out["ok"] = all(out["verdicts"].values())
    return jsonable(out)


@dataclass
class _Truth:
    """Truth lookups the screens share: case → type / crew; partner → entity → (types, role)."""

    case_type: dict[int, str]
    case_crew: dict[int, int]
    provenance: pd.DataFrame
    entity_types: dict[str, dict[int, set[str]]]
    entity_cases: dict[str, dict[int, int]]
    entity_role: dict[str, dict[int, str]]
    case_roles: dict[str, dict[int, set[str]]]

    @classmethod
    def of(cls, world: World) -> _Truth:
        cases = world.truth_table("cases")
        case_type = dict(zip(cases["case_id"].tolist(), cases["fraud_type"].tolist(), strict=True))
        case_crew = dict(zip(cases["case_id"].tolist(), cases["crew_id"].tolist(), strict=True))
        ce = world.truth_table("case_entities")
        ent = world.truth_table("entities")
        types: dict[str, dict[int, set[str]]] = {}
        first_case: dict[str, dict[int, int]] = {}
        roles: dict[str, dict[int, set[str]]] = {}
        for p, e, c, r in zip(ce["partner"], ce["entity_id"].tolist(), ce["case_id"].tolist(), ce["role"], strict=True):
            types.setdefault(p, {}).setdefault(e, set()).add(case_type[c])
            first_case.setdefault(p, {}).setdefault(e, c)
            roles.setdefault(p, {}).setdefault(e, set()).add(r)
        role = {
            p: dict(zip(g["entity_id"].tolist(), g["role"].tolist(), strict=True)) for p, g in ent.groupby("partner")
        }
        return cls(
            case_type=case_type,
            case_crew=case_crew,
            provenance=world.truth_table("provenance"),
            entity_types=types,
            entity_cases=first_case,
            entity_role=role,
            case_roles=roles,
        )


@dataclass
class _Sample:
    """Sampled rows of one partner table with their labels (fraud type per row, "" = legitimate)."""

    partner: str
    kind: str
    table: str
    table_rows: int
    rows: np.ndarray  # row numbers in the full table
    label: np.ndarray  # object: fraud type or ""
    group: np.ndarray  # int64: crew of the case (positives) or a unique id (negatives) — for CV folds
    data: pa.Table  # the sampled rows (+ joined columns, named "<table>.<column>")
    full: pa.Table  # the whole table (for counting look-alikes)
    full_label: np.ndarray


def _row_labels(truth: _Truth, partner: str, table: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Event table: fraud type and case of every row from provenance ("" / -1 for legitimate rows)."""
    prov = truth.provenance
    p = prov[(prov["partner"] == partner) & (prov["table"] == table)]
    label = np.full(n, "", dtype=object)
    case = np.full(n, -1, dtype=np.int64)
    rows = p["row"].to_numpy(dtype=np.int64)
    label[rows] = [truth.case_type[c] for c in p["case_id"].tolist()]
    case[rows] = p["case_id"].to_numpy(dtype=np.int64)
    return label, case


def _entity_labels(truth: _Truth, partner: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entity table: "+"-joined fraud types of the entity's cases; "" for ordinary people in no case; None for
    entities left out of the comparison (e.g. a crew member's own account that took part in no case)."""
    types = truth.entity_types.get(partner, {})
    first = truth.entity_cases.get(partner, {})
    role = truth.entity_role.get(partner, {})
    label = np.empty(len(ids), dtype=object)
    case = np.full(len(ids), -1, dtype=np.int64)
    for i, e in enumerate(ids.tolist()):
        if e in types:
            label[i] = "+".join(sorted(types[e]))
            case[i] = first[e]
        else:
            label[i] = "" if role.get(e, "ordinary") == "ordinary" else None
    return label, case


def _samples(
    world: World,
    truth: _Truth,
    rng: np.random.Generator,
    *,
    max_negatives: int,
    max_positives: int,
    only: set[str] | None = None,
) -> Iterable[_Sample]:
    for partner, view in world.partners.items():
        kind = view.kind
        tables = [(t, None) for t in EVENT_TABLES.get(kind, ())] + list(ENTITY_TABLES.get(kind, {}).items())
        for table, id_col in tables:
            if table not in view.tables or (only is not None and f"{partner}/{table}" not in only):
                continue
            full = view.tables[table]
            n = full.num_rows
            if id_col is None:
                label, case = _row_labels(truth, partner, table, n)
            else:
                label, case = _entity_labels(truth, partner, full.column(id_col).to_numpy())
            pick = _pick_rows(rng, label, max_negatives=max_negatives, max_positives=max_positives)
            group = np.where(case[pick] >= 0, [truth.case_crew.get(int(c), -2) for c in case[pick]], -10 - pick).astype(
                np.int64
            )
            data = _with_joins(view.tables, kind, table, full.take(pa.array(pick)))
            yield _Sample(
                partner=partner,
                kind=kind,
                table=table,
                table_rows=n,
                rows=pick,
                label=label[pick],
                group=group,
                data=data,
                full=full,
                full_label=label,
            )


def _pick_rows(rng: np.random.Generator, label: np.ndarray, *, max_negatives: int, max_positives: int) -> np.ndarray:
    """All legit rows up to max_negatives, and up to max_positives rows of each fraud label; sorted."""
    picked = []
    for value in sorted({v for v in label.tolist() if v is not None}):
        rows = np.flatnonzero(label == value)
        cap = max_negatives if value == "" else max_positives
        picked.append(rng.choice(rows, size=cap, replace=False) if len(rows) > cap else rows)
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _with_joins(tables: dict[str, pa.Table], kind: str, table: str, data: pa.Table) -> pa.Table:
    """Add the columns of the entity table an event row points at (named ``<entity table>.<column>``)."""
    if (kind, table) not in JOINS:
        return data
    other, key, cols = JOINS[(kind, table)]
    ref = tables[other]
    ref_keys = ref.column(key).to_numpy()
    order = np.argsort(ref_keys, kind="stable")
    keys = data.column(key).to_numpy()
    pos = np.clip(np.searchsorted(ref_keys[order], keys), 0, max(len(order) - 1, 0))
    idx = order[pos] if len(order) else pos
    found = (ref_keys[idx] == keys) if len(order) else np.zeros(len(keys), bool)
    for col in cols:
        values = ref.column(col).take(pa.array(idx))
        data = data.append_column(
            f"{other}.{col}", pc.if_else(pa.array(found), values, pa.nulls(len(keys), values.type))
        )
    return data


# ------------------------------------------------------------------------------------------------
# 1. Single-column screen
# ------------------------------------------------------------------------------------------------
def _features(name: str, col: pa.ChunkedArray, *, max_levels: int = 40) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One column → (feature name, values (float), defined mask).

    Numbers and booleans as they are (null rows left out); a null indicator when the column has nulls;
    strings one-hot per level (target-free, the sample's most frequent ``max_levels`` levels).
    """
    n = len(col)
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    everywhere = np.ones(n, dtype=bool)
    if nulls.any():
        out.append((f"{name} is null", nulls.astype(np.float64), everywhere))
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        values = np.asarray(col.to_pylist(), dtype=object)
        counts = pd.Series(values[~nulls]).value_counts()
        for level in counts.index[:max_levels]:
            out.append((f"{name}={level}", (values == level).astype(np.float64), everywhere))
    elif pa.types.is_boolean(col.type) or pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        filled = pc.fill_null(col, False if pa.types.is_boolean(col.type) else 0)
        values = np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)
        out.append((name, values, ~nulls))
    return out


def _designed(kind: str, table: str, feature: str) -> str | None:
    column = re.split(r"=| is null", feature, maxsplit=1)[0]
    key = f"{kind}.{column}" if "." in column else f"{kind}.{table}.{column}"
    return DESIGNED_SIGNALS.get(key)


def single_column_screen(samples: list[_Sample], *, min_positives: int = 20) -> list[dict[str, Any]]:
    """ROC-AUC of every feature of every sampled table, per fraud type vs legitimate rows.

    Reports per (kind, table, feature) the strongest (partner, type): ``auc`` (raw), ``separation`` =
    max(auc, 1 − auc), positives/negatives behind it, whether it is designed, whether it is a leak
    (separation ≥ LEAK_AUC and not designed) and, for 0/1 features at or above the threshold, how many
    legitimate rows of the whole table share the fraud value (``lookalike_rows``; 0 = separable by
    construction). Types with fewer than ``min_positives`` rows are skipped.
    """
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in samples:
        features = [f for c in s.data.column_names for f in _features(c, s.data.column(c))]
        legit = s.label == ""
        types = sorted({t for v in s.label.tolist() if v for t in v.split("+")})
        for ft in types:
            pos = np.array([bool(v) and ft in v.split("+") for v in s.label.tolist()])
            if pos.sum() < min_positives:
                continue
            use = pos | legit
            for fname, values, defined in features:
                keep = use & defined
                y = pos[keep]
                if y.all() or not y.any():
                    continue
                auc = roc_auc(values[keep], y)
                sep = max(auc, 1.0 - auc)
                key = (s.kind, s.table, fname)
                if key not in best or sep > best[key]["separation"]:
                    best[key] = {
                        "kind": s.kind,
                        "table": s.table,
                        "feature": fname,
                        "partner": s.partner,
                        "fraud_type": ft,
                        "auc": auc,
                        "separation": sep,
                        "positives": int(y.sum()),
                        "negatives": int((~y).sum()),
                        "_values": (values, keep, pos),
                        "_sample": s,
                    }
    rows = []
    for (kind, table, fname), r in best.items():
        why = _designed(kind, table, fname)
        r["designed"] = why is not None
        r["why"] = why
        r["leak"] = r["separation"] >= LEAK_AUC and why is None
        r["lookalike_rows"] = _lookalikes(r) if r["separation"] >= LEAK_AUC else None
        r.pop("_values")
        r.pop("_sample")
        rows.append(r)
    return sorted(rows, key=lambda r: (-r["separation"], r["kind"], r["table"], r["feature"]))


def _lookalikes(r: dict[str, Any]) -> int | None:
    """Legitimate rows in the whole table with the value fraud rows have, for 0/1 features; else None.

    0/1 features are booleans, one-hot levels and null indicators; the value fraud rows have is 1 if the
    AUC is ≥ 0.5, else 0. Joined columns are estimated from the sample, scaled to the table's legit rows.
    """
    values, keep, _ = r["_values"]
    s: _Sample = r["_sample"]
    fname = r["feature"]
    column = re.split(r"=| is null", fname, maxsplit=1)[0]
    is_level, is_null = "=" in fname, fname.endswith(" is null")
    col_type = s.data.column(column).type
    if not (is_level or is_null or pa.types.is_boolean(col_type)):
        return None
    fraud_value = 1.0 if r["auc"] >= 0.5 else 0.0
    legit_full = s.full_label == ""
    if "." in column:  # joined column
        legit = s.label == ""
        share = float((values[legit] == fraud_value).mean()) if legit.any() else 0.0
        return int(round(share * int(legit_full.sum())))
    col = s.full.column(column)
    if is_null:
        hit = col.is_null().to_numpy(zero_copy_only=False)
    elif is_level:
        hit = np.asarray(pc.fill_null(pc.equal(col, fname.split("=", 1)[1]), False).to_numpy(zero_copy_only=False))
    else:
        hit = np.asarray(pc.fill_null(col, False).to_numpy(zero_copy_only=False)).astype(bool)
    if fraud_value == 0.0:
        hit = ~hit
    return int((hit & legit_full).sum())


# ------------------------------------------------------------------------------------------------
# 2. Metadata-only model
# ------------------------------------------------------------------------------------------------
def _is_time(name: str) -> bool:
    return name == "ts" or name.endswith("_ts") or name == "customer_since"


def _order_offset(full: pa.Table, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """How far each sampled row sits from where its sort key puts it (ties on the key share one place).

    Event tables are sorted by ``ts`` and entity tables by their id, so the offset is the row's rank among
    rows with the same key (usually 0), and large where rows are out of order — e.g. fraud rows appended
    after the legitimate ones. Unlike the raw row position it does not repeat what the timestamp says.
    """
    key = "ts" if "ts" in full.column_names else full.column_names[0]
    values = full.column(key).to_numpy()
    first = np.searchsorted(np.sort(values), values[rows], side="left")
    return (rows - first).astype(np.float64), f"row offset from {key} order"


def metadata_features(s: _Sample) -> tuple[np.ndarray, list[str]]:
    """Features that must carry no information: row order, id / key values, timestamp and cent quirks.

    Per sampled row: its offset from sorted order (:func:`_order_offset`); for every non-null integer id /
    key column that is not a designed signal a coarse value bin (16 bins over the int64 range) and the value
    mod 16 — coarse on purpose, so a model cannot memorise one burner or mule (a real signal) but does see
    order or range effects; for every non-null time column seconds-of-minute, minute-of-hour, exactly-midnight
    and exactly-zero flags; for money columns the cents. Joined columns are left out. Shape (rows, features).
    """
    offset, offset_name = _order_offset(s.full, s.rows)
    cols: list[np.ndarray] = [offset]
    names = [offset_name]
    for name in s.data.column_names:
        col = s.data.column(name)
        if "." in name or col.null_count or not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            continue
        designed = f"{s.kind}.{s.table}.{name}" in DESIGNED_SIGNALS
        if pa.types.is_integer(col.type) and (name.endswith("_id") or name.endswith("_hash")) and not designed:
            v = col.to_numpy().astype(np.int64)
            cols += [np.floor(v / 2.0**63 * 16), (v % 16).astype(np.float64)]
            names += [f"{name} range bin", f"{name} mod 16"]
        elif pa.types.is_integer(col.type) and _is_time(name):
            v = col.to_numpy().astype(np.int64)
            cols += [v % 60, (v // 60) % 60, (v % DAY == 0), (v == 0)]
            names += [f"{name} second", f"{name} minute", f"{name} at midnight", f"{name} == 0"]
        elif pa.types.is_floating(col.type) and name in ("amount_eur", "price_eur"):
            cols.append(np.round(col.to_numpy() * 100) % 100)
            names.append(f"{name} cents")
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols]), names


def metadata_model_screen(
    samples: list[_Sample], truth: _Truth, *, seed: int = 0, folds: int = 3, min_positives: int = 50, min_crews: int = 5
) -> list[dict[str, Any]]:
    """Out-of-fold AUC of a small gradient-boosted model on :func:`metadata_features`, per partner table.

    Positives are all fraud rows (any type). Folds are grouped by crew (rows of one crew never straddle
    train and test, so a crew's shared burner or device cannot be memorised); legitimate rows are spread
    over the folds. ``in_range``: the AUC lies in METADATA_AUC_RANGE. ``ok``: it does, or misses it by
    less than 1.96 standard errors — a table with ~150 fraud rows has an SE of ≈ 0.025, so a model with no
    information lands outside [0.45, 0.55] one time in twenty; only a miss beyond the noise is a leak. The SE
    is the larger of Hanley–McNeil (:func:`auc_standard_error`) and the crew jackknife
    (:func:`cluster_jackknife_auc_se`), because a crew's rows are not independent. Tables with fewer than
    ``min_positives`` fraud rows or ``min_crews`` crews are reported but not judged (``ok`` None). The
    strongest single metadata feature is reported to show what to fix.
    """
    import sklearn.ensemble  # noqa: F401 - load the OpenMP runtime first, so the limit below applies to it
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: the models are tiny, and on a shared machine spinning threads made them 100× slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        return [
            _metadata_model(s, seed=seed, folds=folds, min_positives=min_positives, min_crews=min_crews)
            for s in samples
        ]


def _metadata_model(s: _Sample, *, seed: int, folds: int, min_positives: int, min_crews: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    defined = np.array([v is not None for v in s.label.tolist()])
    y = np.array([bool(v) for v in s.label.tolist()])[defined]
    row = {
        "partner": s.partner,
        "kind": s.kind,
        "table": s.table,
        "positives": int(y.sum()),
        "negatives": int((~y).sum()),
        "auc": None,
        "se": None,
        "crews": None,
        "in_range": None,
        "ok": None,
        "top_feature": None,
        "top_feature_auc": None,
    }
    if y.sum() < min_positives or (~y).sum() < min_positives:
        return row
    x, names = metadata_features(s)
    x, groups = x[defined], s.group[defined]
    model = HistGradientBoostingClassifier(
        max_iter=60, max_depth=3, learning_rate=0.1, early_stopping=False, random_state=seed
    )
    pred = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        if y[train].all() or not y[train].any():
            pred[test] = 0.5
            continue
        pred[test] = model.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    auc = roc_auc(pred, y)
    single = [(max(a, 1 - a), n) for n, a in ((n, roc_auc(x[:, j], y)) for j, n in enumerate(names))]
    top = max(single)
    crews = len(np.unique(groups[y]))
    se = max(
        auc_standard_error(auc, n_pos=int(y.sum()), n_neg=int((~y).sum())), cluster_jackknife_auc_se(pred, y, groups)
    )
    lo, hi = METADATA_AUC_RANGE
    ok = None if crews < min_crews else bool((auc - 1.96 * se <= hi) and (auc + 1.96 * se >= lo))
    row.update(auc=auc, se=se, crews=crews, in_range=lo <= auc <= hi, ok=ok, top_feature=top[1], top_feature_auc=top[0])
    return row


# ------------------------------------------------------------------------------------------------
# 3. Truth-named columns
# ------------------------------------------------------------------------------------------------
def truth_named_columns(world: World) -> list[str]:
    """``partner/table.column`` of every partner column whose name contains a :data:`TRUTH_WORDS` word."""
    pattern = re.compile("|".join(TRUTH_WORDS))
    return [
        f"{p}/{t}.{c}"
        for p, view in world.partners.items()
        for t, tbl in view.tables.items()
        for c in tbl.column_names
        if pattern.search(c.lower())
    ]


# ------------------------------------------------------------------------------------------------
# 4. Join-key presence
# ------------------------------------------------------------------------------------------------
def key_presence_screen(
    world: World, truth: _Truth | None = None, *, min_group: int = 20, only: set[str] | None = None
) -> list[dict[str, Any]]:
    """Is a join key's presence independent of taking part in fraud? Per partner, key and role.

    Compares the share of entities holding the key among victims / mules / fraudsters (from
    ``truth/case_entities``) with the share among ordinary entities in no case, by
    :func:`two_proportion_p_value`. A test passes if p ≥ KEY_PRESENCE_ALPHA ÷ (number of tests judged)
    (Bonferroni). :data:`DESIGNED_KEY_GAPS` are reported with ``designed`` and not judged; groups smaller
    than ``min_group`` are not judged either (``ok`` None). ``only`` restricts the test to these
    ``partner/table`` names.
    """
    truth = truth or _Truth.of(world)
    rows: list[dict[str, Any]] = []
    for partner, view in world.partners.items():
        for table, keys in KEY_COLUMNS.get(view.kind, {}).items():
            if table not in view.tables or (only is not None and f"{partner}/{table}" not in only):
                continue
            tbl = view.tables[table]
            ids = tbl.column(ENTITY_TABLES[view.kind][table]).to_numpy()
            roles = truth.case_roles.get(partner, {})
            ent_role = truth.entity_role.get(partner, {})
            ordinary = np.array([e not in roles and ent_role.get(e, "ordinary") == "ordinary" for e in ids.tolist()])
            for key in keys:
                present = ~tbl.column(key).is_null().to_numpy(zero_copy_only=False)
                for role in ("victim", "mule", "fraudster"):
                    grp = np.array([role in roles.get(e, ()) for e in ids.tolist()])
                    if not grp.any():
                        continue
                    gap = f"{view.kind}.{table}.{key}:{role}"
                    rows.append(
                        {
                            "partner": partner,
                            "table": table,
                            "key": key,
                            "role": role,
                            "n_role": int(grp.sum()),
                            "present_role": float(present[grp].mean()),
                            "n_ordinary": int(ordinary.sum()),
                            "present_ordinary": float(present[ordinary].mean()) if ordinary.any() else None,
                            "p_value": two_proportion_p_value(
                                hits_a=int(present[grp].sum()),
                                n_a=int(grp.sum()),
                                hits_b=int(present[ordinary].sum()),
                                n_b=int(ordinary.sum()),
                            ),
                            "designed": gap in DESIGNED_KEY_GAPS,
                            "why": DESIGNED_KEY_GAPS.get(gap),
                        }
                    )
    judged = [not r["designed"] and r["n_role"] >= min_group for r in rows]
    threshold = KEY_PRESENCE_ALPHA / max(sum(judged), 1)
    for r, judge in zip(rows, judged, strict=True):
        r["ok"] = bool(r["p_value"] >= threshold) if judge else None
        r["threshold"] = threshold if judge else None
    return rows
