"""`fedsim runs` groups runs over training seeds with a cases × seeds CI (fedsim.summary.seed_summary)."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsim.summary import seed_summary


def _runs() -> pd.DataFrame:
    rows = []
    for regime, base in (("pooled", 0.5), ("siloed", 0.4)):
        for seed, shift in ((0, -0.05), (1, 0.0), (2, 0.05)):
            v = base + (shift if regime == "pooled" else 0.0)
            rows.append(
                {
                    "run_id": f"{regime}{seed}",
                    "regime": regime,
                    "coalition": "bank+telco",
                    "model": "gbt",
                    "seed": seed,
                    "epsilon": "inf",
                    "world_hash": "abc",
                    "ed_h0_k0.005": v,
                    "ed_h0_k0.005_lo": v - 0.02,
                    "ed_h0_k0.005_hi": v + 0.02,
                    "ap": v,
                    "ap_lo": v - 0.01,
                    "ap_hi": v + 0.01,
                }
            )
    return pd.DataFrame(rows)


def test_seed_summary_means_seeds_and_widens_only_when_seeds_disagree():
    table = seed_summary(_runs()).set_index("regime")

    assert table.loc["pooled", "n_seeds"] == 3 and table.loc["pooled", "seeds"] == "0,1,2"
    assert table.loc["pooled", "covers"] == "cases × 3 training seeds"
    assert table.loc["pooled", "ed_h0_k0.005"] == pytest.approx(0.5)
    # pooled's seeds disagree (0.45-0.55): its CI is wider than one run's ±0.02
    assert table.loc["pooled", "ed_h0_k0.005_lo"] < 0.45 and table.loc["pooled", "ed_h0_k0.005_hi"] > 0.55
    # siloed's seeds agree: the CI stays the runs' case CI
    assert (table.loc["siloed", "ed_h0_k0.005_lo"], table.loc["siloed", "ed_h0_k0.005_hi"]) == pytest.approx(
        (0.38, 0.42), abs=0.002
    )
