"""Case-level outcomes for one alert set: first alert, early detection, prevented loss, lead time, phase.

All functions are pure and work on arrays aligned with a list of evaluated case ids (shape (n_cases,)).
Times are int64/float seconds since world start; ``t_alert`` is float with NaN for "never alerted".
Definitions follow evaluation.md §2 (count each case once).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedsim.evaluation.inputs import SECONDS_PER_HOUR
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


def alerted_by_horizon(*, t_alert: np.ndarray, t_loss: np.ndarray, horizon_h: float) -> np.ndarray:
    """ED indicator: t_alert <= t_loss - h·3600 (False when never alerted). Shape (n_cases,)."""
    with np.errstate(invalid="ignore"):
        return t_alert <= t_loss - horizon_h * SECONDS_PER_HOUR


def prevented_eur(
    money_outs: pd.DataFrame, *, case_ids: np.ndarray, t_alert: np.ndarray, latency_h: float
) -> np.ndarray:
    """Money-outs of each case with ts > t_alert + Δ·3600, in euros, at interdiction success ρ = 1.

    Prevented loss at ρ is ``ρ · prevented_eur`` (evaluation.md §2: money still to leave after the
    intervention lands is stopped with probability ρ). Cases never alerted prevent nothing.
    Returns (n_cases,) float euros.
    """
    alert = pd.Series(t_alert, index=case_ids)
    t_act = money_outs["case_id"].map(alert).to_numpy(dtype=np.float64) + latency_h * SECONDS_PER_HOUR
    with np.errstate(invalid="ignore"):
        after = money_outs["ts"].to_numpy() > t_act
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
