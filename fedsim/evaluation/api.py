"""Public entry points: :func:`evaluate` one score table, :func:`compare` two on the same resamples.

Definitions (evaluation.md §2; each formula is documented where it is computed):

* capacity alerts — :mod:`fedsim.evaluation.alerts`; positive entity-days — :mod:`.labels`;
* ED(h)@k, prevented loss, lead time, phase at alert — :mod:`.outcomes`;
* AP (sklearn step-wise), lift, ROC-AUC, recall@k, precision@k — :mod:`.metrics`;
* case-level cluster bootstrap, percentile CI, paired P(A > B) — :mod:`.bootstrap`.

Metric names in the tidy table (``metric`` column): ``ed`` (h, k), ``detected`` (k: alerted at all),
``prevented_eur`` / ``prevented_share`` / ``prevented_eur_per_1k_alerts`` (delta_h, rho, k),
``lead_time_h_p25`` / ``_median`` / ``_p75`` (k), ``phase_<label>`` (k; labels in
``outcomes.PHASE_LABELS``), ``recall`` / ``precision`` (k; per day, averaged over days), ``ap``,
``lift``, ``roc_auc``, ``prevalence``; counts without interval: ``n_cases``, ``n_positive_rows``,
``alerts`` (k). Every metric is reported per fraud type and for ``all``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedsim.evaluation import tables
from fedsim.evaluation.alerts import CalibratedCapacity
from fedsim.evaluation.bootstrap import ClusterIndex, percentile_interval, resample_weights, share_greater
from fedsim.evaluation.estimator import MetricEstimator, MetricKey, evaluated_mask
from fedsim.evaluation.inputs import (
    DEFAULT_CAPACITIES,
    DEFAULT_HORIZONS_H,
    DEFAULT_INTERDICTION,
    DEFAULT_LATENCIES_H,
    EvaluationSettings,
    Truth,
    validate_partner_sizes,
    validate_scores,
)
from fedsim.evaluation.labels import case_windows, open_windows, positive_pairs


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of one score table.

    Attributes:
        table: tidy long table ``metric, fraud_type, k, h, delta_h, rho, value, lo, hi``.
        case_alerts: per evaluated case and capacity k: ``t_alert`` (s, NaN = never), lead time (h),
            phase at alert, loss (€).
        settings: the validated settings used.
        capacity_tag: ``k`` when ``k`` is a fraction of entities per day, ``cal`` when it is a multiple of
            the calibrated profile (:func:`evaluate_calibrated`); the tag of the flat names.
    """

    table: pd.DataFrame
    case_alerts: pd.DataFrame
    settings: EvaluationSettings
    capacity_tag: str = tables.FRACTION_TAG

    def flat(self) -> dict[str, float]:
        """MLflow-style ``{name: value}`` (scheme in :mod:`fedsim.evaluation.tables`)."""
        return tables.flatten_metrics(self.table, k_tag=self.capacity_tag)

    def value(self, metric: str, *, column: str = "value", **where) -> float:
        """One cell, e.g. ``result.value("ed", k=0.005, h=0)`` (see :func:`tables.lookup`)."""
        return tables.lookup(self.table, metric, column=column, **where)


@dataclass(frozen=True)
class ComparisonResult:
    """Paired comparison of score tables A and B on the same cases and resamples.

    Attributes:
        table: ``metric, fraud_type, k, h, delta_h, rho, value_a, value_b, diff, lo, hi, p_a_gt_b``
            where ``diff = value_a − value_b`` and ``lo, hi`` is the percentile CI of the difference.
        result_a, result_b: each side's own evaluation (same resamples as the difference).
    """

    table: pd.DataFrame
    result_a: EvaluationResult
    result_b: EvaluationResult

    def flat(self) -> dict[str, float]:
        """MLflow-style names with ``_a``, ``_b``, ``_diff``, ``_diff_lo``, ``_diff_hi``, ``_p_a_gt_b``."""
        return tables.flatten_comparison(self.table)

    def value(self, metric: str, *, column: str = "diff", **where) -> float:
        """One cell, e.g. ``cmp.value("ap", column="p_a_gt_b")``."""
        return tables.lookup(self.table, metric, column=column, **where)


