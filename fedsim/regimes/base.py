"""The one contract every data-sharing regime fulfils, and the pieces they share.

A regime decides, for a coalition, three things only:

1. **rows** — which partners' decision rows one model scores (a *scoring unit*);
2. **features** — what each row may see: its own partner's features, a shared watchlist, or other
   partners' features joined by salted-hash keys as of the same moment;
3. **labels** — whose reports train the model (its own, or the whole coalition's).

Everything else — the training loop, negative subsampling, scoring, entity-day aggregation and the
daily alert capacity (applied later by the evaluation) — is the same code for every regime, so a
difference between regimes is a difference in sharing, not in plumbing.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from fedsim.errors import FedsimError
from fedsim.regimes.fitting import fit_scorer
from fedsim.rows import (
    DAY,
    JOIN_KEYS,
    RunContext,
    ScoringUnit,
    TrainingSettings,
    context_features,
    entity_days,
    key_matches,
    silo,
    unit_frame,
    watchlist_entries,
    watchlist_features,
)
from fedsim.settings import FederationSettings

logger = logging.getLogger("fedsim.regimes")

__all__ = [
    "DAY",
    "JOIN_KEYS",
    "LeakageRow",
    "Regime",
    "RegimeResult",
    "RunContext",
    "ScoringUnit",
    "TrainingSettings",
    "coalition_kinds",
    "context_features",
    "entity_days",
    "fit_and_score",
    "key_matches",
    "run_units",
    "silo",
    "unit_frame",
    "watchlist_entries",
    "watchlist_features",
]


@dataclass
class RegimeResult:
    scores: pd.DataFrame  # partner, entity_id, day, decision_ts, score (test window)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    second_scores: pd.DataFrame | None = None  # the later drift window, if the split has one
    step_metrics: dict[str, list[float]] = field(default_factory=dict)  # per-round curves


@dataclass(frozen=True)
class LeakageRow:
    """One row of the leakage register (evaluation.md §5): who learns what, and what limits it."""

    party: str
    learns: str
    limited_by: str


ALL_MODELS: frozenset[str] = frozenset({"logistic", "mlp", "gbt"})
TORCH_MODELS: frozenset[str] = frozenset({"logistic", "mlp"})


def coalition_kinds(ctx: RunContext) -> dict[str, str]:
    """Partner → feature block (its kind: bank, telco, marketplace) for the coalition of a run."""
    return {p: ctx.features[p].block for p in ctx.coalition}


class Regime(ABC):
    """A data-sharing regime: it owns its rules. Subclass, set the class attributes, implement :meth:`score`.

    Attributes (class level, read by the grid, the experiment loader and the leakage register):

    * ``name`` — the word experiment files use;
    * ``federated`` — trains across partners through Flower (gets the experiment's ``federation``
      settings and a place in their config hash) rather than on one party's rows;
    * ``models`` — model families it trains (``gbt`` only where one party trains on rows it holds);
    * ``split_network`` — trains the split network whatever ``models`` lists (its cells use ``mlp``);
    * ``refuses`` — :class:`~fedsim.settings.FederationSettings` fields it cannot honour: a non-default
      value is refused when the experiment is loaded instead of being silently ignored;
    * ``dp_capable`` — can train under DP; if not, the grid expands only the experiment's non-DP point for it
      (instead of cells that would fail at run time);
    * ``trains_model`` — its scores come from a trained model; if not (e.g. ``rules``), every model of the
      experiment would give the same run, so the grid expands only the first model listed;
    * ``settings_model`` — a frozen pydantic model of the regime's own settings (fields with descriptions and
      defaults), set in the experiment's ``regime_settings: {<name>: {...}}``, validated when the file is
      loaded; the regime reads them typed with ``ctx.settings(<model>)``. None: the regime has no settings;
    * ``leakage`` — its rows of the leakage register.
    """

    name: ClassVar[str]
    federated: ClassVar[bool] = False
    models: ClassVar[frozenset[str]] = ALL_MODELS
    split_network: ClassVar[bool] = False
    refuses: ClassVar[tuple[str, ...]] = ()
    dp_capable: ClassVar[bool] = True
    trains_model: ClassVar[bool] = True
    settings_model: ClassVar[type[BaseModel] | None] = None
    leakage: ClassVar[tuple[LeakageRow, ...]] = ()

    def coalitions(self, listed: Sequence[tuple[str, ...]], partners: Sequence[str]) -> list[tuple[str, ...]]:
        """The coalitions this regime runs, from the experiment's (sorted) coalitions and the world's partners.

        Default: every listed coalition of two or more partners (sharing needs someone to share with)."""
        return [c for c in listed if len(c) >= 2]

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        """None if the regime can run on ``coalition`` (``kinds``: partner → kind), else why not, in words
        that name the regime and the coalition. Default: every coalition."""
        return None

    def refuse_settings(self, federation: FederationSettings) -> dict[str, object]:
        """The federation settings this regime would ignore but that are set (name → value)."""
        return federation.non_defaults(self.refuses)

    def run(self, ctx: RunContext) -> RegimeResult:
        """Check the coalition (before any work), then train and score."""
        reason = self.admits(ctx.coalition, coalition_kinds(ctx), ctx.federation)
        if reason is not None:
            raise FedsimError(reason)
        return self.score(ctx)

    @abstractmethod
    def score(self, ctx: RunContext) -> RegimeResult:
        """Train on the train window and score the test window(s): entity-day scores, params, metrics."""


@dataclass(frozen=True)
class UnitScores:
    """One unit's entity-day scores (test window), metrics, text params and second-window scores (or None)."""

    scores: pd.DataFrame
    metrics: dict[str, float]
    params: dict[str, str]
    second_scores: pd.DataFrame | None


