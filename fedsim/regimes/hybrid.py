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
the vertical regime; see :func:`fedsim.regimes.vertical.leakage_register`.

Privacy (``privacy.epsilon``) as in the vertical regime (:mod:`fedsim.federation.vertical.split_dp`):
every bank applies label DP (randomized response) to its own training labels, and each party trains its
per-bank bottom models with DP-SGD; a party's entity may sit in every bank's federation, so its σ is
chosen, and its ε accounted, for the composition of all of them (``dp_epsilon.<party>``). The banks'
label-side models are not DP-trained: their features reach the coordinator through the averaged arrays.

A coalition needs two or more label holders (:meth:`Hybrid.admits`); with one, the vertical regime is
the same protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from fedsim.errors import FedsimError
from fedsim.regimes.base import Regime, RegimeResult, RunContext
from fedsim.regimes.vertical import SPLIT_IGNORES, SPLIT_MODELS, Roles, register_rows, resolve_roles, run_split_regime
from fedsim.settings import FederationSettings


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


class Hybrid(Regime):
    name = "hybrid"
    federated = True
    models = SPLIT_MODELS
    split_network = True
    refuses = SPLIT_IGNORES
    leakage = register_rows("hybrid")

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        """Two or more partners of the label holder's kind (horizontal) and one of another kind (vertical)."""
        wanted = (federation or FederationSettings()).label_holder
        kind = kinds[wanted] if wanted in coalition else wanted
        blocks = [kinds[p] for p in coalition]
        if blocks.count(kind) >= 2 and len(set(blocks)) >= 2:
            return None
        return (
            f"regime hybrid, coalition = {'+'.join(coalition)}: hybrid FL needs at least two partners of the "
            f"label holder's kind ({kind}) and one of another kind; kinds here: "
            + ", ".join(f"{p} ({kinds[p]})" for p in coalition)
        )

    def score(self, ctx: RunContext) -> RegimeResult:
        roles = hybrid_roles(ctx)
        result = run_split_regime(ctx, mode="hybrid", roles=roles)
        result.params["fl_horizontal_holders"] = len(roles.holders)
        return result