@dataclass(frozen=True)
class PreparedTables:
    """Validated score tables with their positive pairs and the bootstrap clusters they share.

    Estimators are built one at a time (:meth:`estimator`), so many score tables (e.g. several
    training seeds) can share one set of clusters — the basis of pairing — without all estimators
    being held in memory at once.
    """

    scores: list[pd.DataFrame]
    pairs: list[pd.DataFrame]
    alert_pairs: list[pd.DataFrame | None]
    truth: Truth
    partner_sizes: dict[str, int]
    settings: EvaluationSettings
    clusters: ClusterIndex

    def estimator(self, i: int) -> MetricEstimator:
        """The :class:`MetricEstimator` of score table ``i``."""
        return MetricEstimator(
            scores=self.scores[i],
            pairs=self.pairs[i],
            truth=self.truth,
            partner_sizes=self.partner_sizes,
            settings=self.settings,
            clusters=self.clusters,
            alert_pairs=self.alert_pairs[i],
        )


def prepare_tables(
    score_tables: Sequence[pd.DataFrame],
    truth: Mapping[str, pd.DataFrame] | Truth,
    partner_sizes: Mapping[str, int],
    settings: EvaluationSettings,
    *,
    names: Sequence[str] | None = None,
) -> PreparedTables:
    """Validate inputs, label the rows and build the bootstrap clusters shared by all ``score_tables``."""
    sizes = validate_partner_sizes(partner_sizes)
    valid_truth = Truth.from_tables(truth)
    if names is None:
        names = ["scores"] if len(score_tables) == 1 else [f"scores[{i}]" for i in range(len(score_tables))]
    valid = [validate_scores(s, partner_sizes=sizes, table=n) for s, n in zip(score_tables, names, strict=True)]
    cases = valid_truth.cases
    windows = case_windows(cases, valid_truth.money_outs)
    pairs = [positive_pairs(s, valid_truth.case_entities, windows) for s in valid]
    negative = [s.drop(index=p["row"].unique())[["partner", "entity_id"]] for s, p in zip(valid, pairs, strict=True)]
    clusters = ClusterIndex.build(
        evaluated_cases=cases["case_id"].to_numpy()[evaluated_mask(cases, test_window_ts=settings.test_window_ts)],
        other_cases=np.concatenate([p["case_id"].to_numpy() for p in pairs]),
        negative_entities=negative,
    )
    alert_pairs: list[pd.DataFrame | None] = [None] * len(valid)
    if settings.alert_rule == "any_entity":
        alert_pairs = [positive_pairs(s, valid_truth.case_entities, open_windows(windows)) for s in valid]
    return PreparedTables(valid, pairs, alert_pairs, valid_truth, sizes, settings, clusters)


def build_estimators(
    score_tables: Sequence[pd.DataFrame],
    truth: Mapping[str, pd.DataFrame] | Truth,
    partner_sizes: Mapping[str, int],
    settings: EvaluationSettings,
) -> list[MetricEstimator]:
    """Validate inputs and build one :class:`MetricEstimator` per score table over shared clusters.

    Useful on its own to evaluate metrics under custom cluster weights (``estimator.values``).
    """
    names = ["scores_a", "scores_b"] if len(score_tables) == 2 else None
    prepared = prepare_tables(score_tables, truth, partner_sizes, settings, names=names)
    return [prepared.estimator(i) for i in range(len(score_tables))]


