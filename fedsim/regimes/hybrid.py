"""Hybrid FL: banks horizontal, telco and marketplace vertical — the full chain in one run.

Protocol (kept as simple as is honest): FedAvg (McMahan et al. 2017) over the banks, where each
bank's local update is one pass of vertical split learning with the telco and the marketplace.

* Every partner of the label-holder kind (``federation.label_holder``, default ``bank``; a partner
  name stands for its kind) holds labels for its own rows; the other kinds are feature parties.
* Each bank aligns with each party by PSI and runs split learning on its own rows, exactly as in the
  vertical regime (:mod:`fedsim.regimes.vertical`), all banks side by side, batch by batch.
* A party keeps one bottom model per bank federation. After every round the coordinator averages the
  banks' label-side models (own bottom + top) weighted by training rows, and each party averages its
  per-bank bottoms with the same weights — so every round starts from one global split network, as in
  FedAvg of the whole network with each bank's vertical federation as one client. Optimisers restart
  each round (FedAvg's local training from the global model).
* Every bank standardises its own rows; every column carries a missing flag so the banks' input
  widths agree (a column missing only at one bank would otherwise change the model's shape).

The coordinator sees the banks' model arrays (no secure aggregation here) on top of what it relays in
the vertical regime; see :func:`fedsim.regimes.vertical.leakage_register`. A coalition with a single
bank runs the same protocol with one client (recorded as ``horizontal_holders = 1``).
"""

from __future__ import annotations

from dataclasses import replace

from fedsim.errors import FedsimError
from fedsim.regimes.base import RegimeResult, RunContext
from fedsim.regimes.vertical import Roles, resolve_roles, run_split_regime


def hybrid_roles(ctx: RunContext) -> Roles:
    """All coalition partners of the label holder's kind hold labels; the other kinds are parties."""
    wanted = ctx.federation.label_holder
    if wanted in ctx.coalition:
        wanted = ctx.features[wanted].block
    if wanted not in {ctx.features[p].block for p in ctx.coalition}:
        raise FedsimError(
            f"federation.label_holder = {ctx.federation.label_holder!r}: no partner of that "
            f"kind in coalition {'+'.join(ctx.coalition)}; allowed: a kind present in it"
        )
    return resolve_roles(replace(ctx, federation=ctx.federation.model_copy(update={"label_holder": wanted})))


class Hybrid:
    name = "hybrid"

    def run(self, ctx: RunContext) -> RegimeResult:
        roles = hybrid_roles(ctx)
        result = run_split_regime(ctx, mode="hybrid", roles=roles)
        result.params["horizontal_holders"] = len(roles.holders)
        return result
