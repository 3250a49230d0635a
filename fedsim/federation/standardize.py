"""Federated standardisation: one global z-scaling from per-partner column moments, no rows shared.

Every partner of a horizontal federation scales its features with the *same* mean and scale, so one
global model sees inputs on one scale (as the pooled regime does after ``Standardizer.fit`` on all
rows). Each partner sends, per feature column, the count of observed (non-NaN) values, their mean and
their sum of squared deviations (M2), plus its row count; the server combines them exactly with the
pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise algorithm for
computing sample variances"):

    n = n_a + n_b,   δ = mean_b − mean_a,   mean = mean_a + δ·n_b/n,   M2 = M2_a + M2_b + δ²·n_a·n_b/n

The result equals ``Standardizer().fit`` on the concatenated rows (population variance M2/n, scale 1
for a constant column, a missing-value indicator for every column with a NaN at any partner).
Shapes: every array here is ``(d,)`` for ``d`` feature columns; counts are rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedsim.models import Standardizer


@dataclass(frozen=True)
class ColumnMoments:
    """Per-column summary of one partner's (or a combined set of) training rows.

    n_rows: rows (count). count: observed (non-NaN) values per column ``(d,)``. mean: mean of the
    observed values ``(d,)`` (0 where none). m2: sum of squared deviations from ``mean`` ``(d,)``.
    """

    n_rows: int
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray


def column_moments(X: np.ndarray) -> ColumnMoments:
    """Moments of the observed values of each column of ``X`` ``(n, d)`` (NaN = missing)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"X: array of shape {arr.shape}; allowed: 2-d (rows, features)")
    if np.isinf(arr).any():
        raise ValueError("X: contains ±inf; allowed: finite numbers or NaN (missing)")
    observed = ~np.isnan(arr)
    count = observed.sum(axis=0).astype(np.float64)
    total = np.where(observed, arr, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(arr.shape[1]), where=count > 0)
    m2 = (np.where(observed, arr - mean, 0.0) ** 2).sum(axis=0)
    return ColumnMoments(n_rows=arr.shape[0], count=count, mean=mean, m2=m2)


def combine_moments(parts: Sequence[ColumnMoments]) -> ColumnMoments:
    """Exact moments of the union of the parts' rows (Chan, Golub & LeVeque 1979, pairwise update)."""
    if not parts:
        raise ValueError("parts: empty; allowed: the moments of at least one partner")
    widths = {p.count.shape for p in parts}
    if len(widths) != 1:
        raise ValueError(f"parts: column counts {sorted(w[0] for w in widths)}; allowed: one common width")
    n_rows, count, mean, m2 = parts[0].n_rows, parts[0].count.copy(), parts[0].mean.copy(), parts[0].m2.copy()
    for p in parts[1:]:
        n = count + p.count
        delta = p.mean - mean
        share_b = np.divide(p.count, n, out=np.zeros_like(n), where=n > 0)
        mean = mean + delta * share_b
        m2 = m2 + p.m2 + delta**2 * count * share_b
        count, n_rows = n, n_rows + p.n_rows
    return ColumnMoments(n_rows=n_rows, count=count, mean=mean, m2=m2)


def standardizer_from_moments(m: ColumnMoments) -> Standardizer:
    """A fitted :class:`~fedsim.models.Standardizer` equal to one fitted on all the rows behind ``m``.

    mean_ = mean; scale_ = √(M2 / count) (population std), 1 where it is 0 or the column was never
    observed; an indicator for each column with fewer observed values than rows.
    """
    std = np.sqrt(np.divide(m.m2, m.count, out=np.zeros_like(m.m2), where=m.count > 0))
    out = Standardizer()
    out.mean_ = m.mean.copy()
    out.scale_ = np.where(std > 0, std, 1.0)
    out.missing_columns_ = np.flatnonzero(m.count < m.n_rows)
    out.n_features_in_ = int(m.count.shape[0])
    return out


def standardizer_to_lists(s: Standardizer) -> dict[str, list[float]]:
    """The fitted state as plain float lists (what a Flower ConfigRecord can carry)."""
    return {
        "std-mean": [float(v) for v in s.mean_],
        "std-scale": [float(v) for v in s.scale_],
        "std-missing": [float(v) for v in s.missing_columns_],
    }


def standardizer_from_lists(config: Mapping[str, Any]) -> Standardizer:
    """Inverse of :func:`standardizer_to_lists`."""
    out = Standardizer()
    out.mean_ = np.asarray(config["std-mean"], dtype=np.float64)
    out.scale_ = np.asarray(config["std-scale"], dtype=np.float64)
    out.missing_columns_ = np.asarray(config["std-missing"], dtype=np.int64)
    out.n_features_in_ = int(out.mean_.shape[0])
    return out
