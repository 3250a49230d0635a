"""Temporal splits and training labels from reports.

Split (evaluation.md §3): train window | gap for report delay | test window (| second test window).
Never a random row split: a model is trained on the past and scored on the future.

Training labels come from **reports known by the end of the training window**, never from the hidden
truth of unreported cases. After a report, the partner that received it traces which of its own
entities and events belonged to that case (the victim's payments, the mule account, the reported
number or seller); this "label tracing" is modelled with the truth tables, restricted to:

* cases reported before ``train_end``;
* partners that received the report: the victim's bank (every type), the victim's telco (types with a
  phone contact: helpdesk, sale, whatsapp), the victim's marketplace (purchase, sale);
* in sharing regimes, the reports received by any partner of the coalition (``label_sources``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from synthetic.schema import DAY as DAY  # re-exported: fedsim code imports DAY from here

REPORT_CHANNELS = {
    "bank": {"helpdesk", "purchase", "sale", "whatsapp", "invoice", "known_answer"},
    "telco": {"helpdesk", "sale", "whatsapp", "known_answer"},
    "marketplace": {"purchase", "sale", "known_answer"},
    "signals": {"known_answer"},
}


@dataclass(frozen=True)
class Split:
    """Timestamps (s) of the windows: train [train_start, train_end), test [test_start, test_end)."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int
    second_test: tuple[int, int] | None = None


def case_windows(cases: pd.DataFrame, money_outs: pd.DataFrame) -> pd.DataFrame:
    """Per case the time span in which its entities count as positive: victims from contact, mules and
    fraudsters from preparation, all until the last cash-out (or last phase when nothing left)."""
    last_out = money_outs.groupby("case_id")["cashout_ts"].max()
    end = cases["case_id"].map(last_out).fillna(cases["ts_cash_out"]).astype("int64")
    return pd.DataFrame(
        {
            "case_id": cases["case_id"].to_numpy(),
            "victim_start": cases["ts_contact"].to_numpy(),
            "other_start": cases["ts_preparation"].to_numpy(),
            "end": end.to_numpy(),
            "fraud_type": cases["fraud_type"].to_numpy(),
        }
    )


def known_cases(
    truth: dict[str, pd.DataFrame], kinds: dict[str, str], *, label_sources: tuple[str, ...], before_ts: int
) -> np.ndarray:
    """Case ids reported before `before_ts` to at least one partner in `label_sources`."""
    cases, ce = truth["cases"], truth["case_entities"]
    reported = cases[(cases["reported"]) & (cases["report_ts"] < before_ts)][["case_id", "fraud_type"]]
    victims = ce[(ce["role"] == "victim") & ce["partner"].isin(label_sources)].merge(reported, on="case_id")
    ok = [ft in REPORT_CHANNELS[kinds[p]] for p, ft in zip(victims["partner"], victims["fraud_type"], strict=True)]
    return np.unique(victims.loc[ok, "case_id"].to_numpy())


def row_labels(
    partner: str, entity: np.ndarray, ts: np.ndarray, truth: dict[str, pd.DataFrame], case_ids: np.ndarray
) -> np.ndarray:
    """1 where (partner, entity, ts) belongs to one of `case_ids` inside that case's window, else 0."""
    ce = truth["case_entities"]
    ce = ce[(ce["partner"] == partner) & ce["case_id"].isin(case_ids)]
    if ce.empty or len(entity) == 0:
        return np.zeros(len(entity), dtype=np.int8)
    win = case_windows(truth["cases"], truth["money_outs"]).set_index("case_id").loc[ce["case_id"]]
    start = np.where(ce["role"].to_numpy() == "victim", win["victim_start"].to_numpy(), win["other_start"].to_numpy())
    spans = pd.DataFrame(
        {"entity": ce["entity_id"].to_numpy().astype(np.int64), "start": start, "end": win["end"].to_numpy()}
    )
    rows = pd.DataFrame({"entity": entity.astype(np.int64), "ts": ts, "i": np.arange(len(entity))})
    hit = rows.merge(spans, on="entity")
    hit = hit[(hit["ts"] >= hit["start"]) & (hit["ts"] <= hit["end"])]
    out = np.zeros(len(entity), dtype=np.int8)
    out[hit["i"].to_numpy()] = 1
    return out
