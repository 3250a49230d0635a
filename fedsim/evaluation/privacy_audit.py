"""Empirical privacy audit: membership-inference rates against the DP bound, and the leakage register.

Pure functions on scores and gradients; the training that produces them lives in :mod:`fedsim.audit`.

**Membership inference.** An (ε, δ)-DP training algorithm limits every membership test: at false
positive rate FPR its true positive rate is at most ``e^ε·FPR + δ`` (Kairouz, Oh & Viswanath 2015,
"The composition theorem for differential privacy", Thm 2.1; Wasserman & Zhou 2010). Measuring TPR at
a small FPR with exact binomial (Clopper–Pearson) intervals and inverting that bound gives an
empirical lower bound on ε (Jagielski, Ullman & Oprea 2020, "Auditing differentially private machine
learning: how private is private SGD?"; Nasr et al. 2021). Attack thresholds are chosen on a
calibration half of the scores and the rates counted on the other half, so the lower bound is not
flattered by choosing the threshold on the very data it is counted on.

**Label leakage of split learning** lives in :mod:`fedsim.evaluation.label_leakage`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01)
"""False positive rates at which membership TPR is reported (evaluation.md §5)."""


# --------------------------------------------------------------------------------------------
# Rates, intervals, bounds
# --------------------------------------------------------------------------------------------
def clopper_pearson(k: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for k successes in n trials (Clopper & Pearson 1934).

    lo = Beta(α/2; k, n − k + 1), hi = Beta(1 − α/2; k + 1, n − k), with lo = 0 at k = 0, hi = 1 at k = n.
    """
    from scipy.stats import beta

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"k, n: {k}, {n}; allowed: 0 <= k <= n, n >= 1")
    if not 0 < level < 1:
        raise ValueError(f"level: {level!r}; allowed: 0 < level < 1")
    alpha = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def dp_tpr_bound(fpr: float, *, epsilon: float, delta: float) -> float:
    """Highest TPR any membership test can reach at ``fpr`` against (ε, δ)-DP: min(1, e^ε·FPR + δ).

    Kairouz, Oh & Viswanath 2015, Thm 2.1 (the hypothesis-testing region of (ε, δ)-DP). ε = inf → 1.
    """
    if not 0 <= fpr <= 1:
        raise ValueError(f"fpr: {fpr!r}; allowed: 0 <= fpr <= 1")
    if math.isinf(epsilon):
        return 1.0
    return min(1.0, math.exp(epsilon) * fpr + delta)


def epsilon_lower_bound(
    *, tp: int, n_members: int, fp: int, n_nonmembers: int, delta: float, level: float = 0.95
) -> float:
    """Empirical ε lower bound from one attack threshold, at confidence ``level`` (0 when nothing is shown).

    (ε, δ)-DP implies TPR ≤ e^ε·FPR + δ and 1 − FPR ≤ e^ε·(1 − TPR) + δ (Kairouz et al. 2015), so
    ε ≥ max(ln((TPR − δ)/FPR), ln((1 − FPR − δ)/(1 − TPR))). Both grow with TPR and fall with FPR, so
    plugging in the Clopper–Pearson bounds least favourable to the attacker (TPR_lo, FPR_hi) keeps it
    a lower bound with that confidence (Jagielski et al. 2020, §3; Nasr et al. 2021).
    """
    tpr_lo, _ = clopper_pearson(tp, n_members, level=level)
    _, fpr_hi = clopper_pearson(fp, n_nonmembers, level=level)
    candidates = [0.0]
    if tpr_lo - delta > 0 and fpr_hi > 0:
        candidates.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0 and 1 - tpr_lo > 0:
        candidates.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return max(candidates)


def threshold_at_fpr(nonmember_scores: np.ndarray, fpr: float) -> float:
    """Smallest threshold t with share(nonmember score > t) ≤ fpr: 'member' means score > t."""
    s = np.sort(np.asarray(nonmember_scores, dtype=float))
    if s.size == 0:
        raise ValueError("nonmember_scores: empty; allowed: at least one score")
    allowed_fp = int(math.floor(fpr * s.size))
    # the (n − allowed_fp)-th smallest score: at most allowed_fp scores lie strictly above it
    return float(s[s.size - allowed_fp - 1])


def _roc_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    return float(roc_auc_score(y, np.r_[member_scores, nonmember_scores]))


