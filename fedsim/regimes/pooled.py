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
"""

from __future__ import annotations

from dataclasses import replace

from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext, ScoringUnit, run_units
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


class Pooled(Regime):
    name = "pooled"
    leakage = CENTRAL_COPY

    def score(self, ctx: RunContext) -> RegimeResult:
        join = "oracle (true person ids)" if ctx.oracle_join else "salted-hash keys"
        traced = ctx if ctx.oracle_join else replace(ctx, truth=report_traced_truth(ctx))
        params = {"sharing": "all features and reports", "join": join, "labels": "reports traced by salted-hash key"}
        return run_units(traced, pooled_units(traced), params)


class PooledOracle(Regime):
    """Pooled with a perfect join on the hidden person ids: an upper bound, never a real option."""

    name = "pooled_oracle"
    leakage = CENTRAL_COPY

    def score(self, ctx: RunContext) -> RegimeResult:
        oracle = replace(ctx, oracle_join=True)
        return run_units(
            oracle,
            pooled_units(oracle),
            {"sharing": "all features and reports", "join": "oracle (true person ids) - upper bound only"},
        )
