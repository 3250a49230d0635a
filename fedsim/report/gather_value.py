"""The coalition game's tables at the report's headline (model, ε): `fedsim value`'s own steps
(:func:`fedsim.value.games_of` → :func:`~fedsim.value.sample_game` → :func:`~fedsim.value.analyse`, evaluation.md
§4: v(S) on the common test set, CIs over cases × training seeds), run only for the games the report shows, on the
store it already opened (the runs table and world are read once).

Regimes that run every partner side by side (status quo, rules) are no coalition game: :mod:`fedsim.value` leaves
status quo out; rules is left out here too (its one coalition is every partner, outside a lattice of fewer).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from fedsim.report.gather_store import Store

logger = logging.getLogger("fedsim.report")


def side_by_side(regime: str) -> bool:
    """Whether the regime runs every partner alone, side by side (its only coalition is everyone)."""
    from fedsim.regimes import get_regime

    return get_regime(regime).coalitions([], ("x", "y")) == [("x", "y")]


def value_metric(spec: Any) -> str:
    """The game's outcome: the primary metric when it is defined on the common test set, else ED(0)."""
    from fedsim.errors import FedsimError
    from fedsim.value import outcome_of

    metric = spec.primary.metric if spec.primary else "ed_h0"
    try:
        outcome_of(metric)
    except FedsimError:
        return "ed_h0"  # AP, lift, recall, precision depend on the rows S scores: no common test set
    return metric


def game_entries(store: Store, cell: tuple[str, str]) -> list[dict[str, Any]]:
    """`fedsim value`'s entries (one per game regime and fraud type) at ``cell`` = (model, ε); [] without a
    coalition lattice or a game."""
    from fedsim.errors import FedsimError
    from fedsim.runner import partners_of
    from fedsim.value import analyse, games_of, outcome_of, sample_game

    spec = store.spec
    if spec.lattice is None:
        return []
    outcome = outcome_of(value_metric(spec))
    games = [
        g
        for g in games_of(spec, store.runs, partners_of(spec))
        if (g.model, g.epsilon) == cell and not side_by_side(g.regime)
    ]
    (k,) = store.world.capacity.fractions([store.scale])
    entries = []
    for game in games:
        try:
            with warnings.catch_warnings():  # a coalition no seed ran averages an empty column: NaN, said as such
                warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
                per_type = sample_game(
                    game,
                    store.world.ws,
                    outcome=outcome,
                    k=k,
                    weights=store.world.capacity.weights,
                    n_boot=spec.metrics.bootstrap,
                    scores_of=store.scores_of,
                )
                for fraud_type, sample in per_type.items():
                    scope = f"{game.regime}|{game.model}|{game.epsilon}|{fraud_type}"
                    tables = analyse(sample, scope=scope, margin=0.0, permutations=_permutations(store, game))
                    entries.append({"regime": game.regime, "fraud_type": fraud_type, "not_run": game.missing, **tables})
        except FedsimError as err:
            logger.warning("report: no partner values for %s (%s)", game.regime, err)
    return entries


def _permutations(store: Store, game: Any) -> Any:
    """The sampled orders of a lattice above ``max_exact`` players (as `fedsim value` draws them), else None."""
    from fedsim.evaluation.value import sample_permutations
    from fedsim.runner import partners_of

    lattice = store.spec.lattice
    if lattice is None or lattice.exact(partners_of(store.spec)):
        return None
    return sample_permutations(len(game.players), lattice.permutations, lattice.permutation_seed)
