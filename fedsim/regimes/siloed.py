"""Siloed: each partner trains and alerts on its own data and its own reports only (today's practice).

`siloed` scores one partner alone (cases it cannot see count as misses); `status_quo` is every
partner of the world doing this side by side, each within its own alert capacity.
"""

from __future__ import annotations

from fedsim.regimes.base import RegimeResult, RunContext, run_units
from fedsim.rows import silo


class Siloed:
    name = "siloed"

    def run(self, ctx: RunContext) -> RegimeResult:
        return run_units(ctx, [silo(p) for p in ctx.coalition], {"sharing": "none"})


class StatusQuo:
    name = "status_quo"

    def run(self, ctx: RunContext) -> RegimeResult:
        return run_units(ctx, [silo(p) for p in ctx.world.partners], {"sharing": "none (every partner siloed)"})
