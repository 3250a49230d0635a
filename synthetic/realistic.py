"""The realistic world, step by step: population → legitimate activity → fraud → partner views.

Legitimate activity is generated in time shards, each with its own seed stream, optionally in
several processes; the merged ledger is identical whatever the number of workers.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa

from synthetic.behaviour import activate_new_numbers, legit_shard, open_young_accounts, shards
from synthetic.config import WorldConfig
from synthetic.fraud import INJECTORS
from synthetic.fraud.common import Crews, FraudContext, MarketAccounts
from synthetic.ids import Keys
from synthetic.known_answer import placebo_partner
from synthetic.ledger import Ledger
from synthetic.population import Population, RawIds, build_population
from synthetic.schema import FRAUD_TYPES
from synthetic.views import ViewBuilder
from synthetic.world_data import World


def _market_accounts(pop: Population, ids: RawIds) -> MarketAccounts:
    has = pop.market_user >= 0
    return MarketAccounts(
        raw=pop.market_user.copy(),
        owner=np.arange(pop.n),
        market=pop.market.copy(),
        created_ts=pop.market_created.copy(),
        phone=np.where(has, pop.phone, -1),
        email=ids.take(pop.n),
        payout_acct=np.where(has, pop.current_acct, -1),
        device=pop.device.copy(),
    )


def _run_shards(config: WorldConfig, seed: int, pop: Population, workers: int, progress: Any) -> list[Ledger]:
    spans = shards(config.population.days)
    task = progress.add_task("legitimate activity", total=len(spans)) if progress is not None else None
    results: list[Ledger] = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(legit_shard, config, seed, pop, d0, d1) for d0, d1 in spans]
            for fut in futures:  # in shard order, so the merge is deterministic
                results.append(fut.result())
                if task is not None:
                    progress.advance(task)
    else:
        for d0, d1 in spans:
            results.append(legit_shard(config, seed, pop, d0, d1))
            if task is not None:
                progress.advance(task)
    return results


def generate_realistic(
    config: WorldConfig, seed: int, *, workers: int = 1, progress: Any = None, keys: Keys | None = None
) -> World:
    """The realistic world of (config, seed). ``keys``: the join keys of a world with a secret (``seed`` is
    then its secret root, :meth:`synthetic.ids.WorldSecret.root`); default: a salt drawn from the seed."""
    ids = RawIds(seed, capacity=config.population.persons * 12 + 200_000)
    pop = build_population(config, seed, ids)
    market = _market_accounts(pop, ids)
    ledger = Ledger()
    open_young_accounts(config, seed, pop, ids, ledger)
    activate_new_numbers(config, seed, pop, ledger)
    for shard in _run_shards(config, seed, pop, workers, progress):
        for table, chunks in shard.chunks.items():
            ledger.chunks[table].extend(chunks)
    ctx = FraudContext(config=config, seed=seed, pop=pop, ids=ids, ledger=ledger, market_accounts=market, crews=Crews())
    for fraud_type in FRAUD_TYPES:
        INJECTORS[fraud_type](ctx)
    tables = ledger.finalize()
    vb = ViewBuilder(config, seed, pop, market, ctx, tables, keys=keys)
    vb.build_banks()
    vb.build_telcos()
    vb.build_marketplaces()
    if config.partners.placebo:
        view, entity_rows = placebo_partner(
            pop.phone,
            pop.person_id,
            days=config.population.days,
            seed=seed,
            salt=vb.keys.salt,
            person_roles=pop.role.astype(str),
            keys=keys,
        )
        vb.partners[view.name] = view
    truth = vb.truth_tables()
    if config.partners.placebo:
        truth["entities"] = pa.concat_tables([truth["entities"], entity_rows])
    return World(config=config, seed=seed, partners=vb.partners, truth=truth)