def auc_interval(auc: float, *, n_pos: int, n_neg: int, z: float = 1.959964) -> tuple[float, float]:
    """Normal-approximation CI of a ROC-AUC (Hanley & McNeil 1982, Radiology 143:29, eq. 2).

    SE² = [A(1−A) + (n₁−1)(Q₁−A²) + (n₂−1)(Q₂−A²)] / (n₁n₂), Q₁ = A/(2−A), Q₂ = 2A²/(1+A); clipped to [0, 1].
    """
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    half = z * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def membership_table(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    *,
    epsilon: float,
    delta: float,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """TPR at each target FPR with CIs, next to the DP bound e^ε·FPR + δ, and the empirical ε lower bound.

    Scores: higher = "more likely a member", one per person. Each set is split at random (``seed``)
    into a calibration half, where the threshold for each target FPR is chosen, and an evaluation
    half, where TP and FP are counted. Columns: ``fpr_target, threshold, tp, n_members, fp,
    n_nonmembers, tpr, tpr_lo, tpr_hi, fpr, fpr_lo, fpr_hi, bound, bound_hi, under_bound,
    epsilon_lower_bound, auc``; ``bound`` is at the measured FPR, ``bound_hi`` at its upper CI,
    ``under_bound`` = tpr_lo ≤ bound_hi (the audit finds no violation at this confidence);
    ``auc_lo, auc_hi``: the attack's ROC-AUC CI (:func:`auc_interval`; 0.5 = chance).
    """
    rng = np.random.default_rng(seed)
    mem, non = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if mem.size < 4 or non.size < 4:
        raise ValueError(f"scores: {mem.size} members, {non.size} non-members; allowed: at least 4 of each")
    mem, non = rng.permutation(mem), rng.permutation(non)
    mem_cal, mem_ev = mem[: mem.size // 2], mem[mem.size // 2 :]
    non_cal, non_ev = non[: non.size // 2], non[non.size // 2 :]
    del mem_cal  # thresholds need only the non-members' calibration scores
    auc = _roc_auc(mem_ev, non_ev)
    auc_lo, auc_hi = auc_interval(auc, n_pos=mem_ev.size, n_neg=non_ev.size)
    rows = []
    for target in fprs:
        t = threshold_at_fpr(non_cal, target)
        tp, fp = int((mem_ev > t).sum()), int((non_ev > t).sum())
        tpr_lo, tpr_hi = clopper_pearson(tp, mem_ev.size, level=level)
        fpr_lo, fpr_hi = clopper_pearson(fp, non_ev.size, level=level)
        fpr = fp / non_ev.size
        bound_hi = dp_tpr_bound(fpr_hi, epsilon=epsilon, delta=delta)
        rows.append(
            {
                "fpr_target": target,
                "threshold": t,
                "tp": tp,
                "n_members": mem_ev.size,
                "fp": fp,
                "n_nonmembers": non_ev.size,
                "tpr": tp / mem_ev.size,
                "tpr_lo": tpr_lo,
                "tpr_hi": tpr_hi,
                "fpr": fpr,
                "fpr_lo": fpr_lo,
                "fpr_hi": fpr_hi,
                "bound": dp_tpr_bound(fpr, epsilon=epsilon, delta=delta),
                "bound_hi": bound_hi,
                "under_bound": bool(tpr_lo <= bound_hi),
                "epsilon_lower_bound": epsilon_lower_bound(
                    tp=tp, n_members=mem_ev.size, fp=fp, n_nonmembers=non_ev.size, delta=delta, level=level
                ),
                "auc": auc,
                "auc_lo": auc_lo,
                "auc_hi": auc_hi,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# What each party learns, per regime
# --------------------------------------------------------------------------------------------
DP_ROW = (
    "all DP regimes",
    "anyone holding the model",
    "the Standardizer's per-feature mean and scale (computed without noise) and labels that other "
    "persons' reports put on an entity's rows",
    "not covered by ε — stated in every report",
)
"""What record-level DP-SGD leaves uncovered, whatever the regime."""


def leakage_register() -> pd.DataFrame:
    """Regime → party → what it learns → what limits it (evaluation.md §5), as a tidy table.

    One source: every registered regime's own :attr:`fedsim.regimes.Regime.leakage` rows, plus what
    DP-SGD does not cover."""
    from fedsim.regimes import registered_regimes

    rows = [
        (name, row.party, row.learns, row.limited_by)
        for name, regime in registered_regimes().items()
        for row in regime.leakage
    ]
    return pd.DataFrame([*rows, DP_ROW], columns=["regime", "party", "learns", "limited_by"])
