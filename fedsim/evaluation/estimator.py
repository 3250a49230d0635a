"""Every metric of one score table as a function of bootstrap cluster weights.

:class:`MetricEstimator` does the expensive work once — labels, capacity alerts, per-case
outcomes, the score ordering — and reduces the rows to sparse linear operators (groups × clusters).
A resample is a weight per cluster (:mod:`fedsim.evaluation.bootstrap`); each metric is then a few
sparse-times-dense products and cumulative sums, for a whole chunk of resamples at once. With all
weights 1 the same code yields the point estimates, so estimate and resamples cannot drift apart.

Per fraud type t, the row-level metrics (AP, ROC-AUC, recall@k, precision@k) use the rows positive
for a case of type t as positives and the rows positive for no case as negatives; rows positive only
for other types are left out (detecting other fraud is not a false alarm). Case-level metrics use
the evaluated cases of type t. ``fraud_type == "all"`` pools everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from fedsim.evaluation import metrics, outcomes
from fedsim.evaluation.alerts import capacity_alerts, rank_within_partner_day
from fedsim.evaluation.bootstrap import ClusterIndex
from fedsim.evaluation.inputs import EvaluationSettings, Truth
from fedsim.evaluation.labels import PHASE_COLUMNS

ALL = "all"
LEAD_TIME_QUANTILES: tuple[tuple[str, float], ...] = (
    ("lead_time_h_p25", 0.25),
    ("lead_time_h_median", 0.5),
    ("lead_time_h_p75", 0.75),
)


@dataclass(frozen=True)
class MetricKey:
    """Identifies one metric value; ``None`` = the dimension does not apply."""

    metric: str
    fraud_type: str
    k: float | None = None
    h: float | None = None
    delta_h: float | None = None
    rho: float | None = None


def evaluated_mask(cases: pd.DataFrame, *, test_window_ts: tuple[int, int]) -> np.ndarray:
    """Cases whose first money-out t_loss lies in [start, end) (t_loss = -1: no loss, never evaluated)."""
    t_loss = cases["t_loss"].to_numpy()
    start, end = test_window_ts
    return (t_loss >= 0) & (t_loss >= start) & (t_loss < end)


@dataclass(frozen=True)
class _Operators:
    """Sparse operators (groups × clusters) of one (fraud type) slice of the rows."""

    pos_levels: np.ndarray  # (L_t,) indices into the shared score levels holding type-t positives
    pos_at_level: sparse.csr_matrix  # (L_t, K)
    pos_per_day: sparse.csr_matrix  # (D, K)
    alerted_pos_per_day: dict[float, sparse.csr_matrix]  # k -> (D, K)
    alerted_rel_per_day: dict[float, sparse.csr_matrix]  # k -> (D, K), positives of t + negatives
    n_positive_rows: int


@dataclass(frozen=True)
class _CaseOutcomes:
    """Per-case outcomes at one capacity k, aligned with the evaluated cases."""

    t_alert: np.ndarray  # (n,) seconds, NaN = never
    hits: np.ndarray  # (n_h, n) ED indicators
    prevented: np.ndarray  # (n_delta, n) euros at ρ = 1
    lead_time_h: np.ndarray  # (n,)
    phase: np.ndarray  # (n,) labels
    phase_onehot: np.ndarray  # (len(PHASE_LABELS), n)


class MetricEstimator:
    """All evaluation metrics of one score table, evaluable for any cluster weights.

    Args:
        scores: validated scores (see :func:`fedsim.evaluation.inputs.validate_scores`).
        pairs: its positive (row, case_id) pairs (:func:`fedsim.evaluation.labels.positive_pairs`).
        truth: validated truth tables.
        partner_sizes: partner -> number of entities (alert capacity base).
        settings: capacities, horizons, latencies, interdiction, test window.
        clusters: the bootstrap clusters (shared between score tables that are compared).
        alert_pairs: the (row, case) pairs that define each case's first alert t_alert; default
            ``pairs`` (role windows). The ``any_entity`` alert rule passes all rows of the case's
            entities (:func:`fedsim.evaluation.labels.open_windows`); labels always use ``pairs``.
    """

    def __init__(
        self,
        *,
        scores: pd.DataFrame,
        pairs: pd.DataFrame,
        truth: Truth,
        partner_sizes: dict[str, int],
        settings: EvaluationSettings,
        clusters: ClusterIndex,
        alert_pairs: pd.DataFrame | None = None,
    ) -> None:
        self.settings = settings
        self.clusters = clusters
        self.n_clusters = clusters.n_clusters
        self.strata = clusters.strata
        cases = truth.cases
        evaluated = evaluated_mask(cases, test_window_ts=settings.test_window_ts)
        ev = cases.loc[evaluated].reset_index(drop=True)
        self.case_ids = ev["case_id"].to_numpy()
        self.case_types = ev["fraud_type"].to_numpy()
        self.case_clusters = clusters.case_cluster(self.case_ids)
        self.t_loss = ev["t_loss"].to_numpy(dtype=np.float64)
        self.loss = outcomes.loss_eur(truth.money_outs, case_ids=self.case_ids)
        self.fraud_types = (ALL, *sorted(set(self.case_types)))

        self._money = truth.money_outs
        self._build_rows(scores, pairs, cases, clusters)
        ranks = rank_within_partner_day(scores)
        self.alerted = {
            k: capacity_alerts(
                scores,
                capacity_frac=k,
                partner_sizes=partner_sizes,
                ranks=ranks,
                weights=dict(settings.capacity_weights),
            )
            for k in settings.capacities
        }
        self.alerts_op = {k: self._operator(np.where(a, 0, -1), 1) for k, a in self.alerted.items()}
        self._build_levels(scores["score"].to_numpy())
        self.ops = {t: self._slice_operators(t) for t in self.fraud_types}
        alert_on = pairs if alert_pairs is None else alert_pairs
        decision_ts = scores["decision_ts"].to_numpy()
        self.case_outcomes = {k: self._case_outcomes(alert_on, decision_ts, a, ev) for k, a in self.alerted.items()}

    # ---------------------------------------------------------------- construction
    def _build_rows(
        self, scores: pd.DataFrame, pairs: pd.DataFrame, cases: pd.DataFrame, clusters: ClusterIndex
    ) -> None:
        """Row → cluster membership triplets and per-type positive masks."""
        n = len(scores)
        rows = pairs["row"].to_numpy()
        per_row = np.bincount(rows, minlength=n)
        self.positive = per_row > 0
        neg = np.flatnonzero(~self.positive)
        neg_cluster = clusters.entity_cluster(scores["partner"].to_numpy()[neg], scores["entity_id"].to_numpy()[neg])
        # a row positive for m cases weighs the mean of their resample counts (module bootstrap)
        self.trip_row = np.concatenate([rows, neg])
        self.trip_cluster = np.concatenate([clusters.case_cluster(pairs["case_id"].to_numpy()), neg_cluster])
        self.trip_weight = np.concatenate([1.0 / per_row[rows], np.ones(len(neg))])
        case_type = pd.Series(cases["fraud_type"].to_numpy(), index=cases["case_id"].to_numpy())
        pair_types = pairs["case_id"].map(case_type).to_numpy()
        self.positive_of = {ALL: self.positive}
        for t in set(self.case_types):
            mask = np.zeros(n, dtype=bool)
            mask[rows[pair_types == t]] = True
            self.positive_of[t] = mask
        self.day_index, self.days = pd.factorize(scores["day"], sort=True)

    def _operator(self, groups: np.ndarray, n_groups: int) -> sparse.csr_matrix:
        """Sparse (n_groups × K) matrix summing the weight of rows with groups[row] = g (−1 = left out)."""
        g = groups[self.trip_row]
        keep = g >= 0
        return sparse.coo_matrix(
            (self.trip_weight[keep], (g[keep], self.trip_cluster[keep])), shape=(n_groups, self.n_clusters)
        ).tocsr()

    def _build_levels(self, score: np.ndarray) -> None:
        """Distinct positive scores, descending; negatives pre-summed onto them (see average_precision)."""
        self.levels = np.unique(score[self.positive])[::-1]
        n_levels = len(self.levels)
        # number of levels strictly above the score = the first level a negative counts against
        above = np.searchsorted(-self.levels, -score, side="left")
        negative = ~self.positive
        in_range = negative & (above < n_levels)
        self.neg_at = self._operator(np.where(in_range, above, -1), n_levels)
        tie = np.zeros(len(score), dtype=bool)
        if n_levels:
            tie = in_range & (self.levels[np.minimum(above, n_levels - 1)] == score)
        self.neg_tie = self._operator(np.where(tie, above, -1), n_levels)
        self.neg_total = self._operator(np.where(negative, 0, -1), 1)
        self.row_level = np.where(self.positive, above, -1)

    def _slice_operators(self, fraud_type: str) -> _Operators:
        pos = self.positive_of[fraud_type]
        relevant = pos | ~self.positive
        pos_levels, level_pos = np.unique(self.row_level[pos], return_inverse=True)
        groups = np.full(len(pos), -1)
        groups[pos] = level_pos
        n_days = len(self.days)
        return _Operators(
            pos_levels=pos_levels,
            pos_at_level=self._operator(groups, len(pos_levels)),
            pos_per_day=self._operator(np.where(pos, self.day_index, -1), n_days),
            alerted_pos_per_day={
                k: self._operator(np.where(pos & a, self.day_index, -1), n_days) for k, a in self.alerted.items()
            },
            alerted_rel_per_day={
                k: self._operator(np.where(relevant & a, self.day_index, -1), n_days) for k, a in self.alerted.items()
            },
            n_positive_rows=int(pos.sum()),
        )

    def _case_outcomes(
        self, pairs: pd.DataFrame, decision_ts: np.ndarray, alerted: np.ndarray, ev: pd.DataFrame
    ) -> _CaseOutcomes:
        s = self.settings
        t_alert = outcomes.first_alert_ts(pairs, decision_ts=decision_ts, alerted=alerted, case_ids=self.case_ids)
        hits = np.array(
            [outcomes.alerted_by_horizon(t_alert=t_alert, t_loss=self.t_loss, horizon_h=h) for h in s.horizons_h]
        )
        prevented = np.array(
            [
                outcomes.prevented_eur(self._money, case_ids=self.case_ids, t_alert=t_alert, latency_h=d)
                for d in s.latencies_h
            ]
        )
        phase = outcomes.phase_at_alert(phase_ts=ev[list(PHASE_COLUMNS)].to_numpy(), t_alert=t_alert)
        onehot = np.array([phase == label for label in outcomes.PHASE_LABELS], dtype=np.float64)
        return _CaseOutcomes(
            t_alert=t_alert,
            hits=hits.reshape(len(s.horizons_h), len(t_alert)),
            prevented=prevented.reshape(len(s.latencies_h), len(t_alert)),
            lead_time_h=outcomes.lead_time_h(t_loss=self.t_loss, t_alert=t_alert),
            phase=phase,
            phase_onehot=onehot.reshape(len(outcomes.PHASE_LABELS), len(t_alert)),
        )

    # ---------------------------------------------------------------- evaluation
    def values(self, weights: np.ndarray) -> dict[MetricKey, np.ndarray]:
        """Every metric for each column of ``weights``.

        Args:
            weights: (n_clusters, B) cluster weights; all ones gives the point estimates.

        Returns:
            MetricKey -> (B,) values, in a fixed order (the same for every call).
        """
        out: dict[MetricKey, np.ndarray] = {}
        fp_cum = np.cumsum(self.neg_at @ weights, axis=0)
        neg_tie = self.neg_tie @ weights
        neg_total = (self.neg_total @ weights)[0]
        alerts = {k: (op @ weights)[0] for k, op in self.alerts_op.items()}
        case_w = weights[self.case_clusters]
        for t in self.fraud_types:
            mask = np.ones(len(self.case_ids), dtype=bool) if t == ALL else self.case_types == t
            self._ranking(out, t, weights, fp_cum, neg_tie, neg_total)
            for k in self.settings.capacities:
                self._capacity(out, t, k, weights, case_w[mask], mask, alerts[k])
        return out

    def _ranking(
        self,
        out: dict[MetricKey, np.ndarray],
        t: str,
        weights: np.ndarray,
        fp_cum: np.ndarray,
        neg_tie: np.ndarray,
        neg_total: np.ndarray,
    ) -> None:
        """AP, lift, ROC-AUC and prevalence of fraud type t; fp_cum / neg_tie are (L, B) on the shared levels."""
        ops = self.ops[t]
        pos = ops.pos_at_level @ weights
        fp_t = fp_cum[ops.pos_levels]
        neg_at = np.diff(fp_t, axis=0, prepend=np.zeros((1, weights.shape[1])))
        ap = metrics.average_precision(pos, neg_at)
        n_pos = pos.sum(axis=0)
        prevalence = metrics.safe_ratio(n_pos, n_pos + neg_total)
        out[MetricKey("ap", t)] = ap
        out[MetricKey("lift", t)] = metrics.lift(ap, prevalence)
        out[MetricKey("roc_auc", t)] = metrics.roc_auc(pos, neg_at, neg_tie[ops.pos_levels], neg_total)
        out[MetricKey("prevalence", t)] = prevalence

    def _capacity(
        self,
        out: dict[MetricKey, np.ndarray],
        t: str,
        k: float,
        weights: np.ndarray,
        case_w: np.ndarray,
        mask: np.ndarray,
        alerts: np.ndarray,
    ) -> None:
        """Case-level metrics and daily recall / precision of fraud type t at capacity k.

        ``case_w`` (n_t, B) are the weights of the type's evaluated cases (``mask`` over all evaluated
        cases); ``alerts`` (B,) the weighted number of alerts of all partners, the denominator of
        € per 1,000 alerts also per fraud type (alert capacity is shared by all fraud types).
        """
        s = self.settings
        oc = self.case_outcomes[k]
        ed = metrics.weighted_share(oc.hits[:, mask], case_w)
        for i, h in enumerate(s.horizons_h):
            out[MetricKey("ed", t, k=k, h=h)] = ed[i]
        out[MetricKey("detected", t, k=k)] = metrics.weighted_share(~np.isnan(oc.t_alert[mask]), case_w)
        saved = oc.prevented[:, mask] @ case_w
        total_loss = self.loss[mask] @ case_w
        for i, d in enumerate(s.latencies_h):
            for rho in s.interdiction:
                eur = rho * saved[i]
                out[MetricKey("prevented_eur", t, k=k, delta_h=d, rho=rho)] = eur
                out[MetricKey("prevented_share", t, k=k, delta_h=d, rho=rho)] = metrics.safe_ratio(eur, total_loss)
                out[MetricKey("prevented_eur_per_1k_alerts", t, k=k, delta_h=d, rho=rho)] = metrics.safe_ratio(
                    1000.0 * eur, alerts
                )
        lead = oc.lead_time_h[mask]
        got = ~np.isnan(lead)
        order = np.argsort(lead[got], kind="stable")
        for name, q in LEAD_TIME_QUANTILES:
            out[MetricKey(name, t, k=k)] = metrics.weighted_quantile_sorted(lead[got][order], case_w[got][order], q)
        shares = metrics.weighted_share(oc.phase_onehot[:, mask], case_w)
        for i, label in enumerate(outcomes.PHASE_LABELS):
            out[MetricKey(f"phase_{label}", t, k=k)] = shares[i]
        ops = self.ops[t]
        alerted_pos = ops.alerted_pos_per_day[k] @ weights
        out[MetricKey("recall", t, k=k)] = metrics.mean_daily_ratio(alerted_pos, ops.pos_per_day @ weights)
        out[MetricKey("precision", t, k=k)] = metrics.mean_daily_ratio(
            alerted_pos, ops.alerted_rel_per_day[k] @ weights
        )

    # ---------------------------------------------------------------- descriptive
    def counts(self) -> dict[MetricKey, float]:
        """Sizes that carry no interval: evaluated cases and positive rows per type, alerts per k."""
        out: dict[MetricKey, float] = {}
        for t in self.fraud_types:
            n = len(self.case_ids) if t == ALL else int((self.case_types == t).sum())
            out[MetricKey("n_cases", t)] = float(n)
            out[MetricKey("n_positive_rows", t)] = float(self.ops[t].n_positive_rows)
        for k, a in self.alerted.items():
            out[MetricKey("alerts", ALL, k=k)] = float(a.sum())
        return out

    def case_alerts(self) -> pd.DataFrame:
        """Per evaluated case and capacity: t_alert, lead time (h), phase at alert, loss (€)."""
        frames = [
            pd.DataFrame(
                {
                    "case_id": self.case_ids,
                    "fraud_type": self.case_types,
                    "k": k,
                    "t_loss": self.t_loss.astype(np.int64),
                    "loss_eur": self.loss,
                    "t_alert": oc.t_alert,
                    "lead_time_h": oc.lead_time_h,
                    "phase_at_alert": oc.phase,
                }
            )
            for k, oc in self.case_outcomes.items()
        ]
        return pd.concat(frames, ignore_index=True)
