"""Siloed: each partner trains and alerts on its own data and its own reports only (today's practice).

`siloed` scores one partner alone (cases it cannot see count as misses); `status_quo` is every
partner of the world doing this side by side, each within its own alert capacity.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext, run_units
from fedsim.rows import silo

NOTHING_SHARED = (LeakageRow("each partner", "only its own customers' data and its own reports", "—"),)


class Siloed(Regime):
    name = "siloed"
    leakage = NOTHING_SHARED

    def coalitions(self, listed: Sequence[tuple[str, ...]], partners: Sequence[str]) -> list[tuple[str, ...]]:
        """One cell per partner named in any coalition: each partner alone."""
        return [(p,) for p in dict.fromkeys(p for c in listed for p in c)]

    def score(self, ctx: RunContext) -> RegimeResult:
        return run_units(ctx, [silo(p) for p in ctx.coalition], {"sharing": "none"})


class StatusQuo(Regime):
    """Every partner of the world siloed, side by side (the coalitions of the experiment do not matter)."""

    name = "status_quo"
    leakage = NOTHING_SHARED

    def coalitions(self, listed: Sequence[tuple[str, ...]], partners: Sequence[str]) -> list[tuple[str, ...]]:
        return [tuple(sorted(partners))]

    def score(self, ctx: RunContext) -> RegimeResult:
        return run_units(ctx, [silo(p) for p in ctx.world.partners], {"sharing": "none (every partner siloed)"})
