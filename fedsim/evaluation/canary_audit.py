"""One-run canary audit: an empirical ε lower bound from canaries trained in (or left out of) one model.

Pure functions; the training lives in :mod:`fedsim.audit`.

**The audit** (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run", NeurIPS;
arXiv:2305.08846). ``m`` canaries are each put into the training set independently with probability
1/2 (S_i = +1 in, −1 out). After one training run the auditor scores every canary, guesses "in" for the
``k_+`` highest scores and "out" for the ``k_-`` lowest and abstains on the rest. If training is
(ε, δ)-DP, the number of correct guesses among the r = k_+ + k_- guesses is, up to a δ term,
stochastically dominated by Binomial(r, e^ε / (1 + e^ε)) — the accuracy of ε-DP randomized response
(their Theorem 3.1, §3):

    P[correct ≥ v] ≤ f(v) + 2·m·δ · max_{i = 1..v} (f(v − i) − f(v)) / i,   f(v) = P[Binomial(r, q_ε) ≥ v].

:func:`one_run_p_value` is the right-hand side; :func:`one_run_epsilon_lower_bound` is the largest ε
that this test rejects at confidence 1 − β (their §6 / Algorithm 2: the ε at which the p-value reaches β).
All r guesses right gives the largest bound r guesses can show (δ = 0: q = β^(1/r), ε = ln(q / (1 − q)));
half right gives 0.

**Measurability of a TPR at a low FPR.** A threshold certifies FPR ≤ t at 95% only if even zero false
positives among n non-members give a Clopper–Pearson upper bound ≤ t: 1 − 0.025^(1/n) ≤ t, i.e.
n ≥ ln(0.025) / ln(1 − t) (:func:`min_nonmembers`): 368 at 1%, 3,688 at 0.1%.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fedsim.evaluation.privacy_audit import DEFAULT_FPRS, clopper_pearson, membership_table

DEFAULT_BETA = 0.05
"""1 − confidence of the one-run ε lower bound (Steinke et al. 2023 report 95%)."""

_EPS_CEILING = 60.0
"""Largest ε the bisection looks at: beyond it q_ε = 1 − 1e-26, indistinguishable from a perfect guesser."""


def _check_counts(m: int, r: int, v: int) -> None:
    if not (isinstance(m, int | np.integer) and isinstance(r, int | np.integer) and isinstance(v, int | np.integer)):
        raise ValueError(f"m, r, v: {m!r}, {r!r}, {v!r}; allowed: integers")
    if not 0 <= v <= r <= m:
        raise ValueError(f"m, r, v: {m}, {r}, {v}; allowed: 0 <= correct v <= guesses r <= canaries m")


def one_run_p_value(*, m: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """P[≥ ``correct`` right out of ``guesses``] under (ε, δ)-DP, with ``m`` canaries (Steinke et al. 2023, Thm 3.1).

    f(v) = P[Binomial(r, q) ≥ v], q = e^ε / (1 + e^ε); the δ term is 2·m·δ·max_{1≤i≤v} (f(v − i) − f(v)) / i.
    Capped at 1.
    """
    from scipy.stats import binom

    _check_counts(m, guesses, correct)
    if not 0 <= delta < 1 or not epsilon >= 0:
        raise ValueError(f"epsilon, delta: {epsilon!r}, {delta!r}; allowed: epsilon >= 0, 0 <= delta < 1")
    q = 1.0 / (1.0 + math.exp(-epsilon)) if math.isfinite(epsilon) else 1.0
    v, r = int(correct), int(guesses)
    tail = float(binom.sf(v - 1, r, q))  # f(v) = P[W >= v]
    if delta == 0 or v == 0:
        return min(1.0, tail)
    i = np.arange(1, v + 1)
    # f(v − i) − f(v) = P[v − i <= W <= v − 1] = cdf(v − 1) − cdf(v − i − 1)
    window = binom.cdf(v - 1, r, q) - binom.cdf(v - i - 1, r, q)
    return min(1.0, tail + 2.0 * m * delta * float(np.max(window / i)))


def one_run_epsilon_lower_bound(
    *, m: int, guesses: int, correct: int, delta: float, beta: float = DEFAULT_BETA, tol: float = 1e-6
) -> float:
    """Largest ε whose (ε, δ)-DP the observed ``correct`` out of ``guesses`` rejects at level β (0 if none).

    Steinke et al. 2023, §6 (Algorithm 2): bisection on ε of :func:`one_run_p_value` = β; the p-value
    grows with ε (q_ε does), so every ε below the result is rejected with confidence 1 − β.
    """
    if not 0 < beta < 1:
        raise ValueError(f"beta: {beta!r}; allowed: 0 < beta < 1")

    def rejected(eps: float) -> bool:
        return one_run_p_value(m=m, guesses=guesses, correct=correct, epsilon=eps, delta=delta) <= beta

    if guesses == 0 or not rejected(0.0):
        return 0.0
    lo, hi = 0.0, _EPS_CEILING
    if rejected(hi):
        return hi
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rejected(mid) else (lo, mid)
    return lo


def min_nonmembers(fpr: float, *, level: float = 0.95) -> int:
    """Fewest non-members n for which 0 false positives certify FPR ≤ ``fpr`` (Clopper–Pearson upper bound).

    0 of n gives the upper bound 1 − (α/2)^(1/n) (Clopper & Pearson 1934); ≤ fpr iff n ≥ ln(α/2) / ln(1 − fpr).
    """
    if not 0 < fpr < 1 or not 0 < level < 1:
        raise ValueError(f"fpr, level: {fpr!r}, {level!r}; allowed: both in (0, 1)")
    n = math.ceil(math.log((1 - level) / 2) / math.log1p(-fpr))
    return n + 1 if clopper_pearson(0, n, level=level)[1] > fpr else n  # guard float rounding at the edge


def measurable(fpr: float, n_nonmembers: int, *, level: float = 0.95) -> bool:
    """Whether ``n_nonmembers`` suffice to measure a TPR at ``fpr`` (:func:`min_nonmembers`)."""
    return n_nonmembers >= min_nonmembers(fpr, level=level)


def canary_guesses(scores: np.ndarray, included: np.ndarray, *, k_plus: int, k_minus: int) -> tuple[int, int]:
    """Guess "in" for the ``k_plus`` highest scores, "out" for the ``k_minus`` lowest; return (guesses, correct).

    Ties are broken by position (a stable sort), which does not depend on the inclusion vector.
    """
    s, inc = np.asarray(scores, dtype=float), np.asarray(included, dtype=bool)
    if s.shape != inc.shape or s.ndim != 1:
        raise ValueError(f"scores, included: shapes {s.shape}, {inc.shape}; allowed: the same 1-d shape")
    if k_plus < 0 or k_minus < 0 or k_plus + k_minus > s.size:
        raise ValueError(f"k_plus, k_minus: {k_plus}, {k_minus}; allowed: >= 0 with sum <= {s.size} canaries")
    order = np.argsort(-s, kind="stable")
    top, bottom = order[:k_plus], order[s.size - k_minus :]
    return k_plus + k_minus, int(inc[top].sum() + (~inc[bottom]).sum())


def canary_row(
    scores: np.ndarray,
    included: np.ndarray,
    *,
    epsilon: float,
    delta: float,
    k_plus: int,
    k_minus: int,
    beta: float = DEFAULT_BETA,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    seed: int = 0,
    extra_nonmember_scores: np.ndarray | None = None,
) -> dict[str, float | int | str]:
    """One line of the canary table: guesses, correct, ε lower bound, and TPR at each FPR (or why not).

    The ε bound counts the guesses on ``scores`` (the m randomised canaries) only. The TPR columns come
    from :func:`fedsim.evaluation.privacy_audit.membership_table` on the in- vs out-canaries plus
    ``extra_nonmember_scores`` (canaries never trained on, exchangeable with the out ones): threshold on
    one half of the non-members, rates on the other; a rate whose evaluation half has fewer non-members
    than :func:`min_nonmembers` is reported as not measurable (NaN and a note).
    """
    inc = np.asarray(included, dtype=bool)
    s = np.asarray(scores, dtype=float)
    guesses, correct = canary_guesses(s, inc, k_plus=k_plus, k_minus=k_minus)
    row: dict[str, float | int | str] = {
        "epsilon_claimed": epsilon,
        "delta": delta,
        "m": int(s.size),
        "m_in": int(inc.sum()),
        "k_plus": k_plus,
        "k_minus": k_minus,
        "guesses": guesses,
        "correct": correct,
        "epsilon_lower_bound": one_run_epsilon_lower_bound(
            m=int(s.size), guesses=guesses, correct=correct, delta=delta, beta=beta
        ),
        "beta": beta,
    }
    extra = np.zeros(0) if extra_nonmember_scores is None else np.asarray(extra_nonmember_scores, dtype=float)
    table = membership_table(s[inc], np.r_[s[~inc], extra], epsilon=epsilon, delta=delta, fprs=fprs, seed=seed)
    row["auc"] = float(table["auc"].iloc[0])
    row.update(rate_columns(table))
    return row


def rate_columns(table: pd.DataFrame) -> dict[str, float | int | str]:
    """TPR [CI] at each FPR of a :func:`membership_table`, NaN where its non-members cannot measure it.

    Keys ``tpr_f<fpr>``, ``tpr_f<fpr>_lo``, ``tpr_f<fpr>_hi``, ``n_nonmembers_f<fpr>`` and ``note_f<fpr>``
    ("measured" or "not measurable with n = … non-members (needs ≥ …)").
    """
    out: dict[str, float | int | str] = {}
    for r in table.itertuples(index=False):
        key = f"f{r.fpr_target:g}"
        n, need = int(r.n_nonmembers), min_nonmembers(float(r.fpr_target))
        ok = n >= need
        out[f"tpr_{key}"] = float(r.tpr) if ok else math.nan
        out[f"tpr_{key}_lo"] = float(r.tpr_lo) if ok else math.nan
        out[f"tpr_{key}_hi"] = float(r.tpr_hi) if ok else math.nan
        out[f"n_nonmembers_{key}"] = n
        out[f"note_{key}"] = "measured" if ok else f"not measurable with n = {n} non-members (needs ≥ {need})"
    return out
