"""Which scored entity-days belong to which case: the positive label of evaluation.md §2.

An entity-day ``(partner, entity_id, day)`` is *positive for case c* when the entity appears in
``case_entities`` of c and ``day`` lies in c's window for that entity's role:

* start: ``day(ts_preparation)`` for mules and fraudsters (the crew acts from preparation on),
  ``day(ts_contact)`` for victims (a victim shows nothing before the criminal makes contact);
* end: ``day(max cashout_ts)`` of c's money-outs — the last day money of the case is still moving.

``day(ts) = ts // 86400`` (synthetic/schema.py). Fallbacks for journeys that stopped early (phase
ts = -1): a missing start falls back to the earliest phase reached; a case without money-outs ends
on the day of the last phase reached; a money-out never moved on (cashout_ts = -1) counts with its
own ts. A row is *positive* when it is positive for at least one case.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedsim.evaluation.inputs import SECONDS_PER_DAY
from synthetic.schema import PHASES

PHASE_COLUMNS: tuple[str, ...] = tuple(f"ts_{p}" for p in PHASES)


def _first_reached(phase_ts: np.ndarray) -> np.ndarray:
    """Earliest non-negative phase start per case (shape (n_cases,)); -1 when no phase was reached."""
    masked = np.where(phase_ts >= 0, phase_ts, np.iinfo(np.int64).max)
    first = masked.min(axis=1)
    return np.where(first == np.iinfo(np.int64).max, -1, first)


def case_windows(cases: pd.DataFrame, money_outs: pd.DataFrame) -> pd.DataFrame:
    """Per case the day window in which its entities' rows are positive.

    Returns columns ``case_id, crew_start_day, victim_start_day, end_day`` (int64 days; see the
    module docstring for the definition and the fallbacks).
    """
    phase_ts = cases[list(PHASE_COLUMNS)].to_numpy(dtype=np.int64)
    first = _first_reached(phase_ts)
    prep = cases["ts_preparation"].to_numpy(dtype=np.int64)
    contact = cases["ts_contact"].to_numpy(dtype=np.int64)
    crew_start = np.where(prep >= 0, prep, first)
    victim_start = np.where(contact >= 0, contact, crew_start)

    moved = np.maximum(money_outs["cashout_ts"].to_numpy(), money_outs["ts"].to_numpy())
    last_move = pd.Series(moved).groupby(money_outs["case_id"].to_numpy()).max()
    end = cases["case_id"].map(last_move).to_numpy(dtype=np.float64)
    last_phase = phase_ts.max(axis=1)
    end_ts = np.where(np.isnan(end), last_phase, end).astype(np.int64)
    return pd.DataFrame(
        {
            "case_id": cases["case_id"].to_numpy(dtype=np.int64),
            "crew_start_day": crew_start // SECONDS_PER_DAY,
            "victim_start_day": victim_start // SECONDS_PER_DAY,
            "end_day": end_ts // SECONDS_PER_DAY,
        }
    )


def positive_pairs(scores: pd.DataFrame, case_entities: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """All (row, case) pairs where score row ``row`` is positive for case ``case_id``.

    Args:
        scores: validated scores (RangeIndex; ``row`` refers to its positions).
        case_entities: validated ``case_entities``.
        windows: output of :func:`case_windows`.

    Returns:
        DataFrame ``row, case_id`` (int64), sorted, without duplicates (an entity that holds two
        roles in one case counts once, with the widest window).
    """
    ents = case_entities.merge(windows, on="case_id", how="inner")
    is_victim = ents["role"].to_numpy() == "victim"
    ents = ents.assign(
        start_day=np.where(is_victim, ents["victim_start_day"], ents["crew_start_day"]),
    )
    ents = ents.groupby(["case_id", "partner", "entity_id"], as_index=False).agg(
        start_day=("start_day", "min"), end_day=("end_day", "max")
    )
    rows = scores[["partner", "entity_id", "day"]].assign(row=np.arange(len(scores), dtype=np.int64))
    joined = rows.merge(ents, on=["partner", "entity_id"], how="inner")
    inside = (joined["day"] >= joined["start_day"]) & (joined["day"] <= joined["end_day"])
    pairs = joined.loc[inside, ["row", "case_id"]].astype(np.int64)
    return pairs.sort_values(["row", "case_id"], ignore_index=True)


def open_windows(windows: pd.DataFrame) -> pd.DataFrame:
    """``windows`` with every role window opened to all days: the ``any_entity`` alert rule.

    Pairs built with them link every scored row of an entity of a case to that case, whatever the
    day (the literal "first alert on any entity of the case"; used for t_alert only, never as labels).
    """
    lowest, highest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    return windows.assign(crew_start_day=lowest, victim_start_day=lowest, end_day=highest)
