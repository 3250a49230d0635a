"""Metric formulas on weighted aggregates, vectorised over bootstrap resamples.

Every function takes weights or weighted sums whose last axis is the resample axis (shape (..., B)).
With all weights 1 (B = 1) they give the ordinary point estimates; with cluster-bootstrap counts as
weights they give the resampled values without copying rows (a row drawn twice counts twice).
Division by a zero total yields NaN, which the bootstrap later ignores.
"""

from __future__ import annotations

import numpy as np


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den == 0."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def weighted_share(indicator: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Share of (weighted) units with ``indicator`` true: Σ w·1[x] / Σ w.

    Args:
        indicator: (m, n) or (n,) 0/1 values for n units (e.g. cases; m indicators at once).
        weights: (n, B) unit weights.

    Returns:
        (m, B) or (B,) shares; NaN where Σ w = 0.
    """
    return safe_ratio(np.asarray(indicator, dtype=np.float64) @ weights, weights.sum(axis=0))


def average_precision(pos: np.ndarray, neg_at: np.ndarray) -> np.ndarray:
    """Step-wise average precision from positive / negative weight per score level.

    AP = Σ_l (R_l − R_{l−1}) · P_l over distinct score thresholds l, highest first, with recall
    R_l = TP_l / P and precision P_l = TP_l / (TP_l + FP_l) — the non-interpolated definition of
    ``sklearn.metrics.average_precision_score`` (scikit-learn user guide §3.4.4.8). Only levels that
    hold positive weight change recall, so negatives may be pre-summed into the next such level.

    Args:
        pos: (L, B) positive weight at each positive-holding score level, descending score order.
        neg_at: (L, B) negative weight with score in [level_l, level_{l−1}) (ties count at level l).

    Returns:
        (B,) AP; NaN when there is no positive weight.
    """
    tp = np.cumsum(pos, axis=0)
    fp = np.cumsum(neg_at, axis=0)
    precision = safe_ratio(tp, tp + fp)
    contrib = np.where(pos > 0, pos * np.nan_to_num(precision), 0.0)
    return safe_ratio(contrib.sum(axis=0), tp[-1] if len(tp) else np.zeros(pos.shape[1:]))


def roc_auc(pos: np.ndarray, neg_at: np.ndarray, neg_tie: np.ndarray, neg_total: np.ndarray) -> np.ndarray:
    """Area under the ROC curve as the Mann–Whitney probability P(s⁺ > s⁻) + ½·P(s⁺ = s⁻).

    Hanley & McNeil (1982), Radiology 143:29–36; equals ``sklearn.metrics.roc_auc_score`` with
    sample weights (trapezoidal rule, ties credited one half).

    Args:
        pos, neg_at: as in :func:`average_precision`, shape (L, B).
        neg_tie: (L, B) negative weight with score exactly equal to level l.
        neg_total: (B,) total negative weight (including negatives below the lowest level).

    Returns:
        (B,) AUC; NaN without positive or negative weight.
    """
    fp = np.cumsum(neg_at, axis=0)
    below = neg_total[None, :] - fp
    num = (pos * (below + 0.5 * neg_tie)).sum(axis=0)
    return safe_ratio(num, pos.sum(axis=0) * neg_total)


def mean_daily_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean over days of num_d / den_d, skipping days with den_d = 0.

    Used for recall@k (alerted positives / positives) and precision@k (alerted positives / alerts)
    per day, averaged over days (evaluation.md §2, secondary outcomes).

    Args:
        num, den: (D, B) per-day weighted sums.

    Returns:
        (B,) mean ratio; NaN when no day has den > 0.
    """
    ratio = safe_ratio(num, den)
    valid = den > 0
    return safe_ratio(np.where(valid, ratio, 0.0).sum(axis=0), valid.sum(axis=0))


def weighted_quantile_sorted(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Weighted inverted-CDF quantile: the smallest x_i with F(x_i) >= q.

    Hyndman & Fan (1996) definition 1 (``numpy.quantile(method="inverted_cdf")``); with integer
    weights it equals that quantile of the sample in which unit i is repeated w_i times.

    Args:
        values: (m,) sorted ascending.
        weights: (m, B) non-negative weights.
        q: quantile in (0, 1].

    Returns:
        (B,) quantiles; NaN where Σ w = 0.
    """
    if len(values) == 0:
        return np.full(weights.shape[1], np.nan)
    cum = np.cumsum(weights, axis=0)
    total = cum[-1]
    # a tiny tolerance keeps q·total from landing just above an exact cumulative weight
    idx = np.argmax(cum >= q * total - 1e-9 * np.maximum(total, 1.0), axis=0)
    return np.where(total > 0, values[idx], np.nan)


def lift(ap: np.ndarray, prevalence: np.ndarray) -> np.ndarray:
    """AP / prevalence: how many times better than a random ranking (whose AP ≈ prevalence)."""
    return safe_ratio(ap, prevalence)
