"""A transparent rules engine: what fraud-chain partners run today (issue 11, experiment E0).

A *rule* is a named conjunction of readable conditions on a partner's own as-of features (the columns of
:func:`fedsim.rows.unit_frame`, so every input obeys the point-in-time discipline that
:mod:`fedsim.truncation` checks). At most one condition per rule has a *tuned* threshold; the others are
fixed flags ("a new payee", "a remote-access tool in the last hour").

Tuning uses the partner's **training window only** (its own reported fraud as labels, the negatives
subsampled and re-weighted exactly as for the models): among candidate thresholds at fixed quantiles of
the training values, the one with the highest (weighted) precision that still catches at least
``min_recall`` of the positive training rows; ties go to the looser threshold (more recall). This is the
usual way rule thresholds are set in transaction monitoring — a precision target with a floor on coverage
(e.g. Bolton & Hand, "Statistical fraud detection: a review", Statistical Science 17(3), 2002, §3 on
rule-based systems) — and it never reads a test-window row.

The score of a decision row is a *points* score, as in a scorecard: each fired rule adds its points
(1–10, from its training precision, ``round(10 · precision)``, at least 1). Rows that fire the same points
are ordered by how close they came to firing the others — ``0.1 ×`` the points-weighted share of
conditions met, which is below one point, so it never overturns a fired rule. The evaluation then ranks
entity-days by this score at the same alert capacity as the models.

Signals the issue names that have no feature here (:data:`MISSING_SIGNALS`) are stated, not faked.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {">=": operator.ge, "<=": operator.le}
QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995)
"""Candidate thresholds: these quantiles of a column's training values, of all rows and of the positive rows
(for "<=", the 1 − q quantiles)."""
MAX_FIRE_SHARE = 0.05
"""A tuned rule may fire on at most this (weighted) share of training rows: a rule that flags every other
payment is not an alert rule. The candidates include "off" (threshold ±inf, fires on nothing)."""
PARTIAL_WEIGHT = 0.1
"""Weight of the tie-break (share of conditions met): below one point, so a fired rule always ranks higher."""


@dataclass(frozen=True)
class Condition:
    """``column op threshold``; ``threshold=None`` means tuned on the training window."""

    column: str
    op: str
    threshold: float | None = None

    def text(self, threshold: float | None = None) -> str:
        t = self.threshold if threshold is None else threshold
        return f"{self.column} {'≥' if self.op == '>=' else '≤'} {'?' if t is None else f'{t:.4g}'}"


@dataclass(frozen=True)
class Rule:
    """A named conjunction of conditions; at most one of them is tuned."""

    name: str
    says: str  # the rule in a policymaker's words
    conditions: tuple[Condition, ...]

    def __post_init__(self) -> None:
        if sum(c.threshold is None for c in self.conditions) > 1:
            raise ValueError(f"rule {self.name}: at most one tuned condition; got {self.conditions}")
        if any(c.op not in OPS for c in self.conditions):
            raise ValueError(f"rule {self.name}: operators allowed: {sorted(OPS)}")


def _flag(column: str) -> Condition:
    return Condition(column, ">=", 1.0)


BANK_RULES = (
    Rule("new_payee", "payment to a payee never paid before", (_flag("ev_new_payee"),)),
    Rule("high_amount", "payment amount above a tuned threshold", (Condition("ev_amount", ">="),)),
    Rule(
        "remote_access_tool",
        "a remote-access tool was active in a session in the last hour",
        (_flag("{block}__remote_access_1h"),),
    ),
    Rule(
        "savings_to_current",
        "money moved between the customer's own accounts in the last hour, above a tuned amount",
        (Condition("{block}__own_transfer_sum_1h", ">="),),
    ),
    Rule(
        "new_payee_high_amount",
        "a new payee and an amount above a tuned threshold together",
        (_flag("ev_new_payee"), Condition("ev_amount", ">=")),
    ),
)
TELCO_RULES = (
    Rule(
        "spoofed_international_call",
        "an inbound call or text whose caller ID does not match the international trunk it came in on",
        (_flag("ev_inbound"), _flag("ev_mismatch"), _flag("ev_international")),
    ),
    Rule(
        "spoofed_international_long_call",
        "a spoofed caller ID and an international trunk in the last hour, and an inbound call longer than 15 "
        "minutes ended in the last hour",
        (_flag("{block}__mismatch_1h"), _flag("{block}__intl_1h"), _flag("{block}__long_call_ended_1h")),
    ),
)
MARKETPLACE_RULES = (
    Rule(
        "iban_in_chat_new_account",
        "an IBAN in the user's chat messages (now or in the last 24 h) on an account younger than a tuned age",
        (_flag("{block}__iban_out_24h"), Condition("{block}__account_age_d", "<=")),
    ),
    Rule(
        "iban_now_new_account",
        "the message under review contains an IBAN and the account is younger than a tuned age",
        (_flag("ev_iban"), Condition("{block}__account_age_d", "<=")),
    ),
    Rule(
        "payment_link_received", "a link arrived in the user's chat in the last 24 h", (_flag("{block}__url_in_24h"),)
    ),
)
SIGNAL_RULES = (
    Rule("high_signal", "the partner's evidence value above a tuned threshold", (Condition("{block}__x", ">="),)),
)
RULES: dict[str, tuple[Rule, ...]] = {
    "bank": BANK_RULES,
    "telco": TELCO_RULES,
    "marketplace": MARKETPLACE_RULES,
    "signals": SIGNAL_RULES,  # known-answer worlds: one evidence column per partner
}
"""The rule book per partner kind; ``{block}`` is the partner's feature prefix."""

