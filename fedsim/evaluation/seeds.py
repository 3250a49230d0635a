"""Comparisons whose CI covers training randomness: cases × training seeds (× worlds).

Why: the case-level cluster bootstrap (:mod:`fedsim.evaluation.bootstrap`) holds the trained models
fixed, so it covers the test cases only. Retraining the same configuration with another seed (which
also redraws the negative subsample) moves the metrics by about as much as the case CI is wide; a
case-only CI then calls a training-seed difference "significant" in ~20% of A-vs-A comparisons
(issue 9). Bouthillier et al. (2021), "Accounting for variance in machine learning benchmarks"
(MLSys), show that the variance from training seeds must enter the comparison.

The estimate. A training seed s gives paired score tables (A_s, B_s) on the same test set; the
estimate of A − B is the seed mean D̄ = (1/S) Σ_s [M(A_s) − M(B_s)].

Its interval, a two-stage variance split (Davison & Hinkley 1997, *Bootstrap Methods*, §3.8,
multi-stage sampling; the within + between decomposition of Rubin 1987, *Multiple Imputation*, §3.1,
where replicates also share one data set):

1. **cases** — one paired cluster bootstrap: every resample w_b of the test cases is applied to every
   seed's A and B (the same resample everywhere), and D̄*(w_b) is the seed mean within the resample.
   This keeps the dependence between seeds that share the test cases.
2. **training seeds** — the seed effects u_s are a second, independent error of D̄ with variance
   τ²/S. It is estimated from the S per-seed point differences D_s (between-seed variance B, S − 1
   degrees of freedom) and carried as a scaled Student t: sqrt(B/S)·T, T ~ t_{S−1} — the posterior
   of a normal mean with unknown variance under a flat prior, so 3–5 seeds give a wide, honest
   margin instead of the too-narrow spread of resampling 3–5 seeds with replacement (whose
   bootstrap variance is biased by (S − 1)/S and takes only a handful of distinct values). B is
   never taken below the case-level disagreement of the seeds (:func:`disagreement_variance`), so
   seeds that agree by chance on their totals cannot shrink the CI.

The two are added draw by draw, D̄*(w_b) + sqrt(B/S)·T_b, and the CI is the percentile interval of
the sum; P(A > B) is the share of sums above 0. B also contains the part of the case noise that
differs between seeds, so the sum slightly over-covers rather than under-covers.

Deterministic CIs (issue 9). The T_b of a metric come from their own generator, keyed by (seed, the
comparison's label, metric, fraud type, k, h, Δ, ρ) (:func:`metric_stream`), so a quantity gets the
same CI in every table it appears in, whatever else is computed beside it; the case resamples already
depend on ``seed`` and the score tables only. The T_b are a Latin hypercube sample (McKay, Beckman &
Conover 1979, Technometrics 21:239–245): the t quantiles at (i + ½)/n_boot in a random order, so the
seed term adds almost no Monte-Carlo error of its own. What is left is the case bootstrap's: the
2.5% / 97.5% percentile of n_boot draws has a standard error of about
sqrt(0.025·0.975/n_boot)/φ(1.96) ≈ 2.7/sqrt(n_boot) sd of the difference — 0.085 sd (≈ 4% of the CI
half-width) at 1,000 resamples, 0.15 sd (≈ 8%) at 300; :func:`mc_error_note` says so in the output.

3. **worlds** (optional, :func:`combine_worlds`) — worlds of one configuration have independent
   cases and seeds. The grand estimate is the mean over W worlds; the within-world draws are averaged
   (independent across worlds), and the between-world variance beyond them, τ̂²_W = max(0, s²_W −
   mean_j V_j) (DerSimonian & Laird 1986, Controlled Clinical Trials 7:177–188, equal weights), is
   added as sqrt(τ̂²_W / W)·t_{W−1}. Truncation at 0 means the CI is never narrower than the
   within-world one (as in the modified Hartung–Knapp method, Röver, Knapp & Friede 2015, BMC Med.
   Res. Methodol. 15:99).

Every result says which axes its CI covers (``covers``), e.g. "cases × 5 training seeds".
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats

from fedsim.errors import FedsimError
from fedsim.evaluation import tables
from fedsim.evaluation.api import point_and_resamples, prepare_tables
from fedsim.evaluation.bootstrap import percentile_interval, share_greater
from fedsim.evaluation.estimator import MetricKey
from fedsim.evaluation.inputs import (
    DEFAULT_CAPACITIES,
    DEFAULT_HORIZONS_H,
    DEFAULT_INTERDICTION,
    DEFAULT_LATENCIES_H,
    EvaluationSettings,
    Truth,
)

SEED_STREAM = 0x5EED
"""Offset of the generator of the seed-stage t draws (kept apart from the case resamples)."""


def mc_error_note(n_boot: int) -> str:
    """The Monte-Carlo error of a percentile endpoint at ``n_boot`` resamples, in words (module docstring)."""
    se = 2.67 / np.sqrt(max(n_boot, 1))
    return (
        f"CI endpoints from {n_boot} case resamples: Monte-Carlo error ≈ {se:.2f} sd of the difference "
        f"(≈ {se / 1.96:.0%} of the half-width); deterministic for a given seed"
    )


def metric_stream(seed: int, key: MetricKey, label: str = "") -> np.random.Generator:
    """The generator of one metric's seed-stage draws, fixed by (seed, comparison label, metric key).

    Keyed by a sha256 of the key's text (never Python's salted ``hash``), so it is the same in every
    process and whatever other metrics are computed in the same call."""
    dims = ("-" if v is None else repr(float(v)) for v in (key.k, key.h, key.delta_h, key.rho))
    text = "|".join([label, key.metric, key.fraud_type, *dims])
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, SEED_STREAM, digest])


def stratified_draws(ppf: Callable[[np.ndarray], np.ndarray], n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``n_draws`` variates of a distribution with quantile function ``ppf`` as a Latin hypercube sample:
    the quantiles at (i + ½)/n in an order drawn from ``rng`` (McKay, Beckman & Conover 1979)."""
    return np.asarray(ppf((rng.permutation(n_draws) + 0.5) / n_draws), dtype=np.float64)


