"""Reports: partners share fraud reports, not data — a shared fraud-report database (issue 9).

Each partner keeps its own rows, its own features and its own watchlist (exactly the silo's feature
frame) and trains on the **coalition's labels**: its own traced reports, plus every report another
coalition partner received, carried across by salted-hash key. What crosses a partner's boundary is one
record per report: the salted keys it names, the span of the reported activity, and the report time.

How a report at partner X becomes a label for partner Y's entity (never the hidden truth at Y):

1. X receives a report and traces its *own* entities of that case (victim account, mule account at X,
   the reported seller or number) — the label tracing every regime already models
   (:mod:`fedsim.data`; the truth tables stand in for X's own investigation, as for a silo's labels);
2. X shares, per traced entity, its salted keys (phone, e-mail, IBAN hashes: :data:`fedsim.rows.JOIN_KEYS`)
   with the entity's role and the case's span; a bank also shares the counterparty IBAN its customer
   reported (``reports.reported_iban_hash``: typically a mule account at another bank);
3. Y marks each of its entities that holds one of those keys (any key, the rule of the watchlist's
   ``wl_self_listed``) as part of that case, with the role of the reported entity (victim window from
   contact, others from preparation; :func:`fedsim.data.case_windows`); a victim only where the report's
   fraud type runs through Y's kind of partner (:data:`fedsim.data.REPORT_CHANNELS`), a mule or
   fraudster wherever its keys appear (the shared database flags the person);
4. the report counts as a label only if it was made before the end of the training window
   (:func:`fedsim.data.known_cases`, the same cut-off as the silo's own reports).

The regime realises this by handing the shared training code a *report-traced* copy of the case → entity
table: each partner's rows are its own traced entities (cases it received itself) plus the entities it
key-matched to other partners' reports — a partner's true entities of a case it did not receive are
dropped, so the only way another partner's report reaches it is the key join. The watchlist feature is
*not* shared (``watchlist_from`` is the partner alone): reports = labels only, so status_quo → reports →
pooled separates the value of sharing labels from sharing data. (The watchlist regime is the converse:
others' reports as a *feature*, own labels only.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from fedsim.data import REPORT_CHANNELS, known_cases
from fedsim.regimes.base import JOIN_KEYS, LeakageRow, Regime, RegimeResult, RunContext, ScoringUnit, run_units
from fedsim.settings import FederationSettings

NEVER = np.iinfo(np.int64).max  # "every report, whenever made": the time cut-off is applied per unit later
CE_COLUMNS = ["case_id", "partner", "entity_id", "role"]


def _key_table(keys: pd.DataFrame) -> pd.DataFrame:
    """Long (entity_id, key, value) table of a partner's salted keys (one row per key a entity holds)."""
    cols = [c for c in JOIN_KEYS if c in keys]
    long = keys.melt(id_vars="entity_id", value_vars=cols, var_name="key", value_name="value").dropna()
    long["value"] = long["value"].astype("int64")
    long["entity_id"] = long["entity_id"].astype("int64")
    return long.drop_duplicates()


def shared_reports(ctx: RunContext, reporter: str) -> pd.DataFrame:
    """What ``reporter`` puts into the shared database: one row per (case, salted key, role).

    Columns: case_id, key (key column name), value (salted hash), role, fraud_type. Only cases ``reporter`` received
    itself (:func:`fedsim.data.known_cases` with ``label_sources=(reporter,)``); the report time is the
    case's, checked later against the training cut-off.
    """
    ce = ctx.truth["case_entities"]
    own_cases = known_cases(ctx.truth, ctx.kinds, label_sources=(reporter,), before_ts=NEVER)
    traced = ce[(ce["partner"] == reporter) & ce["case_id"].isin(own_cases)][["case_id", "entity_id", "role"]]
    traced = traced.assign(entity_id=traced["entity_id"].astype("int64"))
    rows = traced.merge(_key_table(ctx.features[reporter].keys()), on="entity_id")[["case_id", "key", "value", "role"]]
    named = _named_counterparties(ctx, reporter, traced)
    out = pd.concat([rows, named], ignore_index=True).drop_duplicates()
    return out.merge(ctx.truth["cases"][["case_id", "fraud_type"]], on="case_id")  # the report states its type


