"""Which feature columns of a training set can carry information: constant and all-missing ones never reach a model.

A column that is all-missing in the training rows (a partner whose records never join, a placebo partner's
context on a realistic world) or that holds one value in every row tells a model nothing. It still does
harm: the :class:`~fedsim.models.Standardizer` turns an all-missing column into a constant "missing" flag,
i.e. a second bias term that changes how an under-trained model moves (issue 9: adding such a column alone
reproduced a placebo "gain"), and scikit-learn's histogram binning crashes on a column with no observed
value. The decision is taken on the training rows only, and the dropped names are returned so the run can
record them.

A column that is constant where observed but missing in some rows is kept: its missingness pattern can be
informative, and the Standardizer gives it a missing-flag companion (created inside the Standardizer, so no
separate flag column exists in the frame to drop).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ALL_MISSING = "all missing"
CONSTANT = "constant"


@dataclass(frozen=True)
class ColumnSelection:
    """The columns a model may use, and every dropped column with why (``ALL_MISSING`` or ``CONSTANT``)."""

    kept: list[str]
    dropped: dict[str, str]

    def dropped_text(self) -> str:
        """``name (reason); …`` in column order, or ``""`` when nothing was dropped (for run params)."""
        return "; ".join(f"{name} ({reason})" for name, reason in self.dropped.items())


def uninformative_reasons(X: np.ndarray) -> list[str | None]:
    """Per column of a 2-d float array (NaN = missing): ``ALL_MISSING``, ``CONSTANT`` or None (keep).

    ``CONSTANT`` means no missing value and a single distinct value (so also a column of a 1-row set).
    """
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"X: array of shape {arr.shape}; allowed: 2-d (rows, features)")
    if arr.shape[0] == 0:
        raise ValueError("X: 0 rows; allowed: at least one training row to judge the columns on")
    missing = np.isnan(arr)
    reasons: list[str | None] = []
    for j in range(arr.shape[1]):
        if missing[:, j].all():
            reasons.append(ALL_MISSING)
        elif not missing[:, j].any() and np.all(arr[:, j] == arr[0, j]):
            reasons.append(CONSTANT)
        else:
            reasons.append(None)
    return reasons


def informative_columns(X: pd.DataFrame) -> ColumnSelection:
    """Split a training frame's columns into the kept ones and the dropped (all-missing or constant) ones.

    Args:
        X: the training rows ``(n, d)``, numeric (NaN = missing); only the training rows, never test rows.
    Returns:
        :class:`ColumnSelection` with the kept names in frame order; select them from every later frame
        (``Xt[selection.kept]``) so train and test have the same columns.
    """
    names = list(X.columns)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"X: column names {names[:5]}...; allowed: strings")
    if len(set(names)) != len(names):
        raise ValueError(f"X: duplicate column names {sorted({n for n in names if names.count(n) > 1})}")
    reasons = uninformative_reasons(X.to_numpy(dtype=np.float64, na_value=np.nan))
    kept = [n for n, r in zip(names, reasons, strict=True) if r is None]
    dropped = {n: r for n, r in zip(names, reasons, strict=True) if r is not None}
    return ColumnSelection(kept=kept, dropped=dropped)
