"""Pooled: all coalition data joined centrally — the upper bound a data-sharing law would allow.

One model per partner kind scores the rows of every coalition partner of that kind (banks pooled
horizontally), with the other kinds' features joined by salted-hash keys as of the row's time, the
shared watchlist, and every coalition partner's reports as labels. Missing partners' features are
missing (NaN + indicator), never a magic value.

Labels cross partners the way the data does: by salted-hash key. A report at partner X labels partner
Y's entities only where Y's keys match what X traced to the report
(:func:`fedsim.regimes.reports.report_traced_truth`, the same tracing as the ``reports`` regime), never
through the hidden truth — so ``pooled − reports`` measures sharing data on top of sharing labels.
Only ``pooled_oracle``, an upper bound, traces labels on the hidden person ids as it joins on them.

Under DP a pooled example holds its home entity *and* the entities whose features were joined into it
(:func:`joined_entities`), so the per-person accounting (:mod:`fedsim.person_privacy`) counts a telco
subscriber joined into two bank examples as a group of two in the bank model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from fedsim.person_privacy import JoinResolver, joining
from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext, ScoringUnit, key_matches, run_units
from fedsim.regimes.reports import report_traced_truth

CENTRAL_COPY = (
    LeakageRow(
        "central party",
        "every partner's rows, features and reports (raw data)",
        "DP-SGD protects what the trained model reveals, not the central copy",
    ),
)


def pooled_units(ctx: RunContext) -> list[ScoringUnit]:
    by_kind: dict[str, list[str]] = {}  # by feature block: banks together, telco, marketplace, ...
    for p in ctx.coalition:
        by_kind.setdefault(ctx.features[p].block, []).append(p)
    return [
        ScoringUnit(
            home=tuple(members), context_from=ctx.coalition, watchlist_from=ctx.coalition, label_sources=ctx.coalition
        )
        for members in by_kind.values()
    ]


def joined_entities(ctx: RunContext) -> JoinResolver:
    """(home partner, its entity ids) → the coalition entities whose features are joined into their rows.

    The join of :func:`fedsim.rows.context_features`: every coalition partner of another kind, by
    :func:`fedsim.rows.key_matches` (salted keys, or true person ids under ``oracle_join``). Partners of one
    kind fill one feature block, so each of them counts as joined where it matches (a safe over-count).
    """

    def resolve(home: str, ids: np.ndarray) -> pd.DataFrame:
        parts = []
        for other in ctx.coalition:
            if ctx.features[other].block == ctx.features[home].block:
                continue
            hit = key_matches(ctx, home, other).reindex(ids).dropna()
            parts.append(
                pd.DataFrame(
                    {
                        "entity_id": hit.index.to_numpy(np.int64),
                        "partner": other,
                        "joined_entity_id": hit.to_numpy().astype(np.int64),
                    }
                )
            )
        if not parts:
            return pd.DataFrame(columns=["entity_id", "partner", "joined_entity_id"])
        return pd.concat(parts, ignore_index=True)

    return resolve


def run_joined(ctx: RunContext, params: dict[str, str]) -> RegimeResult:
    """Train and score the pooled units with the join known to the per-person privacy accounting."""
    with joining(joined_entities(ctx)):
        return run_units(ctx, pooled_units(ctx), params)


class Pooled(Regime):
    name = "pooled"
    leakage = CENTRAL_COPY

    def score(self, ctx: RunContext) -> RegimeResult:
        join = "oracle (true person ids)" if ctx.oracle_join else "salted-hash keys"
        traced = ctx if ctx.oracle_join else replace(ctx, truth=report_traced_truth(ctx))
        params = {"sharing": "all features and reports", "join": join, "labels": "reports traced by salted-hash key"}
        return run_joined(traced, params)


class PooledOracle(Regime):
    """Pooled with a perfect join on the hidden person ids: an upper bound, never a real option."""

    name = "pooled_oracle"
    leakage = CENTRAL_COPY

    def score(self, ctx: RunContext) -> RegimeResult:
        oracle = replace(ctx, oracle_join=True)
        return run_joined(
            oracle, {"sharing": "all features and reports", "join": "oracle (true person ids) - upper bound only"}
        )
