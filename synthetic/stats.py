"""Small statistics the world checks use, each cited, and the JSON form of their results.

All AUCs here are the Mann–Whitney form (ties count one half); NaN marks "not computable" (an empty class)
and becomes ``None`` in :func:`jsonable`, so results can be written as JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import rankdata


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC as the Mann–Whitney statistic: P(score⁺ > score⁻) + ½ P(tie).

    AUC = (R⁺ − n⁺(n⁺+1)/2) / (n⁺ n⁻), R⁺ the sum of the positives' mid-ranks (Hanley & McNeil 1982,
    Radiology 143:29, eq. 1; Mason & Graham 2002). Args: scores (n,), labels (n,) bool. NaN if a class is empty.
    """
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_standard_error(auc: float, *, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982, eq. 2) with Q1 = A/(2−A), Q2 = 2A²/(1+A).

    Assumes independent rows; rows of one case are correlated, so read it as a lower bound.
    """
    if n_pos == 0 or n_neg == 0 or math.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def cluster_jackknife_auc_se(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Standard error of an AUC whose positives come in clusters (rows of one crew), by the jackknife.

    The Mann–Whitney count splits over positives, U = Σ_p c_p with c_p = #{negatives below s_p} + ½ #{ties},
    so leaving cluster g out gives AUC₋g = (U − Σ_{p∈g} c_p) / ((n⁺ − n_g) n⁻) without re-ranking. The
    delete-one-group jackknife variance is (G−1)/G · Σ_g (AUC₋g − mean)² (Efron & Tibshirani 1993, §11.2;
    for clustered ROC data, Obuchowski 1997, Biometrics 53:567). NaN with fewer than two clusters.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups)[y]
    neg = np.sort(s[~y])
    lo, hi = np.searchsorted(neg, s[y], side="left"), np.searchsorted(neg, s[y], side="right")
    c = lo + 0.5 * (hi - lo)
    uniq, inv = np.unique(g, return_inverse=True)
    if len(uniq) < 2 or len(neg) == 0:
        return float("nan")
    per_group_c = np.bincount(inv, weights=c)
    per_group_n = np.bincount(inv)
    jack = (c.sum() - per_group_c) / ((len(c) - per_group_n) * len(neg))
    n_groups = len(uniq)
    return float(math.sqrt((n_groups - 1) / n_groups * np.sum((jack - jack.mean()) ** 2)))


def two_proportion_p_value(*, hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of H0: p_a = p_b, pooled two-proportion z-test.

    z = (p̂_a − p̂_b) / √(p̂(1−p̂)(1/n_a + 1/n_b)), p̂ the pooled share; z² is Pearson's χ² of the 2×2 table
    without continuity correction (Agresti, Categorical Data Analysis, 3rd ed. 2013, §3.1). Returns 1.0 when
    both groups are all-present or all-absent (no evidence of a difference).
    """
    if n_a <= 0 or n_b <= 0:
        return float("nan")
    pooled = (hits_a + hits_b) / (n_a + n_b)
    var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if var <= 0:
        return 1.0
    z = (hits_a / n_a - hits_b / n_b) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2.0))


def jsonable(obj: Any) -> Any:
    """numpy scalars → Python, NaN → None, tuples → lists, recursively."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj
