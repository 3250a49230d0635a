"""The value of each partner: a coalition game v(S) → Shapley, Banzhaf, leave-one-out, gains, with coherent CIs.

The game (evaluation.md §4). v(S) is the primary outcome of coalition S on the **common test set**: every
evaluated case of the world counts, and a case none of S's partners can see counts as a miss (so v(∅) = 0
for ED, detected and prevented €; 0.5 for ROC-AUC). Coalitions are indexed by bit masks over the players
(bit i = player i), index 0 = ∅.

Every quantity here is a **linear contrast** of the v table: an operator row c with quantity = Σ_S c_S v(S):

* Shapley (1953), "A value for n-person games", Contributions to the Theory of Games II:
  φ_i = Σ_{S ∌ i} |S|!(n − |S| − 1)!/n! · [v(S ∪ i) − v(S)];
* Banzhaf (1965), Rutgers Law Review 19:317 (Penrose 1946): β_i = 2^{−(n−1)} Σ_{S ∌ i} [v(S ∪ i) − v(S)];
* leave-one-out: v(N) − v(N \\ i);
* permutation sampling (Castro, Gómez & Tejada 2009, Computers & Operations Research 36:1726): the mean
  over m sampled orders π of v(Pre_π(i) ∪ i) − v(Pre_π(i)), an unbiased estimate of φ_i that needs only
  the coalitions the orders visit;
* gains v(S ∪ X) − v(S), paired differences v(A) − v(B), the mean marginal contribution by coalition size.

Because each is linear in v, the same operator is applied to the point estimates and to every case
resample of every training seed, so all CIs come from the same resamples (coherent: the CI of a
difference of two coalitions is a paired CI), and the training-seed error is added exactly as in
:mod:`fedsim.evaluation.seeds` (paired case bootstrap + t-distributed between-seed term with the
case-level disagreement floor). Efficiency (Σ φ_i = v(N) − v(∅)) holds exactly, draw by draw.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError
from fedsim.evaluation.bootstrap import percentile_interval, share_greater
from fedsim.evaluation.estimator import MetricKey
from fedsim.evaluation.seeds import disagreement_variance, seed_stage

MAX_PLAYERS = 16
"""Operators are dense over the 2^n coalitions; 2^16 columns is the most that stays small."""
DEFAULT_MARGIN = 0.0
"""Near-best margin: S is within CI of the best coalition when the lower end of the paired 95% CI of
v(best) − v(S) is at most this (0: the difference is not distinguishable from 0)."""


def _check_n(n: int) -> None:
    if not 1 <= n <= MAX_PLAYERS:
        raise FedsimError(f"value: {n} players; allowed: 1 to {MAX_PLAYERS}")


def mask_of(coalition: Sequence[str], players: Sequence[str]) -> int:
    """Bit mask of a coalition over ``players`` (bit i = players[i])."""
    index = {p: i for i, p in enumerate(players)}
    unknown = [p for p in coalition if p not in index]
    if unknown:
        raise FedsimError(f"value: {unknown[0]!r} is not a player; players: {', '.join(players)}")
    return sum(1 << index[p] for p in set(coalition))


def members(mask: int, players: Sequence[str]) -> tuple[str, ...]:
    """The players of a bit mask, in player order."""
    return tuple(p for i, p in enumerate(players) if mask >> i & 1)


def _size(mask: int) -> int:
    return int(mask).bit_count()


def lattice(players: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty coalition (2^n − 1), by size then in player order."""
    _check_n(len(players))
    return [c for k in range(1, len(players) + 1) for c in combinations(players, k)]


def shapley_operator(n: int) -> np.ndarray:
    """(n, 2^n): row i gives φ_i (Shapley 1953) as a linear combination of v over all coalitions."""
    _check_n(n)
    op = np.zeros((n, 1 << n))
    fact = [math.factorial(k) for k in range(n + 1)]
    for s in range(1 << n):
        k = _size(s)
        for i in range(n):
            if not s >> i & 1:
                w = fact[k] * fact[n - k - 1] / fact[n]
                op[i, s | 1 << i] += w
                op[i, s] -= w
    return op


def banzhaf_operator(n: int) -> np.ndarray:
    """(n, 2^n): row i gives the Banzhaf value β_i = mean over S ∌ i of v(S ∪ i) − v(S) (Banzhaf 1965)."""
    _check_n(n)
    op = np.zeros((n, 1 << n))
    w = 1.0 / (1 << (n - 1))
    for s in range(1 << n):
        for i in range(n):
            if not s >> i & 1:
                op[i, s | 1 << i] += w
                op[i, s] -= w
    return op


def leave_one_out_operator(n: int) -> np.ndarray:
    """(n, 2^n): row i gives v(N) − v(N \\ i)."""
    _check_n(n)
    full = (1 << n) - 1
    op = np.zeros((n, 1 << n))
    for i in range(n):
        op[i, full] += 1.0
        op[i, full & ~(1 << i)] -= 1.0
    return op


def sample_permutations(n: int, m: int, seed: int) -> np.ndarray:
    """(m, n) random orders of the players (the only randomness of permutation sampling)."""
    _check_n(n)
    if m < 1:
        raise FedsimError(f"value: {m} permutations; allowed: at least 1")
    rng = np.random.default_rng([seed, 0x5A4D])
    return np.array([rng.permutation(n) for _ in range(m)], dtype=np.int64)


def permutation_coalitions(permutations: np.ndarray) -> list[int]:
    """Masks of the non-empty coalitions the orders visit (every prefix of every order), sorted."""
    out: set[int] = set()
    for order in permutations:
        s = 0
        for i in order:
            s |= 1 << int(i)
            out.add(s)
    return sorted(out)


def permutation_operator(n: int, permutations: np.ndarray) -> np.ndarray:
    """(n, 2^n): the permutation-sampling estimate of φ (Castro, Gómez & Tejada 2009)."""
    _check_n(n)
    op = np.zeros((n, 1 << n))
    for order in permutations:
        s = 0
        for i in map(int, order):
            op[i, s | 1 << i] += 1.0
            op[i, s] -= 1.0
            s |= 1 << i
    return op / len(permutations)


def marginal_by_size_operator(n: int) -> np.ndarray:
    """(n, 2^n): row k−1 is the mean marginal contribution v(S ∪ i) − v(S) over all players i and all S ∌ i
    with |S| = k − 1: what the k-th partner adds, on average (returns diminish when it falls with k)."""
    _check_n(n)
    op = np.zeros((n, 1 << n))
    for s in range(1 << n):
        k = _size(s)
        for i in range(n):
            if not s >> i & 1:
                op[k, s | 1 << i] += 1.0
                op[k, s] -= 1.0
    counts = np.array([n * math.comb(n - 1, k) for k in range(n)], dtype=np.float64)
    return op / counts[:, None]


def difference_row(n: int, a: int, b: int) -> np.ndarray:
    """(2^n,): v(A) − v(B) for masks a, b."""
    row = np.zeros(1 << n)
    row[a] += 1.0
    row[b] -= 1.0
    return row


def apply(operator: np.ndarray, v: np.ndarray) -> np.ndarray:
    """operator (K, 2^n) applied to v (..., 2^n) along the last axis; coalitions that were not run (NaN) must have
    weight 0 in every row, else the quantity cannot be computed and this raises."""
    missing = np.isnan(v).all(axis=tuple(range(v.ndim - 1))) if v.ndim > 1 else np.isnan(v)
    if np.any(operator[:, missing] != 0):
        raise FedsimError("value: a quantity needs the outcome of a coalition that was not run")
    ok = ~missing
    return np.asarray(np.tensordot(v[..., ok], operator[:, ok], axes=([v.ndim - 1], [1])))


