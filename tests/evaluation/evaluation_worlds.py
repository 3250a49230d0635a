"""Shared worlds for the evaluation tests: one tiny hand-computed world, one random generator."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fedsim.evaluation.inputs import Truth
from fedsim.evaluation.labels import case_windows, positive_pairs
from synthetic.schema import PHASES

D = 86_400
H = 3_600


def _case(case_id: int, fraud_type: str, phase_ts: list[int], t_loss: int) -> dict:
    return {
        "case_id": case_id,
        "fraud_type": fraud_type,
        **{f"ts_{p}": ts for p, ts in zip(PHASES, phase_ts, strict=True)},
        "t_loss": t_loss,
        "loss_eur": 0.0,
    }


def tiny_truth() -> dict[str, pd.DataFrame]:
    """3 evaluated cases on 2 partners over 4 days, plus one later case and one without loss.

    c1 helpdesk: victim bank:1 (rows positive days 1-3), mule bank:2 (days 0-3); t_loss day2 12:00;
        money-outs 1000 € at day2 12:00 and 500 € at day3 09:00.
    c2 helpdesk: victim telco:10 (days 0-1); t_loss day1 08:00; 200 €.
    c3 whatsapp: victim bank:3 (days 2-3), fraudster telco:11 (days 1-3); t_loss day3 20:00; 300 €.
    c4 (t_loss day5, outside the window) and c5 (no loss) touch no scored entity-day.
    """
    cases = pd.DataFrame(
        [
            _case(
                1, "helpdesk", [1 * H, 2 * H, D + 10 * H, D + 11 * H, 2 * D + 12 * H, 2 * D + 14 * H], 2 * D + 12 * H
            ),
            _case(2, "helpdesk", [0, 1 * H, 5 * H, 6 * H, D + 8 * H, D + 9 * H], D + 8 * H),
            _case(
                3,
                "whatsapp",
                [D + H, D + 2 * H, 2 * D + 9 * H, 2 * D + 16 * H, 3 * D + 20 * H, 3 * D + 21 * H],
                3 * D + 20 * H,
            ),
            _case(4, "helpdesk", [4 * D, 4 * D + H, 4 * D + 2 * H, 4 * D + 3 * H, 5 * D, 5 * D + H], 5 * D),
            _case(5, "whatsapp", [D, -1, -1, -1, -1, -1], -1),
        ]
    )
    money_outs = pd.DataFrame(
        {
            "case_id": [1, 1, 2, 3, 4],
            "ts": [2 * D + 12 * H, 3 * D + 9 * H, D + 8 * H, 3 * D + 20 * H, 5 * D],
            "amount_eur": [1000.0, 500.0, 200.0, 300.0, 50.0],
            "cashout_ts": [2 * D + 14 * H, 3 * D + 10 * H, D + 9 * H, 3 * D + 21 * H, 5 * D + H],
        }
    )
    case_entities = pd.DataFrame(
        {
            "case_id": [1, 1, 2, 3, 3, 4, 5],
            "partner": ["bank", "bank", "telco", "bank", "telco", "telco", "bank"],
            "entity_id": [1, 2, 10, 3, 11, 12, 99],
            "role": ["victim", "mule", "victim", "victim", "fraudster", "mule", "victim"],
        }
    )
    return {"cases": cases, "money_outs": money_outs, "case_entities": case_entities}


def tiny_scores() -> pd.DataFrame:
    """18 entity-days; bank:4 and telco:12 are ordinary customers (always negative)."""
    rows = [
        # partner, entity, day, decision_ts, score
        ("bank", 2, 0, 12 * H, 0.2),
        ("bank", 4, 0, 12 * H, 0.9),
        ("bank", 1, 1, D + 12 * H, 0.8),
        ("bank", 2, 1, D + 12 * H, 0.3),
        ("bank", 4, 1, D + 12 * H, 0.5),
        ("bank", 1, 2, 2 * D + 12 * H, 0.1),
        ("bank", 3, 2, 2 * D + 15 * H, 0.7),
        ("bank", 4, 2, 2 * D + 12 * H, 0.6),
        ("bank", 2, 3, 3 * D + 8 * H, 0.95),
        ("bank", 4, 3, 3 * D + 8 * H, 0.4),
        ("telco", 10, 0, 7 * H, 0.6),
        ("telco", 12, 0, 7 * H, 0.65),
        ("telco", 10, 1, D + 6 * H, 0.85),
        ("telco", 11, 1, D + 9 * H, 0.5),
        ("telco", 12, 1, D + 9 * H, 0.9),
        ("telco", 11, 2, 2 * D + 11 * H, 0.3),
        ("telco", 12, 2, 2 * D + 11 * H, 0.35),
        ("telco", 11, 3, 3 * D + 10 * H, 0.75),
    ]
    return pd.DataFrame(rows, columns=["partner", "entity_id", "day", "decision_ts", "score"])


TINY_SIZES = {"bank": 100, "telco": 100}
"""k = 0.01 → 1 alert per partner-day; k = 0.02 → 2."""


def random_world(
    seed: int, *, n_cases: int = 60, n_ordinary: int = 300, n_days: int = 20, signal: float = 1.0
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict[str, int]]:
    """A random world of two partners: cases with a victim and a mule, ordinary entities, scores.

    Positive rows score N(signal, 1), negative rows N(0, 1) (signal = 0: an uninformative score).
    Returns (scores, truth, partner_sizes).
    """
    rng = np.random.default_rng(seed)
    types = np.array(["helpdesk", "purchase", "whatsapp"])
    start = rng.integers(0, n_days - 4, size=n_cases) * D + rng.integers(0, D, size=n_cases)
    offsets = np.cumsum(rng.integers(H, 30 * H, size=(n_cases, len(PHASES))), axis=1)
    phase_ts = start[:, None] + offsets
    t_loss = phase_ts[:, 4]
    cases = pd.DataFrame({"case_id": np.arange(n_cases), "fraud_type": types[rng.integers(0, 3, n_cases)]})
    for i, p in enumerate(PHASES):
        cases[f"ts_{p}"] = phase_ts[:, i]
    cases["t_loss"] = t_loss
    cases["loss_eur"] = 0.0
    n_out = rng.integers(1, 4, size=n_cases)
    case_of = np.repeat(np.arange(n_cases), n_out)
    ts = t_loss[case_of] + rng.integers(0, 48 * H, size=len(case_of))
    ts[np.r_[0, np.cumsum(n_out)[:-1]]] = t_loss  # first money-out is t_loss
    money_outs = pd.DataFrame(
        {
            "case_id": case_of,
            "ts": ts,
            "amount_eur": rng.uniform(100, 5000, size=len(case_of)).round(2),
            "cashout_ts": ts + rng.integers(H, 6 * H, size=len(case_of)),
        }
    )
    partners = np.array(["bank", "telco"])
    victim_p = partners[rng.integers(0, 2, n_cases)]
    mule_p = partners[rng.integers(0, 2, n_cases)]
    case_entities = pd.DataFrame(
        {
            "case_id": np.r_[np.arange(n_cases), np.arange(n_cases)],
            "partner": np.r_[victim_p, mule_p],
            "entity_id": np.r_[np.arange(n_cases), n_cases + rng.integers(0, n_cases // 3, n_cases)],
            "role": ["victim"] * n_cases + ["mule"] * n_cases,
        }
    )
    truth = {"cases": cases, "money_outs": money_outs, "case_entities": case_entities}
    ents = pd.concat(
        [
            case_entities[["partner", "entity_id"]],
            pd.DataFrame(
                {"partner": partners[rng.integers(0, 2, n_ordinary)], "entity_id": 10_000 + np.arange(n_ordinary)}
            ),
        ]
    ).drop_duplicates()
    grid = ents.merge(pd.DataFrame({"day": np.arange(n_days)}), how="cross")
    grid = grid.sample(frac=0.6, random_state=seed).reset_index(drop=True)
    grid["decision_ts"] = grid["day"] * D + rng.integers(0, D, size=len(grid))
    valid = Truth.from_tables(truth)
    pairs = positive_pairs(grid, valid.case_entities, case_windows(valid.cases, valid.money_outs))
    positive = np.zeros(len(grid), dtype=bool)
    positive[pairs["row"].to_numpy()] = True
    grid["score"] = rng.normal(size=len(grid)) + signal * positive
    sizes = grid.groupby("partner")["entity_id"].nunique().to_dict()
    return grid, truth, {p: int(n) for p, n in sizes.items()}