MISSING_SIGNALS: dict[str, tuple[str, ...]] = {
    "bank": (
        "remote-access tool 'within minutes' of the payment: the nearest feature is a 1-hour window",
        "savings-to-current: own transfers are not split by direction (any move between own accounts counts)",
    ),
    "telco": ("'during a long call': a call's length is known only when it ends (long call ended in the last hour)",),
    "marketplace": (
        "a payment link *sent* on a new account: links are only seen on the receiving side, whose account age "
        "is not the sender's",
    ),
    "signals": (),
}
"""Signals the issue names that the partners' features do not carry, in words (logged with every run)."""


@dataclass(frozen=True)
class TunedRule:
    rule: Rule
    thresholds: tuple[float, ...]  # one per condition (fixed or tuned)
    points: int
    precision: float  # weighted precision on the training rows
    recall: float  # share of positive training rows it fires on
    fired_share: float  # weighted share of training rows it fires on

    def text(self) -> str:
        cond = " and ".join(c.text(t) for c, t in zip(self.rule.conditions, self.thresholds, strict=True))
        return f"{self.rule.name}: {cond} [{self.points} pts]"


@dataclass(frozen=True)
class RuleBook:
    """A partner's tuned rules: scores decision rows, says which rules fired."""

    rules: tuple[TunedRule, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def fired(self, X: pd.DataFrame) -> pd.DataFrame:
        """Row × rule booleans (a missing column or NaN value never fires)."""
        return pd.DataFrame({t.rule.name: _all(_met(X, t)) for t in self.rules}, index=X.index)

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Points of the fired rules plus the sub-point tie-break (module docstring)."""
        if not self.rules:
            return np.zeros(len(X))
        points = np.zeros(len(X))
        partial = np.zeros(len(X))
        for t in self.rules:
            met = _met(X, t)
            points += t.points * _all(met)
            partial += t.points * met.mean(axis=1)
        total = sum(t.points for t in self.rules)
        return points + PARTIAL_WEIGHT * partial / total

    def text(self) -> str:
        return "; ".join(t.text() for t in self.rules)


def _met(X: pd.DataFrame, t: TunedRule) -> np.ndarray:
    """Row × condition booleans of one tuned rule."""
    cols = []
    for c, thr in zip(t.rule.conditions, t.thresholds, strict=True):
        v = X[c.column].to_numpy(float) if c.column in X else np.full(len(X), np.nan)
        cols.append(np.where(np.isnan(v), False, OPS[c.op](np.nan_to_num(v), thr)))
    return np.column_stack(cols) if cols else np.ones((len(X), 0), bool)


def _all(met: np.ndarray) -> np.ndarray:
    if met.shape[1] == 0:
        return np.zeros(met.shape[0], bool)
    return np.asarray(met.all(axis=1), dtype=bool)


def resolve(rules: tuple[Rule, ...], block: str) -> tuple[Rule, ...]:
    """Fill the partner's feature prefix into the rules' column names."""
    return tuple(
        Rule(r.name, r.says, tuple(Condition(c.column.format(block=block), c.op, c.threshold) for c in r.conditions))
        for r in rules
    )


def tune(
    rules: tuple[Rule, ...], X: pd.DataFrame, y: np.ndarray, weight: np.ndarray, *, min_recall: float = 0.05
) -> RuleBook:
    """Tune each rule's threshold on training rows ``X`` (labels ``y``, weights ``weight``); module docstring."""
    y = np.asarray(y).astype(bool)
    w = np.asarray(weight, dtype=float)
    tuned = tuple(_tune_one(r, X, y, w, min_recall) for r in rules)
    notes = () if y.any() else ("no reported fraud in the training window: each rule at its strictest candidate",)
    return RuleBook(tuned, notes)


def _tune_one(rule: Rule, X: pd.DataFrame, y: np.ndarray, w: np.ndarray, min_recall: float) -> TunedRule:
    fixed = [c.threshold if c.threshold is not None else np.nan for c in rule.conditions]
    free = [i for i, c in enumerate(rule.conditions) if c.threshold is None]
    candidates: list[tuple[float, ...]] = [tuple(fixed)]
    if free:
        i = free[0]
        col = rule.conditions[i].column
        values = _candidates(X[col].to_numpy(float) if col in X else np.full(len(X), np.nan), y, rule.conditions[i].op)
        candidates = [tuple(float(x) if j == i else fixed[j] for j in range(len(fixed))) for x in values]
    stats = [_stats(rule, t, X, y, w) for t in candidates]
    if not y.any():  # nothing to learn from: the strictest candidate (the one firing least), 1 point
        best = min(range(len(stats)), key=lambda k: (stats[k][2], k))
        return TunedRule(rule, candidates[best], 1, 0.0, 0.0, stats[best][2])
    narrow = [k for k, s in enumerate(stats) if s[2] <= MAX_FIRE_SHARE] or [
        min(range(len(stats)), key=lambda k: (stats[k][2], k))
    ]
    ok = [k for k in narrow if stats[k][1] >= min_recall] or narrow
    # highest precision; among equals the largest recall (the looser threshold); then the candidate order
    best = max(ok, key=lambda k: (stats[k][0], stats[k][1], -k))
    precision, recall, share = stats[best]
    return TunedRule(rule, candidates[best], max(1, round(10 * precision)), precision, recall, share)


def _candidates(v: np.ndarray, y: np.ndarray, op: str) -> np.ndarray:
    """Candidate thresholds of a tuned condition: quantiles of all training values and of the positives'."""
    ok = ~np.isnan(v)
    off = np.inf if op == ">=" else -np.inf  # never fires: the rule is switched off
    if not ok.any():
        return np.array([off])
    qs = np.array(QUANTILES) if op == ">=" else 1 - np.array(QUANTILES)
    # a mostly-zero column (own transfers, logins) has all its quantiles at 0: look past the floor value too
    floor = v[ok].min() if op == ">=" else v[ok].max()
    beyond = ok & (v != floor)
    parts = [np.quantile(v[ok], qs), np.array([off])]
    if beyond.any():
        parts.append(np.quantile(v[beyond], qs))
    if (ok & y).any():
        parts.append(np.quantile(v[ok & y], np.linspace(0.1, 0.9, 9)))
    return np.unique(np.concatenate(parts))


def _stats(
    rule: Rule, thresholds: tuple[float, ...], X: pd.DataFrame, y: np.ndarray, w: np.ndarray
) -> tuple[float, float, float]:
    """(weighted precision, recall over positive rows, weighted share of rows fired) of one candidate."""
    fired = _all(_met(X, TunedRule(rule, thresholds, 1, 0.0, 0.0, 0.0)))
    wf = w[fired].sum()
    precision = float(w[fired & y].sum() / wf) if wf > 0 else 0.0
    recall = float((fired & y).sum() / max(y.sum(), 1))
    return precision, recall, float(wf / max(w.sum(), 1e-12))


def rule_book_for(kind: str, block: str) -> tuple[Rule, ...]:
    """The untuned rules of a partner kind with its feature prefix filled in."""
    return resolve(RULES.get(kind, ()), block)


def fired_counts(book: RuleBook, X: pd.DataFrame) -> Mapping[str, int]:
    """Rule → number of rows it fired on."""
    f = book.fired(X)
    return {c: int(f[c].sum()) for c in f.columns}