@dataclass(frozen=True)
class GameSample:
    """v(S) of one outcome over training seeds and case resamples.

    Attributes:
        players: the partners, in bit order.
        points: (n_seeds, 2^n) point value per training seed (NaN = coalition not run; column 0 = v(∅)).
        draws: (n_seeds, 2^n, n_boot) the same, on each case resample — the SAME resamples for every
            coalition and every seed, which is what makes every contrast paired.
        seed_labels: the training seeds.
    """

    players: tuple[str, ...]
    points: np.ndarray
    draws: np.ndarray
    seed_labels: tuple[object, ...] = ()

    @property
    def n(self) -> int:
        return len(self.players)

    def present(self) -> list[int]:
        """Masks of the non-empty coalitions with a value."""
        ok = ~np.isnan(self.points).all(axis=0)
        return [int(s) for s in np.flatnonzero(ok) if s]


def estimate(
    sample: GameSample,
    operator: np.ndarray,
    labels: Sequence[str],
    *,
    seed: int = 0,
    scope: str = "",
    level: float = 0.95,
) -> pd.DataFrame:
    """Each operator row as a seed-mean estimate with a CI covering cases × training seeds.

    The case stage applies the row to each resample's seed-mean v (:mod:`fedsim.evaluation.seeds`, stage 1);
    the seed stage adds sqrt(B/S)·t_{S−1} from the rows' per-seed values, B floored by the seeds' case-level
    disagreement (stage 2). ``labels`` and ``scope`` (e.g. the fraud type) fix each row's t draws.

    Returns:
        ``quantity, value, lo, hi, p_gt_0, sd_between_seeds, n_seeds``.
    """
    per_seed = apply(operator, sample.points)  # (S, K)
    seed_draws = np.moveaxis(apply(operator, np.moveaxis(sample.draws, 2, 1)), 2, 1)  # (S, K, B)
    case_draws = seed_draws.mean(axis=0)  # (K, B)
    n_seeds, n_boot = len(per_seed), case_draws.shape[1]
    keys = [MetricKey(str(lab), scope) for lab in labels]
    if n_seeds > 1 and n_boot > 1:
        var_per_seed = seed_draws.var(axis=2, ddof=1)
        floor = disagreement_variance(var_per_seed, case_draws.var(axis=1, ddof=1), n_seeds)
        draws, sd = seed_stage(per_seed, case_draws, seed=seed, floor=floor, keys=keys, label="value")
    else:
        draws, sd = case_draws, np.full(len(labels), np.nan)
    lo, hi = percentile_interval(draws, level=level) if n_boot else (np.full(len(labels), np.nan),) * 2
    return pd.DataFrame(
        {
            "quantity": list(labels),
            "value": per_seed.mean(axis=0),
            "lo": lo,
            "hi": hi,
            "p_gt_0": share_greater(draws) if n_boot else np.nan,
            "sd_between_seeds": sd,
            "n_seeds": n_seeds,
        }
    )


def _name(mask: int, players: Sequence[str]) -> str:
    return "+".join(members(mask, players)) or "∅"


def is_exact(sample: GameSample) -> bool:
    """Every non-empty coalition has a value (the whole lattice was run)."""
    return len(sample.present()) == (1 << sample.n) - 1


def _seed_mean(points: np.ndarray) -> np.ndarray:
    """(2^n,) seed-mean v per coalition; NaN, without numpy's empty-slice warning, for a coalition not run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
        return np.asarray(np.nanmean(points, axis=0))


def _rows(n: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    return np.array([difference_row(n, a, b) for a, b in pairs]).reshape(len(pairs), 1 << n)


def coalition_values(sample: GameSample, **kw) -> pd.DataFrame:
    """v(S) of every coalition that was run, with CI: ``coalition, size`` + :func:`estimate`'s columns."""
    n, masks = sample.n, sample.present()
    op = np.zeros((len(masks), 1 << n))
    op[np.arange(len(masks)), masks] = 1.0
    out = estimate(sample, op, [f"v({_name(s, sample.players)})" for s in masks], **kw)
    return out.assign(coalition=[_name(s, sample.players) for s in masks], size=[_size(s) for s in masks], mask=masks)