def point_and_resamples(
    estimators: list[MetricEstimator], settings: EvaluationSettings
) -> tuple[list[MetricKey], list[np.ndarray], list[np.ndarray]]:
    """Point estimates (n_metrics,) and resampled values (n_metrics, n_boot) for each estimator.

    Every estimator sees the same weight chunks, which makes comparisons paired.
    """
    n_clusters = estimators[0].n_clusters
    first = [e.values(np.ones((n_clusters, 1))) for e in estimators]
    keys = list(first[0])
    if any(list(f) != keys for f in first):
        raise RuntimeError("paired estimators produced different metric sets")
    points = [np.array([f[key][0] for key in keys]) for f in first]
    chunks: list[list[np.ndarray]] = [[] for _ in estimators]
    for weights in resample_weights(estimators[0].strata, n_boot=settings.n_boot, seed=settings.seed):
        for est, store in zip(estimators, chunks, strict=True):
            vals = est.values(weights)
            store.append(np.array([vals[key] for key in keys]))
    samples = [np.concatenate(c, axis=1) if c else np.empty((len(keys), 0)) for c in chunks]
    return keys, points, samples


def result_of(
    est: MetricEstimator,
    keys: list[MetricKey],
    point: np.ndarray,
    samples: np.ndarray,
    settings: EvaluationSettings,
) -> EvaluationResult:
    """Tidy result of one estimator: point estimates, percentile CIs, then the counts (no CI)."""
    lo, hi = percentile_interval(samples, level=settings.ci_level)
    counts = est.counts()
    all_keys = keys + list(counts)
    nan = np.full(len(counts), np.nan)
    table = tables.tidy_table(
        all_keys,
        value=np.concatenate([point, list(counts.values())]),
        lo=np.concatenate([lo, nan]),
        hi=np.concatenate([hi, nan]),
    )
    return EvaluationResult(table=table, case_alerts=est.case_alerts(), settings=settings)


def evaluate(
    scores: pd.DataFrame,
    truth: Mapping[str, pd.DataFrame] | Truth,
    *,
    partner_sizes: Mapping[str, int],
    test_window_ts: tuple[int, int],
    seed: int,
    capacities: Sequence[float] = DEFAULT_CAPACITIES,
    horizons_h: Sequence[float] = DEFAULT_HORIZONS_H,
    latencies_h: Sequence[float] = DEFAULT_LATENCIES_H,
    interdiction: Sequence[float] = DEFAULT_INTERDICTION,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    alert_rule: str = "role_window",
    capacity_weights: Mapping[str, float] | None = None,
) -> EvaluationResult:
    """Case-level early-detection metrics of one score table with cluster-bootstrap CIs.

    Args:
        scores: one row per scored entity-day of the test window: ``partner, entity_id, day,
            decision_ts`` (s since world start, when the score was available), ``score`` (higher =
            more suspicious).
        truth: ``cases``, ``money_outs``, ``case_entities`` truth tables (synthetic/schema.py).
        partner_sizes: partner -> number of entities it has (base of its daily alert capacity).
        test_window_ts: ``(start, end)`` s; cases with t_loss in [start, end) are evaluated.
        seed: seed of the bootstrap generator (the only randomness).
        capacities: daily alert capacity k per partner as a fraction of its entities.
        horizons_h: ED horizons h (hours). latencies_h: intervention latencies Δ (hours).
        interdiction: interdiction success rates ρ. n_boot: resamples (0 = no CI).
        ci_level: coverage of the percentile intervals.
        alert_rule: ``role_window`` (default) or ``any_entity`` — how t_alert is found
            (:mod:`fedsim.evaluation.outcomes`, "one clock").
        capacity_weights: partner → w_p: partner p works ``k · w_p`` of its entities a day (default 1).
    """
    settings = EvaluationSettings(
        test_window_ts=test_window_ts,
        seed=seed,
        capacities=tuple(capacities),
        horizons_h=tuple(horizons_h),
        latencies_h=tuple(latencies_h),
        interdiction=tuple(interdiction),
        n_boot=n_boot,
        ci_level=ci_level,
        alert_rule=alert_rule,
        capacity_weights=tuple(sorted((capacity_weights or {}).items())),
    )
    (est,) = build_estimators([scores], truth, partner_sizes, settings)
    keys, (point,), (samples,) = point_and_resamples([est], settings)
    return result_of(est, keys, point, samples, settings)