def covers_text(*, n_seeds: Sequence[int] | int, n_worlds: int = 1) -> str:
    """Which axes a CI covers, e.g. ``cases × 5 training seeds`` or ``cases × 3 worlds × 4–5 seeds``."""
    counts = sorted({int(n_seeds)} if isinstance(n_seeds, int | np.integer) else {int(n) for n in n_seeds})
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    if counts[-1] <= 1 and n_worlds <= 1:
        return "cases only (1 training seed: training randomness not covered)"
    worlds = f" × {n_worlds} worlds" if n_worlds > 1 else ""
    return f"cases{worlds} × {seeds} training seed{'s' if counts[-1] > 1 else ''}"


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _nanvar(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanvar(x, axis=axis, ddof=1)


def t_term(variance: np.ndarray, df: np.ndarray, *, n_draws: int, streams: Sequence[np.random.Generator]) -> np.ndarray:
    """Draws sqrt(variance)·T with T ~ t_df, shape (n_metrics, n_draws); 0 where df < 1 or variance is NaN.

    Metric i's T come from ``streams[i]`` alone (stratified, :func:`stratified_draws`)."""
    variance = np.asarray(variance, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    out = np.zeros((len(variance), n_draws))
    for i in map(int, np.flatnonzero((df >= 1) & np.isfinite(variance))):
        t = stratified_draws(partial(stats.t.ppf, df=float(df[i])), n_draws, streams[i])
        out[i] = np.sqrt(max(float(variance[i]), 0.0)) * t
    return out


def _streams(seed: int, keys: Sequence[MetricKey] | None, n: int, label: str) -> list[np.random.Generator]:
    keys = list(keys) if keys is not None else [MetricKey(f"m{i}", "all") for i in range(n)]
    return [metric_stream(seed, key, label) for key in keys]


def seed_stage(
    per_seed_diff: np.ndarray,
    case_draws: np.ndarray,
    *,
    seed: int,
    floor: np.ndarray | None = None,
    keys: Sequence[MetricKey] | None = None,
    label: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Add the training-seed error to case-bootstrap draws of the seed mean (module docstring, stage 2).

    Args:
        per_seed_diff: (S, M) point difference A − B of each seed (NaN = undefined for that seed).
        case_draws: (M, n_boot) paired case-bootstrap draws of the seed-mean difference.
        seed: seed of the t draws.
        floor: (M,) lower bound of the between-seed variance (see :func:`disagreement_variance`).
        keys, label: the M metrics' keys and the comparison's label, which fix each metric's t draws
            (:func:`metric_stream`; default keys: the metric's position).

    Returns:
        (draws (M, n_boot) covering cases and seeds, between-seed sd (M,) as used).
    """
    n_valid = (~np.isnan(per_seed_diff)).sum(axis=0)
    between = _nanvar(per_seed_diff, axis=0) if len(per_seed_diff) > 1 else np.full(per_seed_diff.shape[1], np.nan)
    if floor is not None and len(per_seed_diff) > 1:
        between = np.fmax(between, floor)
    streams = _streams(seed, keys, per_seed_diff.shape[1], label)
    extra = t_term(between / np.maximum(n_valid, 1), n_valid - 1.0, n_draws=case_draws.shape[1], streams=streams)
    return case_draws + extra, np.sqrt(between)


@dataclass(frozen=True)
class SeedComparison:
    """A − B over several training seeds (and possibly worlds), with a CI covering them.

    Attributes:
        table: ``metric, fraud_type, k, h, delta_h, rho, value_a, value_b, diff, lo, hi, p_a_gt_b``
            (``value_*`` and ``diff`` are means over seeds (and worlds); ``lo, hi`` cover ``covers``),
            plus ``lo_cases, hi_cases`` (the case-only CI of the same mean, for contrast),
            ``sd_between_seeds`` and ``n_seeds`` (seeds with the metric defined).
        per_seed: ``seed, metric, fraud_type, k, h, delta_h, rho, value_a, value_b, diff`` points.
        covers: the axes the CI covers, e.g. ``cases × 5 training seeds``.
        draws: (n_metrics, n_boot) draws of the difference behind ``lo, hi`` (rows of ``table`` with a CI).
        keys: the metric keys of ``draws``' rows.
    """

    table: pd.DataFrame
    per_seed: pd.DataFrame
    covers: str
    draws: np.ndarray
    keys: list[MetricKey]

    def value(self, metric: str, *, column: str = "diff", **where) -> float:
        """One cell, e.g. ``cmp.value("ed", column="lo", k=0.005, h=0)`` (see :func:`tables.lookup`)."""
        return tables.lookup(self.table, metric, column=column, **where)

    def with_capacity_labels(self, to_label: Mapping[float, float]) -> SeedComparison:
        """The same comparison with each capacity key k replaced by ``to_label[k]`` (e.g. the multiple of its
        world's calibrated capacity), so worlds whose calibrated fractions differ can be combined."""

        def relabel(k: float | None) -> float | None:
            return None if k is None else float(to_label.get(k, k))

        keys = [replace(key, k=relabel(key.k)) for key in self.keys]
        table = self.table.assign(k=self.table["k"].map(lambda k: to_label.get(k, k)))
        per_seed = self.per_seed.assign(k=self.per_seed["k"].map(lambda k: to_label.get(k, k)))
        return replace(self, table=table, per_seed=per_seed, keys=keys)


def disagreement_variance(var_per_seed: np.ndarray, var_of_mean: np.ndarray, n_seeds: int) -> np.ndarray:
    """Case-level estimate of the between-seed variance: how much the seeds disagree case by case.

    ``mean_s Var_w(D_s(w) − D̄(w)) · S/(S−1)`` with ``Var_w(D_s − D̄)`` averaged over seeds equal to
    ``mean_s Var_w(D_s) − Var_w(D̄)`` (w: the case resamples). When a seed changes which cases are
    caught independently from case to case, this estimates Var(D_s) with many degrees of freedom
    (one per case, like McNemar's variance), where the between-seed variance of S = 3–5 point
    differences has only S − 1; :func:`seed_stage` uses the larger of the two, so an accidental
    agreement of a few seeds cannot shrink the CI (the same guard as the modified Hartung–Knapp
    method, Röver, Knapp & Friede 2015).

    Args:
        var_per_seed: (S, M) case-bootstrap variance of each seed's difference.
        var_of_mean: (M,) case-bootstrap variance of the seed-mean difference.
    """
    if n_seeds < 2:
        return np.zeros_like(var_of_mean)
    return np.maximum(_nanmean(var_per_seed, axis=0) - var_of_mean, 0.0) * n_seeds / (n_seeds - 1)


def _settings(**kwargs) -> EvaluationSettings:
    for name in ("capacities", "horizons_h", "latencies_h", "interdiction"):
        kwargs[name] = tuple(kwargs[name])
    return EvaluationSettings(**kwargs)


def compare_over_seeds(
    pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    truth: Mapping[str, pd.DataFrame] | Truth,
    *,
    partner_sizes: Mapping[str, int],
    test_window_ts: tuple[int, int],
    seed: int,
    seed_labels: Sequence[object] | None = None,
    capacities: Sequence[float] = DEFAULT_CAPACITIES,
    horizons_h: Sequence[float] = DEFAULT_HORIZONS_H,
    latencies_h: Sequence[float] = DEFAULT_LATENCIES_H,
    interdiction: Sequence[float] = DEFAULT_INTERDICTION,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    alert_rule: str = "role_window",
    capacity_weights: Mapping[str, float] | None = None,
    label: str = "",
) -> SeedComparison:
    """Paired A − B over S training seeds on one world; the CI covers cases × seeds (module docstring).

    Args:
        pairs: per training seed, the score tables ``(A_s, B_s)`` (as in :func:`fedsim.evaluation.compare`).
        seed_labels: names of the seeds in ``per_seed`` (default 0..S−1).
        capacity_weights: partner → w_p, the per-partner share of each capacity k (default 1 for all).
        label: names the comparison (e.g. ``pooled − status_quo``); with ``seed`` and each metric's key it
            fixes the seed-stage draws, so the same quantity has the same CI in every table.
        Other arguments as in :func:`fedsim.evaluation.compare`; ``seed`` drives the case resamples
        (the same for every training seed) and the seed-stage t draws.
    """
    if not pairs:
        raise FedsimError("compare_over_seeds: no (A, B) score-table pair given; at least one is required")
    labels: list[object] = list(range(len(pairs))) if seed_labels is None else list(seed_labels)
    settings = _settings(
        test_window_ts=test_window_ts,
        seed=seed,
        capacities=capacities,
        horizons_h=horizons_h,
        latencies_h=latencies_h,
        interdiction=interdiction,
        n_boot=n_boot,
        ci_level=ci_level,
        alert_rule=alert_rule,
        capacity_weights=tuple(sorted((capacity_weights or {}).items())),
    )
    flat = [t for pair in pairs for t in pair]
    names = [f"scores_{side}[seed {lab}]" for lab in labels for side in ("a", "b")]
    prepared = prepare_tables(flat, truth, partner_sizes, settings, names=names)
    keys: list[MetricKey] = []
    point_a: list[np.ndarray] = []
    point_b: list[np.ndarray] = []
    seed_draws: list[np.ndarray] = []
    counts: dict[MetricKey, float] = {}
    var_per_seed: list[np.ndarray] = []
    for s in range(len(pairs)):
        est_a, est_b = prepared.estimator(2 * s), prepared.estimator(2 * s + 1)
        k_s, (pa, pb), (sa, sb) = point_and_resamples([est_a, est_b], settings)
        if keys and k_s != keys:
            raise RuntimeError("compare_over_seeds: seeds produced different metric sets")
        keys = k_s
        counts = counts or est_a.counts()
        point_a.append(pa)
        point_b.append(pb)
        diff = sa - sb
        var_per_seed.append(_nanvar(diff, axis=1) if diff.shape[1] > 1 else np.full(len(keys), np.nan))
        seed_draws.append(diff)
        del est_a, est_b
    a, b = np.array(point_a), np.array(point_b)
    per_seed_diff = a - b
    case_draws = _nanmean(np.array(seed_draws), axis=0)  # the seed mean within each case resample
    var_of_mean = _nanvar(case_draws, axis=1) if case_draws.shape[1] > 1 else np.full(len(keys), np.nan)
    floor = disagreement_variance(np.array(var_per_seed), var_of_mean, len(pairs))
    draws, sd_between = seed_stage(per_seed_diff, case_draws, seed=settings.seed, floor=floor, keys=keys, label=label)
    table = _table(
        keys,
        value_a=_nanmean(a, 0),
        value_b=_nanmean(b, 0),
        diff=_nanmean(per_seed_diff, 0),
        draws=draws,
        case_draws=case_draws,
        sd_between=sd_between,
        n_seeds=(~np.isnan(per_seed_diff)).sum(axis=0),
        level=ci_level,
        counts=counts,
    )
    per_seed = _per_seed_table(keys, labels, a, b)
    return SeedComparison(
        table=table, per_seed=per_seed, covers=covers_text(n_seeds=len(pairs)), draws=draws, keys=keys
    )


def _table(
    keys: list[MetricKey],
    *,
    value_a: np.ndarray,
    value_b: np.ndarray,
    diff: np.ndarray,
    draws: np.ndarray,
    case_draws: np.ndarray,
    sd_between: np.ndarray,
    n_seeds: np.ndarray,
    level: float,
    counts: Mapping[MetricKey, float],
) -> pd.DataFrame:
    lo, hi = percentile_interval(draws, level=level)
    lo_c, hi_c = percentile_interval(case_draws, level=level)
    body = tables.comparison_table(keys, value_a=value_a, value_b=value_b, lo=lo, hi=hi, p_a_gt_b=share_greater(draws))
    body["diff"] = diff  # mean of per-seed differences (equals value_a − value_b when no seed is undefined)
    body = body.assign(lo_cases=lo_c, hi_cases=hi_c, sd_between_seeds=sd_between, n_seeds=n_seeds)
    count_keys = list(counts)
    nan = np.full(len(count_keys), np.nan)
    extra = tables.comparison_table(
        count_keys,
        value_a=np.array([counts[k] for k in count_keys]),
        value_b=np.array([counts[k] for k in count_keys]),
        lo=nan,
        hi=nan,
        p_a_gt_b=nan,
    )
    return pd.concat([body, extra], ignore_index=True)


def _per_seed_table(keys: list[MetricKey], labels: list[object], a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    frames = []
    for i, lab in enumerate(labels):
        t = tables.comparison_table(keys, value_a=a[i], value_b=b[i], lo=a[i] * np.nan, hi=a[i] * np.nan, p_a_gt_b=a[i])
        frames.append(t.drop(columns=["lo", "hi", "p_a_gt_b"]).assign(seed=lab))
    out = pd.concat(frames, ignore_index=True)
    return out[["seed", *[c for c in out.columns if c != "seed"]]]


def combine_worlds(
    results: Sequence[SeedComparison], *, ci_level: float = 0.95, seed: int = 0, label: str = ""
) -> SeedComparison:
    """Mean of per-world seed comparisons with a CI covering cases × worlds × seeds (module docstring, stage 3).

    Each world's ``draws`` must come from the same number of resamples; metrics are matched by key
    (a metric missing in a world is left out of that world's mean).
    """
    if not results:
        raise FedsimError("combine_worlds: no world given")
    if len(results) == 1:
        return results[0]
    keys = [k for k in results[0].keys if all(k in r.keys for r in results[1:])]
    n_boot = {r.draws.shape[1] for r in results}
    if len(n_boot) != 1:
        raise FedsimError(f"combine_worlds: worlds have different numbers of resamples {sorted(n_boot)}")
    idx = [[r.keys.index(k) for k in keys] for r in results]
    draws = np.array([r.draws[i] for r, i in zip(results, idx, strict=True)])  # (W, M, n_boot)
    rows = [_rows_by_key(r.table, keys) for r in results]
    diffs = np.array([row["diff"].to_numpy() for row in rows])  # (W, M)
    within = _nanvar(draws, axis=2)  # V_j per world and metric
    n_w = (~np.isnan(diffs)).sum(axis=0)
    centred = draws - _nanmean(draws, axis=2)[:, :, None] + diffs[:, :, None]
    mean_draws = _nanmean(centred, axis=0)
    excess = np.maximum(_nanvar(diffs, axis=0) - _nanmean(within, axis=0), 0.0)
    streams = _streams(seed, keys, len(keys), f"{label}|{len(results)} worlds")
    total = mean_draws + t_term(excess / np.maximum(n_w, 1), n_w - 1.0, n_draws=mean_draws.shape[1], streams=streams)
    first = rows[0]
    table = first[["metric", "fraud_type", "k", "h", "delta_h", "rho"]].copy()
    table["value_a"] = _nanmean(np.array([r["value_a"].to_numpy() for r in rows]), 0)
    table["value_b"] = _nanmean(np.array([r["value_b"].to_numpy() for r in rows]), 0)
    table["diff"] = _nanmean(diffs, 0)
    table["lo"], table["hi"] = percentile_interval(total, level=ci_level)
    table["p_a_gt_b"] = share_greater(total)
    table["sd_between_worlds"] = np.sqrt(_nanvar(diffs, axis=0))
    table["n_worlds"] = n_w
    n_seeds = [int(r.per_seed["seed"].nunique()) for r in results]
    per_seed = pd.concat([r.per_seed.assign(world=j) for j, r in enumerate(results)], ignore_index=True)
    covers = covers_text(n_seeds=n_seeds, n_worlds=len(results))
    return SeedComparison(table=table, per_seed=per_seed, covers=covers, draws=total, keys=keys)


def _rows_by_key(table: pd.DataFrame, keys: list[MetricKey]) -> pd.DataFrame:
    """The rows of a comparison table in the order of ``keys``."""
    key_cols = ["metric", "fraud_type", "k", "h", "delta_h", "rho"]
    index = pd.MultiIndex.from_frame(table[key_cols].fillna(-1.0))
    want = pd.MultiIndex.from_tuples(
        [
            (k.metric, k.fraud_type, *[-1.0 if v is None else float(v) for v in (k.k, k.h, k.delta_h, k.rho)])
            for k in keys
        ],
        names=key_cols,
    )
    return table.iloc[index.get_indexer(want)].reset_index(drop=True)


def interval_from_runs(
    values: Sequence[float], lo: Sequence[float], hi: Sequence[float], *, level: float = 0.95, n_draws: int = 4000
) -> tuple[float, float, float]:
    """Seed mean of one metric with a CI covering cases × seeds, from each run's logged value and case CI.

    For tables built from the tracking store alone (`fedsim runs`, privacy–utility), where the
    score tables are not reloaded. The case stage is a normal error whose sd is the mean of the runs'
    case-bootstrap sds, (hi − lo) / (2·z) — the sd of a seed mean when the seeds' case errors are
    perfectly correlated (they share the test cases), hence an upper bound; the seed stage is the
    t term of :func:`seed_stage`. The draws use a fixed generator so a table re-renders identically.

    Returns:
        (mean, lo, hi); NaN bounds when no run has a value.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    if not ok.any():
        return (np.nan, np.nan, np.nan)
    mean = float(v[ok].mean())
    z = stats.norm.ppf(0.5 + level / 2.0)
    widths = np.asarray(hi, dtype=np.float64)[ok] - np.asarray(lo, dtype=np.float64)[ok]
    sd_cases = float(np.nanmean(widths)) / (2.0 * z) if np.isfinite(widths).any() else 0.0
    rng = np.random.default_rng(SEED_STREAM)
    draws = mean + sd_cases * stratified_draws(stats.norm.ppf, n_draws, rng)
    n = int(ok.sum())
    if n > 1:
        var = np.array([np.var(v[ok], ddof=1) / n])
        draws = draws + t_term(var, np.array([n - 1.0]), n_draws=n_draws, streams=[rng])[0]
    elif not np.isfinite(widths).any():
        return (mean, np.nan, np.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    q_lo, q_hi = np.percentile(draws, [tail, 100.0 - tail])
    return (mean, float(q_lo), float(q_hi))