def player_values(sample: GameSample, *, permutations: np.ndarray | None = None, **kw) -> pd.DataFrame:
    """Shapley (exact, or by permutation sampling when ``permutations`` is given), Banzhaf and leave-one-out per
    player, where the run coalitions allow: ``player, concept`` + :func:`estimate`'s columns."""
    n, players = sample.n, sample.players
    present = set(sample.present()) | {0}
    concepts: list[tuple[str, np.ndarray]] = []
    if permutations is None:
        concepts += [("shapley", shapley_operator(n)), ("banzhaf", banzhaf_operator(n))]
    else:
        concepts.append(("shapley (permutation sampling)", permutation_operator(n, permutations)))
    concepts.append(("leave-one-out", leave_one_out_operator(n)))
    frames = []
    for concept, op in concepts:
        if any(op[:, s].any() for s in range(1 << n) if s not in present):
            continue  # this concept needs coalitions that were not run (e.g. leave-one-out without N \ i)
        t = estimate(sample, op, [f"{concept}|{p}" for p in players], **kw)
        frames.append(t.assign(player=list(players), concept=concept))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini & Hochberg (1995, JRSS-B 57:289) adjusted p-values (q-values) of a family; NaN stays NaN.

    q_(i) = min_{j ≥ i} min(1, m · p_(j) / j) over the m defined p-values sorted ascending."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="stable")]
        m = ok.size
        raw = p[order] * m / np.arange(1, m + 1)
        q[order] = np.minimum(1.0, np.minimum.accumulate(raw[::-1])[::-1])
    return q


def two_sided_p(p_gt_0: np.ndarray, n_boot: int) -> np.ndarray:
    """Bootstrap two-sided p-value of "the quantity is 0": 2·min(P(> 0), P(≤ 0)), at least 1/n_boot (the
    resolution of n_boot resamples), at most 1."""
    p = 2.0 * np.minimum(p_gt_0, 1.0 - p_gt_0)
    return np.clip(p, 1.0 / max(n_boot, 1), 1.0)


def gains(sample: GameSample, **kw) -> pd.DataFrame:
    """Gain from adding X to S, v(S ∪ X) − v(S), for every run S (∅ included) and X ∉ S with S ∪ X run.

    The table is an exploratory family (evaluation.md §3): ``q_bh`` is the Benjamini–Hochberg adjusted
    two-sided bootstrap p-value (:func:`two_sided_p`) over all its rows."""
    n, players = sample.n, sample.players
    present = set(sample.present()) | {0}
    pairs = [(s | 1 << i, s) for s in sorted(present) for i in range(n) if not s >> i & 1 and s | 1 << i in present]
    if not pairs:
        return pd.DataFrame()
    t = estimate(
        sample, _rows(n, pairs), [f"gain|{_name(b, players)}|+{_name(a & ~b, players)}" for a, b in pairs], **kw
    )
    p = two_sided_p(t["p_gt_0"].to_numpy(dtype=np.float64), sample.draws.shape[2])
    return t.assign(
        coalition=[_name(b, players) for _, b in pairs],
        added=[_name(a & ~b, players) for a, b in pairs],
        size=[_size(b) for _, b in pairs],
        p_two_sided=p,
        q_bh=benjamini_hochberg(p),
    )


def waterfall(sample: GameSample, **kw) -> pd.DataFrame:
    """From the best silo to the full chain, adding at each step the partner whose addition gives the highest v
    (point estimates choose the path; each step's gain has its paired CI). Steps whose coalition was not run
    end the path."""
    n, players = sample.n, sample.players
    mean = _seed_mean(sample.points)
    present = set(sample.present())
    silos = [1 << i for i in range(n) if 1 << i in present]
    if not silos:
        return pd.DataFrame()
    path = [max(silos, key=lambda s: mean[s])]
    while True:
        nxt = [path[-1] | 1 << i for i in range(n) if not path[-1] >> i & 1 and path[-1] | 1 << i in present]
        if not nxt:
            break
        path.append(max(nxt, key=lambda s: mean[s]))
    pairs = [(path[0], 0)] + list(zip(path[1:], path[:-1], strict=True))
    t = estimate(sample, _rows(n, pairs), [f"step|{_name(a, players)}" for a, _ in pairs], **kw)
    return t.assign(
        step=["best silo: " + _name(path[0], players)] + [f"+ {_name(a & ~b, players)}" for a, b in pairs[1:]],
        coalition=[_name(a, players) for a, _ in pairs],
    )