def _named_counterparties(ctx: RunContext, reporter: str, traced: pd.DataFrame) -> pd.DataFrame:
    """IBANs a bank's reporting customer named as the receiving account (the mule), tied to the case by the
    reporting customer and the report time (the report row *is* the case's report)."""
    if ctx.kinds[reporter] != "bank" or "reports" not in ctx.features[reporter].tables:
        return pd.DataFrame(columns=["case_id", "key", "value", "role"])
    r = ctx.features[reporter].tables["reports"]
    r = r[r["reported_iban_hash"].notna()]
    victims = traced[traced["role"] == "victim"].merge(ctx.truth["cases"][["case_id", "report_ts"]], on="case_id")
    linked = r.merge(victims, left_on=["customer_id", "ts"], right_on=["entity_id", "report_ts"])
    return pd.DataFrame(
        {
            "case_id": linked["case_id"].to_numpy(),
            "key": "iban_hash",
            "value": linked["reported_iban_hash"].astype("int64").to_numpy(),
            "role": "mule",
        }
    )


def matched_entities(ctx: RunContext, partner: str, reports: pd.DataFrame) -> pd.DataFrame:
    """``partner``'s entities holding a reported key: case → entity rows (case_id, partner, entity_id, role)."""
    hit = _key_table(ctx.features[partner].keys()).merge(reports, on=["key", "value"])
    # A victim is a victim here only if the fraud type runs through this kind of partner (the report
    # channels of fedsim.data): a bank's invoice-fraud victim is not a fraud case at their phone company.
    reaches = hit["fraud_type"].isin(REPORT_CHANNELS[ctx.kinds[partner]])
    hit = hit[(hit["role"] != "victim") | reaches]
    out = hit.assign(partner=partner)[CE_COLUMNS]
    return out.drop_duplicates(["case_id", "partner", "entity_id"])


def report_traced_truth(ctx: RunContext) -> dict[str, pd.DataFrame]:
    """The truth dict with ``case_entities`` replaced by what each coalition partner can know (module doc).

    Per partner: its own traced rows (cases it received) plus the entities key-matched to the other
    coalition partners' shared reports. Partners outside the coalition keep no rows.
    """
    ce = ctx.truth["case_entities"]
    shared = {p: shared_reports(ctx, p) for p in ctx.coalition}
    parts = []
    for p in ctx.coalition:
        own_cases = known_cases(ctx.truth, ctx.kinds, label_sources=(p,), before_ts=NEVER)
        parts.append(ce[(ce["partner"] == p) & ce["case_id"].isin(own_cases)][CE_COLUMNS])
        others = [shared[o] for o in ctx.coalition if o != p]
        if others:
            matched = matched_entities(ctx, p, pd.concat(others, ignore_index=True))
            # a case the partner received itself keeps its own tracing; key matches add only new entities
            parts.append(matched.astype({"entity_id": ce["entity_id"].dtype}))
    traced = pd.concat(parts, ignore_index=True).drop_duplicates(["case_id", "partner", "entity_id"])
    return {**ctx.truth, "case_entities": traced.reset_index(drop=True)}


def label_rows(truth: Mapping[str, pd.DataFrame], partner: str) -> pd.DataFrame:
    """The (case, entity, role) rows a partner's labels come from (for tests and diagnostics)."""
    ce = truth["case_entities"]
    return ce[ce["partner"] == partner].reset_index(drop=True)


class Reports(Regime):
    """Shared fraud reports: own features, the coalition's labels (module docstring)."""

    name = "reports"
    leakage = (
        LeakageRow(
            "each partner",
            "salted keys (phone, e-mail, IBAN hashes) of the entities other partners traced to a fraud report, "
            "the IBANs their customers reported, the role (victim / mule / fraudster), the case's span and "
            "report time; which of its own customers those keys match",
            "salted hashes; only reported cases cross; no features, no model; ε does not apply",
        ),
        LeakageRow(
            "report database operator",
            "every reported key hash, its role, which partner reported it and when",
            "salted hashes",
        ),
    )

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        if len(coalition) < 2:
            return (
                f"regime = 'reports' on coalition {'+'.join(coalition)}: reports are shared between partners; "
                "allowed: coalitions of 2 or more partners (one partner alone is `siloed`)"
            )
        return None

    def score(self, ctx: RunContext) -> RegimeResult:
        shared = replace(ctx, truth=report_traced_truth(ctx))
        units = [
            ScoringUnit(home=(p,), context_from=(), watchlist_from=(p,), label_sources=ctx.coalition)
            for p in ctx.coalition
        ]
        return run_units(
            shared,
            units,
            {"sharing": "fraud reports (salted keys, role, span, report time) as labels; no features", "join": "keys"},
        )
