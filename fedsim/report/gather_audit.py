"""The report's audit table, read from the audit files `fedsim audit` attaches to the experiment's summary run.

Two checks per audited ε (definitions in :mod:`fedsim.audit`):

* the membership attack (Shokri et al. 2017; the DP bound on its TPR at a fixed FPR is Kairouz et al. 2015's
  hypothesis-testing view of (ε, δ)-DP: TPR ≤ e^ε · FPR + δ). Passed when the attack's TPR, at the lower end of
  its 95% CI, does not exceed the bound — an attack beating the bound would disprove the DP claim;
* the one-run canary audit (Steinke, Nasr & Jagielski 2023): the ε lower bound it certifies must not exceed the ε
  the accountant spent.

An experiment without an audit gives an empty table with :data:`AUDIT_COLUMNS`; the report then says so.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pandas as pd

from fedsim.tracking import Tracker

AUDIT_COLUMNS = ["check", "regime", "epsilon", "statistic", "bound", "passed"]
AUDIT_FOLDER = "audit"
"""Where `fedsim audit` puts its CSV files in the summary run (beside the reports' ``reports/``)."""


def audit_table(tracker: Tracker) -> pd.DataFrame:
    """The audit rows of the experiment's summary run (empty when no audit was attached)."""
    # an audit file that is present but malformed is a real error and propagates; only absence means "none"
    found = tracker.summary_runs()
    if not found:
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    with tempfile.TemporaryDirectory() as tmp:
        membership = _read(tracker, found[0], "membership_audit.csv", Path(tmp))
        canary = _read(tracker, found[0], "canary_audit.csv", Path(tmp))
    rows = [*_membership_rows(membership), *_canary_rows(canary)]
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)


def _read(tracker: Tracker, run_id: str, name: str, tmp: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(tracker.download_artifact(run_id, f"{AUDIT_FOLDER}/{name}", tmp))
    except Exception:  # noqa: BLE001 - a missing artifact raises MLflow's own error: no audit of that kind
        return pd.DataFrame()


def _form(r: pd.Series) -> str:
    return f"siloed ({r['partner']}, {r['model']})" if "partner" in r else "siloed"


def _membership_rows(table: pd.DataFrame) -> list[dict]:
    if table.empty:
        return []
    usable = table[table["measurable"].astype(bool)] if "measurable" in table else table
    return [
        {
            "check": f"membership attack: TPR at FPR {float(r['fpr_target']):g}",
            "regime": _form(r),
            "epsilon": float(r["epsilon"]),
            "statistic": float(r["tpr"]),
            "bound": float(r["bound"]),
            # the attack's TPR at the lower end of its CI against the bound at the upper end of the FPR's CI
            "passed": bool(r["under_bound"]),
        }
        for _, r in usable.iterrows()
    ]


def _canary_rows(table: pd.DataFrame) -> list[dict]:
    if table.empty:
        return []
    rows = []
    for _, r in table.iterrows():
        spent = float(r.get("epsilon_spent", r.get("epsilon_claimed", math.inf)))
        lower = float(r["epsilon_lower_bound"])
        rows.append(
            {
                "check": "canary audit: certified ε lower bound",
                "regime": _form(r),
                "epsilon": float(r["epsilon"]),
                "statistic": lower,
                "bound": spent,
                "passed": bool(lower <= spent * (1 + 1e-9)),
            }
        )
    return rows