def evaluate_calibrated(
    scores: pd.DataFrame,
    truth: Mapping[str, pd.DataFrame] | Truth,
    *,
    capacity: CalibratedCapacity,
    scales: Sequence[float],
    **kwargs,
) -> EvaluationResult:
    """:func:`evaluate` at multiples ``scales`` of a world's calibrated capacity profile (what every run logs).

    Partner p works ``scale · capacity.reference · w_p`` of its entities a day. The result's ``k`` column
    (and ``case_alerts.k``) holds the multiple, and its flat names carry ``_cal<scale>``
    (:mod:`fedsim.evaluation.tables`). Other arguments as in :func:`evaluate`.
    """
    fractions = capacity.fractions(scales)
    result = evaluate(scores, truth, capacities=fractions, capacity_weights=capacity.weights, **kwargs)
    to_scale = dict(zip(fractions, map(float, scales), strict=True))
    table = result.table.assign(k=result.table["k"].map(lambda k: to_scale.get(k, k)))
    alerts = result.case_alerts
    if "k" in alerts:
        alerts = alerts.assign(k=alerts["k"].map(lambda k: to_scale.get(k, k)))
    return EvaluationResult(table, alerts, result.settings, capacity_tag=tables.CALIBRATED_TAG)


def compare(
    scores_a: pd.DataFrame,
    scores_b: pd.DataFrame,
    truth: Mapping[str, pd.DataFrame] | Truth,
    *,
    partner_sizes: Mapping[str, int],
    test_window_ts: tuple[int, int],
    seed: int,
    capacities: Sequence[float] = DEFAULT_CAPACITIES,
    horizons_h: Sequence[float] = DEFAULT_HORIZONS_H,
    latencies_h: Sequence[float] = DEFAULT_LATENCIES_H,
    interdiction: Sequence[float] = DEFAULT_INTERDICTION,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    alert_rule: str = "role_window",
) -> ComparisonResult:
    """Paired comparison of two score tables (e.g. two regimes) on the same test set (evaluation.md §3).

    Both tables are evaluated on the same bootstrap resamples (clusters: all cases, and the union of
    both tables' entities), so the CI of A − B and P(A > B) reflect the pairing. Arguments as in
    :func:`evaluate`.
    """
    settings = EvaluationSettings(
        test_window_ts=test_window_ts,
        seed=seed,
        capacities=tuple(capacities),
        horizons_h=tuple(horizons_h),
        latencies_h=tuple(latencies_h),
        interdiction=tuple(interdiction),
        n_boot=n_boot,
        ci_level=ci_level,
        alert_rule=alert_rule,
    )
    est_a, est_b = build_estimators([scores_a, scores_b], truth, partner_sizes, settings)
    keys, (point_a, point_b), (samples_a, samples_b) = point_and_resamples([est_a, est_b], settings)
    diff = samples_a - samples_b
    lo, hi = percentile_interval(diff, level=settings.ci_level)
    counts_a, counts_b = est_a.counts(), est_b.counts()
    count_keys = list(counts_a)
    nan = np.full(len(count_keys), np.nan)
    table = tables.comparison_table(
        keys + count_keys,
        value_a=np.concatenate([point_a, [counts_a[key] for key in count_keys]]),
        value_b=np.concatenate([point_b, [counts_b[key] for key in count_keys]]),
        lo=np.concatenate([lo, nan]),
        hi=np.concatenate([hi, nan]),
        p_a_gt_b=np.concatenate([share_greater(diff), nan]),
    )
    return ComparisonResult(
        table=table,
        result_a=result_of(est_a, keys, point_a, samples_a, settings),
        result_b=result_of(est_b, keys, point_b, samples_b, settings),
    )
