"""Watchlist: partners share hashed identifiers of reported fraud (mule IBANs, fraud numbers, fake
sellers' payout IBANs and phones); "on the shared list" becomes a feature. Models, rows and labels stay
each partner's own — only the list crosses the boundary (UK-style shared fraud database)."""

from __future__ import annotations

from fedsim.regimes.base import RegimeResult, RunContext, ScoringUnit, run_units


class Watchlist:
    name = "watchlist"

    def run(self, ctx: RunContext) -> RegimeResult:
        units = [
            ScoringUnit(home=(p,), context_from=(), watchlist_from=ctx.coalition, label_sources=(p,))
            for p in ctx.coalition
        ]
        return run_units(ctx, units, {"sharing": "hashed identifiers of reported fraud"})
