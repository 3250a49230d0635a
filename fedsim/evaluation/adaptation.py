"""Adaptation after a barrier: does a regime keep its detection rate, and how many days until it recovers?

A barrier (synthetic/config.py ``BarrierConfig``) removes a trace crews relied on; crews then switch their modus
operandi (``variant`` → ``adapted_variant``) after a delay. Models are trained before it, so what they catch after
it measures how well each form of sharing carries over to a new modus operandi (issue 11, "Adaptation").

Inputs: per training seed s and evaluated case i, the primary outcome's indicator H[s, i] = 1 when the case was
caught before its first money-out, ED(0) at the calibrated capacity (``t_alert < t_loss``, the one clock of
:func:`fedsim.evaluation.outcomes.alerted_by_horizon`), and the day d_i of the case's first money-out t_loss.
Every regime is scored on the same cases (one world), which makes comparisons paired.

Definitions (days are whole days since the world start; b is the barrier day; [start, end) the observed days):

* **rate over a day set D**: R(D) = Σ_s Σ_{i: d_i ∈ D} H[s, i] / (S · #{i: d_i ∈ D}) — the share of the cases
  whose first money-out falls in D that were caught early, averaged over the S training seeds.
* **daily rate** r(d) = R({d}); **forward k-day rate** f(r) = R([b + r, b + r + k)) for r = 0, 1, …, the rate of
  the k days starting r days after the barrier (k = ``window_days``; a forward window so that it never mixes
  days before the barrier into the post-barrier rate).
* **pre-barrier level** L_pre = R([start, b)); **post-barrier level** L_post = R([b, end)).
* **recovery time** T = min{r ≥ 0 : f(r) ≥ (1 − τ) · L_pre} with τ = ``tolerance`` (relative). T = 0 means the
  regime never dropped below the tolerance band; when no k-day window that fits in [b, end) reaches the band, the
  regime has **not recovered within the window** (T = NaN, reported as such, never as a number of days). If
  detection drops to 0 on day b and is back at L_pre from day b + d on, f(d) = L_pre and f(d − 1) =
  L_pre·(k − 1)/k, so T = d exactly whenever τ < 1/k.
* **gain retained** of regime A over B: L_post(A) − L_post(B), beside the gain before the barrier
  L_pre(A) − L_pre(B); both paired.

Intervals.

* Gains: exactly the machinery of `fedsim compare` (:mod:`fedsim.evaluation.seeds`): the case resamples are shared
  by both regimes and every seed (paired cluster bootstrap over cases, Davison & Hinkley 1997 §3.8), and the
  training-seed error is added as a scaled Student-t term (:func:`fedsim.evaluation.seeds.seed_stage`), floored by
  the seeds' case-level disagreement (:func:`fedsim.evaluation.seeds.disagreement_variance`).
* Recovery time and levels: T is a first-passage time, not a mean, so the t term does not apply. Its interval is a
  two-stage bootstrap (Davison & Hinkley 1997, §3.8, multi-stage sampling): in each resample the training seeds are
  drawn with replacement and, independently, the cases (stratified by their day, so every day keeps its number of
  cases); T is recomputed on the resample and the percentile interval (Efron & Tibshirani 1993, §13.3) is taken
  over the resamples where it is defined. The share of resamples that do not recover is reported beside it
  (``p_not_recovered``). With few seeds the seed stage is coarse (3 seeds take few distinct draws), so the
  interval is wide rather than too narrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from fedsim.errors import FedsimError
from fedsim.evaluation.bootstrap import percentile_interval, share_greater
from fedsim.evaluation.outcomes import alerted_by_horizon
from fedsim.evaluation.seeds import disagreement_variance, seed_stage

DAY_S = 86_400
DEFAULT_WINDOW_DAYS = 7
DEFAULT_TOLERANCE = 0.2
"""Recovered = the forward k-day rate is back at ≥ 80% of the pre-barrier level (relative tolerance τ)."""


@dataclass(frozen=True)
class AdaptationSettings:
    """The barrier day b, the observed days [start, end), k (``window_days``), τ (``tolerance``), the bootstrap."""

    barrier_day: int
    start_day: int
    end_day: int
    window_days: int = DEFAULT_WINDOW_DAYS
    tolerance: float = DEFAULT_TOLERANCE
    n_boot: int = 200
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        if not self.start_day < self.barrier_day < self.end_day:
            raise FedsimError(
                f"adaptation: barrier day {self.barrier_day} must lie strictly inside the observed days "
                f"[{self.start_day}, {self.end_day}) (some days before it and after it)"
            )
        if not 1 <= self.window_days <= self.end_day - self.barrier_day:
            raise FedsimError(
                f"adaptation: window of {self.window_days} days; allowed: 1 to {self.end_day - self.barrier_day} "
                "(the days after the barrier)"
            )
        if not 0.0 <= self.tolerance < 1.0:
            raise FedsimError(f"adaptation: tolerance {self.tolerance}; allowed: 0 <= tolerance < 1")


@dataclass(frozen=True)
class Hits:
    """ED(0) indicators of one regime: ``hits`` (S seeds, N cases), the cases' ids, fraud types and days."""

    hits: np.ndarray
    case_ids: np.ndarray
    fraud_types: np.ndarray
    days: np.ndarray
    seeds: Sequence[object]

    def only(self, fraud_type: str) -> Hits:
        """The cases of one fraud type (``all``: every case)."""
        if fraud_type == "all":
            return self
        m = self.fraud_types == fraud_type
        return Hits(self.hits[:, m], self.case_ids[m], self.fraud_types[m], self.days[m], self.seeds)


