"""Case-level outcomes for one alert set: first alert, early detection, prevented loss, lead time, phase.

All functions are pure and work on arrays aligned with a list of evaluated case ids (shape (n_cases,)).
Times are int64/float seconds since world start; ``t_alert`` is float with NaN for "never alerted".
Definitions follow evaluation.md §2 (count each case once).

**One clock** (issue 9). Early detection and prevented loss use the same rule, :func:`acts_before`:
an intervention that lands at ``t_act`` stops a money-out at ``ts`` only when ``t_act < ts``
(strictly). A payment scored at its own request (``decision_ts == ts``) is *not* stopped: the score
of an entity-day becomes available at its ``decision_ts`` and real-time screening at latency Δ = 0
still needs the decision before the money moves, so a tie is counted as too late (the conservative
reading). Hence

* ED(h): ``t_alert + h·3600 < t_loss`` — the case was alerted more than h hours before its first
  money-out (for h = 0: strictly before the money left);
* prevented € at latency Δ: the case's money-outs with ``ts > t_alert + Δ·3600``.

With h = Δ = 0 the two agree case by case: a case counts as caught before the money left exactly
when its first money-out (at t_loss) counts as prevented, and then all its money-outs are prevented.

``t_alert`` depends on the alert rule (``ALERT_RULES``): by default (``role_window``) it is the
first alerted entity-day that is *positive for the case*, i.e. of an entity of the case inside that
entity's role window (:mod:`fedsim.evaluation.labels`: victims from contact, crew from preparation,
up to the last money movement). ``any_entity`` is the literal reading of evaluation.md §2: the first
alert on any entity of the case at any time, including alerts outside the role windows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedsim.evaluation.inputs import ALERT_RULES, SECONDS_PER_HOUR
from synthetic.schema import PHASES

BEFORE_FIRST_PHASE = "before_orientation"
UNDETECTED = "undetected"
PHASE_LABELS: tuple[str, ...] = (BEFORE_FIRST_PHASE, *PHASES, UNDETECTED)
"""Phase a case was in at t_alert; shares over these labels sum to 1 over all evaluated cases."""


def first_alert_ts(
    pairs: pd.DataFrame, *, decision_ts: np.ndarray, alerted: np.ndarray, case_ids: np.ndarray
) -> np.ndarray:
    """t_alert(c) = min decision_ts over alerted rows that are positive for case c (evaluation.md §2).

    Args:
        pairs: ``row, case_id`` pairs from :func:`fedsim.evaluation.labels.positive_pairs`.
        decision_ts: (n_rows,) seconds; when each row's score became available.
        alerted: (n_rows,) bool; the capacity alert mask.
        case_ids: (n_cases,) the cases to report, in output order.

    Returns:
        (n_cases,) float seconds; NaN when no alerted row is positive for the case.
    """
    rows = pairs["row"].to_numpy()
    hit = alerted[rows]
    first = pd.Series(decision_ts[rows][hit]).groupby(pairs["case_id"].to_numpy()[hit]).min()
    return pd.Series(case_ids).map(first).to_numpy(dtype=np.float64)


CLOCK_RULE = (
    "one clock: caught before the money left = first alert strictly before the first money-out "
    "(t_alert < t_loss; a payment scored at its own request cannot be stopped); € prevented = money-outs "
    "with ts > t_alert + Δ"
)
ALERT_RULE_TEXT = {
    "role_window": "t_alert = first capacity alert on an entity of the case inside its role window",
    "any_entity": "t_alert = first capacity alert on any entity of the case (no role window)",
}


def clock_definition(alert_rule: str = "role_window") -> str:
    """One line stating the clock and the alert rule, for the headers of `fedsim runs` / `compare`."""
    if alert_rule not in ALERT_RULES:
        raise ValueError(f"alert_rule {alert_rule!r}; allowed: {list(ALERT_RULES)}")
    return f"{CLOCK_RULE}; {ALERT_RULE_TEXT[alert_rule]}"


def acts_before(t_act: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """The one clock: an intervention landing at ``t_act`` stops a money-out at ``ts`` iff ``t_act < ts``.

    NaN ``t_act`` (never alerted) stops nothing. Arrays broadcast.
    """
    with np.errstate(invalid="ignore"):
        return np.asarray(t_act, dtype=np.float64) < np.asarray(ts, dtype=np.float64)


def alerted_by_horizon(*, t_alert: np.ndarray, t_loss: np.ndarray, horizon_h: float) -> np.ndarray:
    """ED indicator: ``t_alert + h·3600 < t_loss`` (:func:`acts_before`; False when never alerted). Shape (n_cases,)."""
    return acts_before(t_alert + horizon_h * SECONDS_PER_HOUR, t_loss)


def prevented_eur(
    money_outs: pd.DataFrame, *, case_ids: np.ndarray, t_alert: np.ndarray, latency_h: float
) -> np.ndarray:
    """Money-outs of each case with ts > t_alert + Δ·3600 (:func:`acts_before`), in euros, at ρ = 1.

    Prevented loss at ρ is ``ρ · prevented_eur`` (evaluation.md §2: money still to leave after the
    intervention lands is stopped with probability ρ). Cases never alerted prevent nothing.
    Returns (n_cases,) float euros.
    """
    alert = pd.Series(t_alert, index=case_ids)
    t_act = money_outs["case_id"].map(alert).to_numpy(dtype=np.float64) + latency_h * SECONDS_PER_HOUR
    after = acts_before(t_act, money_outs["ts"].to_numpy())
    saved = pd.Series(money_outs["amount_eur"].to_numpy()[after]).groupby(money_outs["case_id"].to_numpy()[after]).sum()
    return pd.Series(case_ids).map(saved).fillna(0.0).to_numpy(dtype=np.float64)


def loss_eur(money_outs: pd.DataFrame, *, case_ids: np.ndarray) -> np.ndarray:
    """Total money-out per case (Σ amount_eur), shape (n_cases,) euros; 0 for cases without money-outs."""
    total = money_outs.groupby("case_id")["amount_eur"].sum()
    return pd.Series(case_ids).map(total).fillna(0.0).to_numpy(dtype=np.float64)


def lead_time_h(*, t_loss: np.ndarray, t_alert: np.ndarray) -> np.ndarray:
    """Lead time (t_loss - t_alert) in hours, shape (n_cases,); negative when alerted after the loss, NaN
    when never alerted."""
    return (t_loss - t_alert) / SECONDS_PER_HOUR


def phase_at_alert(*, phase_ts: np.ndarray, t_alert: np.ndarray) -> np.ndarray:
    """Criminal-journey phase at t_alert: the last phase with start <= t_alert (start < 0: not reached).

    Args:
        phase_ts: (n_cases, len(PHASES)) phase start seconds in PHASES order.
        t_alert: (n_cases,) float seconds, NaN = never alerted.

    Returns:
        (n_cases,) object array of labels from :data:`PHASE_LABELS`.
    """
    alerted = ~np.isnan(t_alert)
    t = np.where(alerted, t_alert, -np.inf)[:, None]
    started = (phase_ts >= 0) & (phase_ts <= t)
    # index of the last started phase; phases are ordered, but a skipped phase (-1) must not stop the scan
    last = np.where(started.any(axis=1), len(PHASES) - 1 - np.argmax(started[:, ::-1], axis=1), -1)
    labels = np.array(PHASE_LABELS, dtype=object)[last + 1]
    labels[~alerted] = UNDETECTED
    return labels
