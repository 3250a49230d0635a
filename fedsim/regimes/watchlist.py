"""Watchlist: partners share hashed identifiers of reported fraud (mule IBANs, fraud numbers, fake
sellers' payout IBANs and phones); "on the shared list" becomes a feature. Models, rows and labels stay
each partner's own — only the list crosses the boundary (UK-style shared fraud database)."""

from __future__ import annotations

from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext, ScoringUnit, run_units


class Watchlist(Regime):
    name = "watchlist"
    leakage = (
        LeakageRow(
            "each partner",
            "hashed identifiers (IBAN, phone, payout account) that another partner reported as fraud, with the "
            "time they were listed",
            "salted hashes; ε does not apply (the list is shared in the clear)",
        ),
        LeakageRow(
            "list operator", "every reported identifier hash and which partner reported it, and when", "salted hashes"
        ),
    )

    def score(self, ctx: RunContext) -> RegimeResult:
        units = [
            ScoringUnit(home=(p,), context_from=(), watchlist_from=ctx.coalition, label_sources=(p,))
            for p in ctx.coalition
        ]
        return run_units(ctx, units, {"sharing": "hashed identifiers of reported fraud"})