def case_hits(case_alerts: pd.DataFrame, *, k: float, horizon_h: float = 0.0) -> pd.DataFrame:
    """One run's ED(h) indicator per evaluated case at capacity key ``k``, from its logged ``case_alerts``.

    Returns ``case_id, fraud_type, day, hit``; ``day`` = whole days of the first money-out t_loss."""
    rows = case_alerts[np.isclose(case_alerts["k"].to_numpy(dtype=np.float64), k)]
    if rows.empty:
        raise FedsimError(f"adaptation: the run's case_alerts have no capacity k = {k:g}")
    t_alert = rows["t_alert"].to_numpy(dtype=np.float64)
    t_loss = rows["t_loss"].to_numpy(dtype=np.float64)
    return pd.DataFrame(
        {
            "case_id": rows["case_id"].to_numpy(),
            "fraud_type": rows["fraud_type"].to_numpy(),
            "day": (rows["t_loss"].to_numpy() // DAY_S).astype(np.int64),
            "hit": alerted_by_horizon(t_alert=t_alert, t_loss=t_loss, horizon_h=horizon_h).astype(np.float64),
        }
    )


def stack_seeds(per_seed: Sequence[tuple[object, pd.DataFrame]]) -> Hits:
    """:class:`Hits` from each seed's :func:`case_hits` table (the same cases in every seed, aligned by id)."""
    if not per_seed:
        raise FedsimError("adaptation: no run to read")
    first = per_seed[0][1].sort_values("case_id", kind="stable").reset_index(drop=True)
    ids = first["case_id"].to_numpy()
    rows = []
    for seed, table in per_seed:
        t = table.set_index("case_id")
        if len(t) != len(ids) or not t.index.isin(ids).all():
            raise FedsimError(f"adaptation: seed {seed} was evaluated on other cases than seed {per_seed[0][0]}")
        rows.append(t.loc[ids, "hit"].to_numpy(dtype=np.float64))
    return Hits(
        np.array(rows),
        ids,
        first["fraud_type"].to_numpy(),
        first["day"].to_numpy(dtype=np.int64),
        [s for s, _ in per_seed],
    )


# ---------------------------------------------------------------------------- rates under weights


def _day_matrix(days: np.ndarray, start: int, end: int) -> sparse.csr_matrix:
    """(end − start, N) one-hot of each case's day (cases outside [start, end) have no row)."""
    ok = (days >= start) & (days < end)
    cols = np.flatnonzero(ok)
    return sparse.csr_matrix((np.ones(len(cols)), (days[ok] - start, cols)), shape=(end - start, len(days)))


def _day_sums(h: Hits, st: AdaptationSettings, w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per observed day and resample: Σ_s v_s Σ_i w_i H[s, i] and Σ_s v_s Σ_i w_i (both (days, B)).

    ``w``: (N, B) case weights; ``v``: (S, B) seed weights."""
    dm = _day_matrix(h.days, st.start_day, st.end_day)
    seeded = h.hits.T @ v  # (N, B): Σ_s v_s H[s, i]
    hit_sum = np.asarray(dm @ (w * seeded))
    count = np.asarray(dm @ w) * v.sum(axis=0)[None, :]
    return hit_sum, count


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _levels(hit_sum: np.ndarray, count: np.ndarray, st: AdaptationSettings) -> tuple[np.ndarray, np.ndarray]:
    """(L_pre, L_post), each (B,)."""
    b = st.barrier_day - st.start_day
    pre = _ratio(hit_sum[:b].sum(0), count[:b].sum(0))
    post = _ratio(hit_sum[b:].sum(0), count[b:].sum(0))
    return pre, post


def _forward(hit_sum: np.ndarray, count: np.ndarray, st: AdaptationSettings) -> np.ndarray:
    """f(r) for r = 0 … (end − b − k), shape (R, B): the rate of the k days from b + r."""
    b, k = st.barrier_day - st.start_day, st.window_days
    cs_h = np.vstack([np.zeros((1, hit_sum.shape[1])), np.cumsum(hit_sum[b:], axis=0)])
    cs_c = np.vstack([np.zeros((1, count.shape[1])), np.cumsum(count[b:], axis=0)])
    return _ratio(cs_h[k:] - cs_h[:-k], cs_c[k:] - cs_c[:-k])


def first_recovery(forward: np.ndarray, pre: np.ndarray, tolerance: float) -> np.ndarray:
    """T per resample (B,): the first r with f(r) ≥ (1 − τ)·L_pre; NaN if none (or L_pre undefined).

    A window without cases (f undefined) never counts as recovered."""
    target = (1.0 - tolerance) * pre
    ok = np.nan_to_num(forward, nan=-np.inf) >= target[None, :] - 1e-12
    first = np.argmax(ok, axis=0).astype(np.float64)
    first[~ok.any(axis=0) | np.isnan(pre)] = np.nan
    return first


def _stats(h: Hits, st: AdaptationSettings, w: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    hit_sum, count = _day_sums(h, st, w, v)
    pre, post = _levels(hit_sum, count, st)
    return {"pre": pre, "post": post, "recovery_days": first_recovery(_forward(hit_sum, count, st), pre, st.tolerance)}


# ---------------------------------------------------------------------------- resamples


def _case_weights(days: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(N, n_boot) multinomial counts: within each day, its cases drawn with replacement (stratified)."""
    w = np.zeros((len(days), n_boot))
    for d in np.unique(days):
        idx = np.flatnonzero(days == d)
        n = len(idx)
        draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]  # resample j's draws
        w[idx] = np.bincount(draws.ravel(), minlength=n * n_boot).reshape(n_boot, n).T
    return w


def _seed_weights(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(S, n_boot) counts of the seeds drawn with replacement (all ones for one seed)."""
    return np.array([np.bincount(rng.integers(0, n_seeds, size=n_seeds), minlength=n_seeds) for _ in range(n_boot)]).T


def daily_rates(h: Hits, st: AdaptationSettings) -> pd.DataFrame:
    """``day, cases, rate, forward_rate`` over the observed days (forward: the k days from that day)."""
    ones_w, ones_v = np.ones((len(h.days), 1)), np.ones((len(h.seeds), 1))
    hit_sum, count = _day_sums(h, st, ones_w, ones_v)
    k = st.window_days
    cs_h = np.concatenate([[0.0], np.cumsum(hit_sum[:, 0])])
    cs_c = np.concatenate([[0.0], np.cumsum(count[:, 0])])
    n = len(cs_h) - 1
    fwd = np.full(n, np.nan)
    fwd[: n - k + 1] = _ratio(cs_h[k:] - cs_h[:-k], cs_c[k:] - cs_c[:-k])
    return pd.DataFrame(
        {
            "day": np.arange(st.start_day, st.end_day),
            "cases": (count[:, 0] / len(h.seeds)).astype(np.int64),
            "rate": _ratio(hit_sum[:, 0], count[:, 0]),
            "forward_rate": fwd,
        }
    )


def recovery(h: Hits, st: AdaptationSettings) -> dict[str, float]:
    """Levels and recovery time of one regime with two-stage bootstrap CIs (module docstring).

    Returns ``pre, pre_lo, pre_hi, post, …, recovery_days, recovery_days_lo, recovery_days_hi`` (NaN: not
    recovered within the window), ``p_not_recovered`` (share of resamples without recovery), ``n_cases`` (cases
    in the observed days) and ``n_seeds``."""
    point = _stats(h, st, np.ones((len(h.days), 1)), np.ones((len(h.seeds), 1)))
    out: dict[str, float] = {name: float(v[0]) for name, v in point.items()}
    if st.n_boot > 0:
        rng = np.random.default_rng([st.seed, 0xADA])
        draws = _stats(h, st, _case_weights(h.days, st.n_boot, rng), _seed_weights(len(h.seeds), st.n_boot, rng))
        for name, v in draws.items():
            lo, hi = percentile_interval(v[None, :], level=st.level)
            out[f"{name}_lo"], out[f"{name}_hi"] = float(lo[0]), float(hi[0])
        out["p_not_recovered"] = float(np.isnan(draws["recovery_days"]).mean())
    in_window = (h.days >= st.start_day) & (h.days < st.end_day)
    out["n_cases"] = float(in_window.sum())
    out["n_seeds"] = float(len(h.seeds))
    return out


def gain(a: Hits, b: Hits, st: AdaptationSettings, *, label: str = "") -> dict[str, float]:
    """Paired A − B of the pre- and post-barrier levels over the seeds both ran, CIs as `fedsim compare`.

    ``a`` and ``b`` must hold the same cases and the same seeds (in the same order); the CI covers
    :func:`fedsim.evaluation.seeds.covers_text` of their number of seeds."""
    if not np.array_equal(a.case_ids, b.case_ids) or list(a.seeds) != list(b.seeds):
        raise FedsimError("adaptation: a paired gain needs the same cases and training seeds in both regimes")
    rng = np.random.default_rng([st.seed, 0xC0DE])
    w = np.hstack([np.ones((len(a.days), 1)), _case_weights(a.days, st.n_boot, rng)])  # column 0: the point
    per_seed = []
    for s in range(len(a.seeds)):
        one = np.zeros((len(a.seeds), w.shape[1]))
        one[s] = 1.0
        pa, qa = _levels(*_day_sums(a, st, w, one), st)
        pb, qb = _levels(*_day_sums(b, st, w, one), st)
        per_seed.append(np.array([pa - pb, qa - qb]))  # (2, 1 + B)
    d = np.array(per_seed)  # (S, 2, 1 + B)
    point = d[:, :, 0]
    mean = np.nanmean(point, axis=0)
    lo = hi = p = np.full(2, np.nan)
    if st.n_boot > 1:
        case_draws = np.nanmean(d[:, :, 1:], axis=0)  # the seed mean within each case resample
        floor = disagreement_variance(
            np.nanvar(d[:, :, 1:], axis=2, ddof=1), np.nanvar(case_draws, axis=1, ddof=1), len(a.seeds)
        )
        draws, _ = seed_stage(point, case_draws, seed=st.seed, floor=floor, label=f"adaptation|{label}")
        lo, hi = percentile_interval(draws, level=st.level)
        p = share_greater(draws)
    return {
        "gain_pre": float(mean[0]),
        "gain_pre_lo": float(lo[0]),
        "gain_pre_hi": float(hi[0]),
        "gain_post": float(mean[1]),
        "gain_post_lo": float(lo[1]),
        "gain_post_hi": float(hi[1]),
        "p_post_gt_0": float(p[1]),
        "n_seeds_paired": float(len(a.seeds)),
    }
