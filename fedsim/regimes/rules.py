"""Rules (E0): every partner runs its own transparent rules, as partners do today — no model, no sharing.

Each partner of the world tunes the rule book of its kind (:mod:`fedsim.rules`) on its own training rows and
its own reports (the silo's rows, labels and negative subsampling, so rules and models see the same training
data), then scores its test-window decision rows with the rules' points; the evaluation ranks the entity-days
at the same calibrated alert capacity as the models. Like ``status_quo`` it runs every partner side by side,
whatever coalitions the experiment lists, so ``rules`` − ``status_quo`` is "own models instead of rules".

Each run logs, per partner, the tuned rule book in words (``rules.<partner>``), the signals the features do
not carry (``rules_missing.<kind>``), and per rule its points, training precision and recall, and how often it
fired on test-window rows — what a policymaker needs to read what the rules did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError
from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext
from fedsim.rows import entity_days, silo, unit_frame
from fedsim.rules import MISSING_SIGNALS, RuleBook, fired_counts, rule_book_for, tune


def tune_partner(ctx: RunContext, partner: str) -> RuleBook:
    """The partner's rule book tuned on its training window (own rows, own reports; nothing from the test window)."""
    X, idx = unit_frame(
        ctx, silo(partner), (ctx.split.train_start, ctx.split.train_end), labels_before=ctx.split.train_end, train=True
    )
    y = idx["y"].to_numpy()
    weight = np.where(y == 1, 1.0, 1.0 / ctx.training.negative_rate)  # undo the negative subsampling
    rules = rule_book_for(ctx.kinds[partner], ctx.features[partner].block)
    return tune(rules, X, y, weight)


def score_partner(ctx: RunContext, partner: str, book: RuleBook, window: tuple[int, int]) -> tuple[pd.DataFrame, dict]:
    """Entity-day rule scores of one window and how many decision rows each rule fired on."""
    X, idx = unit_frame(ctx, silo(partner), window, labels_before=ctx.split.train_end, train=False)
    idx = idx.assign(score=book.score(X))
    return entity_days(idx), dict(fired_counts(book, X))


class Rules(Regime):
    """Every partner alone with a tuned, readable rule book (module docstring)."""

    name = "rules"
    dp_capable = False  # thresholds are tuned in the clear: the grid runs rules at ε = inf only
    trains_model = False  # every model setting gives the same run: the grid runs the first model listed
    leakage = (LeakageRow("each partner", "only its own customers' data and its own reports (its own rules)", "—"),)

    def coalitions(self, listed: Sequence[tuple[str, ...]], partners: Sequence[str]) -> list[tuple[str, ...]]:
        return [tuple(sorted(partners))]

    def score(self, ctx: RunContext) -> RegimeResult:
        if not math.isinf(ctx.epsilon) or ctx.privacy is not None:
            raise FedsimError(
                f"regime = 'rules' at ε = {ctx.epsilon:g}: rule thresholds are not tuned under DP; allowed: ε = inf"
            )
        params: dict[str, Any] = {
            "sharing": "none (every partner runs its own rules)",
            "scorer": f"rules (points of fired rules); the {ctx.model!r} model setting is not used",
        }
        metrics: dict[str, float] = {}
        scores, seconds = [], []
        for p in ctx.world.partners:
            book = tune_partner(ctx, p)
            params[f"rules.{p}"] = book.text() or "no rules for this kind"
            if book.notes:
                params[f"rules_note.{p}"] = "; ".join(book.notes)
            missing = MISSING_SIGNALS.get(ctx.kinds[p], ())
            if missing:
                params[f"rules_missing.{ctx.kinds[p]}"] = "; ".join(missing)
            test, fired = score_partner(ctx, p, book, (ctx.split.test_start, ctx.split.test_end))
            scores.append(test)
            if ctx.split.second_test:
                seconds.append(score_partner(ctx, p, book, ctx.split.second_test)[0])
            for t in book.rules:
                key = f"{p}.{t.rule.name}"
                metrics[f"rule_points.{key}"] = float(t.points)
                metrics[f"rule_precision_train.{key}"] = t.precision
                metrics[f"rule_recall_train.{key}"] = t.recall
                metrics[f"rule_fired_test.{key}"] = float(fired[t.rule.name])
        return RegimeResult(
            scores=pd.concat(scores, ignore_index=True),
            params=params,
            metrics=metrics,
            second_scores=pd.concat(seconds, ignore_index=True) if seconds else None,
        )