def fit_and_score(ctx: RunContext, unit: ScoringUnit) -> UnitScores:
    """Train the unit's model on the train window; score the test (and second test) window."""
    t0 = time.perf_counter()
    X, idx = unit_frame(
        ctx, unit, (ctx.split.train_start, ctx.split.train_end), labels_before=ctx.split.train_end, train=True
    )
    y = idx["y"].to_numpy()
    info = {"train_rows": float(len(y)), "train_positives": float(y.sum())}
    weight = np.where(y == 1, 1.0, 1.0 / ctx.training.negative_rate)
    # groups: the unit of privacy under DP (partner entity); times: where the early-stopping slice is cut
    fitted = fit_scorer(
        ctx, X, y, weight, groups=idx[["partner", "entity_id"]].to_numpy(), times=idx["decision_ts"].to_numpy()
    )
    info.update(fitted.metrics)
    scored = []
    for window in [(ctx.split.test_start, ctx.split.test_end)] + (
        [ctx.split.second_test] if ctx.split.second_test else []
    ):
        Xt, it = unit_frame(ctx, unit, window, labels_before=ctx.split.train_end, train=False)
        it["score"] = fitted.scorer(Xt.reindex(columns=X.columns))
        scored.append(entity_days(it))
    info["fit_seconds"] = time.perf_counter() - t0
    logger.info(
        "scored %s with %s features, %d training rows (%d reported-fraud rows)",
        "+".join(unit.home),
        X.shape[1],
        len(y),
        int(y.sum()),
    )
    return UnitScores(scored[0], info, fitted.params, scored[1] if len(scored) > 1 else None)


def run_units(ctx: RunContext, units: list[ScoringUnit], params: dict[str, Any]) -> RegimeResult:
    """Fit and score every unit; metrics and the fit's text params get the unit's name as suffix."""
    scores, seconds, metrics, unit_params = [], [], {}, {}
    for u in units:
        out = fit_and_score(ctx, u)
        scores.append(out.scores)
        if out.second_scores is not None:
            seconds.append(out.second_scores)
        name = "+".join(u.home)
        metrics.update({f"{k}.{name}": v for k, v in out.metrics.items()})
        unit_params.update({f"{k}.{name}": v for k, v in out.params.items()})
    return RegimeResult(
        scores=pd.concat(scores, ignore_index=True),
        params={**params, **unit_params},
        metrics=metrics,
        second_scores=pd.concat(seconds, ignore_index=True) if seconds else None,
    )