def best_and_smallest(sample: GameSample, *, margin: float = DEFAULT_MARGIN, **kw) -> dict[str, Any]:
    """The most effective coalition (highest seed-mean v) and the smallest coalition within CI of it.

    S is *within CI of the best* when the lower end of the paired CI of v(best) − v(S) is ≤ ``margin``
    (:data:`DEFAULT_MARGIN` = 0: the shortfall is not distinguishable from 0). The smallest such S has the
    fewest partners; ties go to the higher v.
    """
    n, players = sample.n, sample.players
    mean = _seed_mean(sample.points)
    present = sample.present()
    best = max(present, key=lambda s: (mean[s], -_size(s)))
    diffs = estimate(
        sample, _rows(n, [(best, s) for s in present]), [f"best−|{_name(s, players)}" for s in present], **kw
    )
    near = [s for s, lo in zip(present, diffs["lo"], strict=True) if s == best or lo <= margin]
    smallest = min(near, key=lambda s: (_size(s), -mean[s]))
    row = diffs[diffs["quantity"] == f"best−|{_name(smallest, players)}"].iloc[0]
    return {
        "best": _name(best, players),
        "best_value": float(mean[best]),
        "smallest_near_best": _name(smallest, players),
        "smallest_value": float(mean[smallest]),
        "shortfall": float(row["value"]),
        "shortfall_lo": float(row["lo"]),
        "shortfall_hi": float(row["hi"]),
        "margin": margin,
        "near_best": [_name(s, players) for s in near],
    }


def flags(sample: GameSample, **kw) -> dict[str, Any]:
    """The literature's three questions, each with the contrasts behind it (CIs as in :func:`estimate`).

    * every partner gains (MELLODDY, Heyndrickx et al. 2023): v(N) − v({i}) > 0 for every i (CI above 0);
    * returns diminish (MELLODDY): the mean marginal contribution of the k-th partner falls with k, and the
      first partner's exceeds the last's (CI of the difference above 0);
    * below the best silo (FLamby, Ogier du Terrail et al. 2022): coalitions S (|S| ≥ 2) whose v(S) is below
      max_{i ∈ S} v({i}) (the best silo by point estimate), with the paired CI of v(S) − v(best silo).
    """
    n, players = sample.n, sample.players
    full = (1 << n) - 1
    present = set(sample.present())
    mean = _seed_mean(sample.points)
    out: dict[str, Any] = {}
    silos = [i for i in range(n) if 1 << i in present]
    if full in present and silos:
        t = estimate(sample, _rows(n, [(full, 1 << i) for i in silos]), [f"full−|{players[i]}" for i in silos], **kw)
        out["every_partner_gains"] = bool((t["lo"] > 0).all())
        out["full_minus_silo"] = t.assign(player=[players[i] for i in silos])
    if len(present) == full and n >= 2:
        t = estimate(sample, marginal_by_size_operator(n), [f"marginal|{k}" for k in range(1, n + 1)], **kw)
        first_last = estimate(
            sample, (marginal_by_size_operator(n)[0] - marginal_by_size_operator(n)[-1])[None], ["first−last"], **kw
        )
        falling = bool(np.all(np.diff(t["value"].to_numpy()) <= 0))
        out["diminishing_returns"] = bool(falling and first_last["lo"].iloc[0] > 0)
        out["marginal_by_size"] = t.assign(k=list(range(1, n + 1)))
        out["first_minus_last"] = first_last
    below = []
    for s in sorted(present):
        inside = [1 << i for i in range(n) if s >> i & 1 and 1 << i in present]
        if _size(s) >= 2 and inside:
            silo = max(inside, key=lambda m: mean[m])
            if mean[s] < mean[silo]:
                below.append((s, silo))
    if below:
        t = estimate(sample, _rows(n, below), [f"below|{_name(s, players)}" for s, _ in below], **kw)
        out["below_best_silo"] = t.assign(
            coalition=[_name(s, players) for s, _ in below], best_silo=[_name(m, players) for _, m in below]
        )
    else:
        out["below_best_silo"] = pd.DataFrame()
    return out
