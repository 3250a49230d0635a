"""The paired contrast compares a regime's full chain, never one of a lattice's smaller coalitions (R1 found
`fedsim compare` pairing pooled bank_1+telco with status quo on a lattice experiment)."""

from __future__ import annotations

import pandas as pd
import pytest

from fedsim.contrast import _pair_by_seed, _runs_of
from fedsim.errors import FedsimError


def _runs() -> pd.DataFrame:
    rows = []
    # Started smallest coalition first, as a lattice grid runs them: the old pairing took these.
    for coalition in ["bank_1", "bank_1+telco", "marketplace+telco", "bank_1+marketplace+telco"]:
        for seed in (0, 1):
            rows.append({"regime": "pooled", "coalition": coalition, "seed": seed, "run_id": f"{coalition}-{seed}"})
    for seed in (0, 1):
        rows.append(
            {"regime": "status_quo", "coalition": "bank_1+marketplace+telco", "seed": seed, "run_id": f"sq-{seed}"}
        )
    return pd.DataFrame(rows)


def test_each_seed_pairs_the_full_chain_runs() -> None:
    runs = _runs()
    pairs = _pair_by_seed(_runs_of(runs, "pooled"), _runs_of(runs, "status_quo"))
    assert [(seed, a["run_id"], b["run_id"]) for seed, a, b in pairs] == [
        (0, "bank_1+marketplace+telco-0", "sq-0"),
        (1, "bank_1+marketplace+telco-1", "sq-1"),
    ]


def test_equal_sizes_pick_one_coalition_by_name_and_missing_regime_is_refused() -> None:
    runs = _runs()
    two = runs[runs["coalition"].isin(["bank_1+telco", "marketplace+telco"])]
    assert set(_runs_of(two, "pooled")["coalition"]) == {"bank_1+telco"}
    with pytest.raises(FedsimError, match="no finished 'reports' run"):
        _runs_of(runs, "reports")
