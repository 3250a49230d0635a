"""Case-level cluster bootstrap: clusters, resample weights, percentile intervals, paired summaries.

Clusters (evaluation.md §3): a *case* is one cluster — its money-outs, its case-level outcome and
every entity-day row positive for it; a row positive for several cases (a mule serving many
victims) takes the mean of those cases' weights. Negative rows are clustered by (partner, entity),
so an entity's days stay together. Resampling whole clusters with replacement keeps the
within-cluster dependence (Davison & Hinkley 1997, *Bootstrap Methods*, §3.8; Field & Welsh 2007,
JRSS-B 69:369–390, the "cluster bootstrap").

Resampling is stratified (Davison & Hinkley §3.2.2): the evaluated cases, the other cases and the
entity clusters are each drawn n_s times from themselves, so every resample has as many evaluated
cases as the data. A resample is represented by multinomial counts per cluster — cluster i drawn
c_i times weighs c_i — so no rows are copied. Intervals are percentile intervals
(Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, §13.3).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

STRATUM_EVALUATED_CASES = 0
STRATUM_OTHER_CASES = 1
STRATUM_ENTITIES = 2
MAX_CHUNK = 100
"""At most this many resamples are evaluated at once."""
WEIGHT_BUDGET = 10_000_000
"""Bound on n_clusters × chunk weights held in memory (80 MB of float64)."""


@dataclass(frozen=True)
class ClusterIndex:
    """The bootstrap clusters: cases first, then the (partner, entity_id)s of negative rows.

    Attributes:
        case_ids: (n_cases,) int64 case ids, cluster i = case_ids[i].
        entity_keys: DataFrame ``partner, entity_id`` — cluster n_cases + j = row j.
        strata: (n_clusters,) stratum of each cluster (STRATUM_* constants).
    """

    case_ids: np.ndarray
    entity_keys: pd.DataFrame
    strata: np.ndarray

    @classmethod
    def build(
        cls,
        *,
        evaluated_cases: np.ndarray,
        other_cases: np.ndarray,
        negative_entities: Sequence[pd.DataFrame],
    ) -> ClusterIndex:
        """Clusters shared by every score table — the basis of paired comparisons.

        Only clusters that can carry something are kept, so that drawing an empty cluster never
        dilutes a resample: every evaluated case (one without positive rows is still a miss), the
        other cases that have positive rows, and the entities that have negative rows.

        Args:
            evaluated_cases: case ids with t_loss in the test window.
            other_cases: ids of the remaining cases that have a positive row in some score table.
            negative_entities: per score table, ``partner, entity_id`` of its negative rows.
        """
        keys = pd.concat([e[["partner", "entity_id"]] for e in negative_entities], ignore_index=True)
        keys = keys.drop_duplicates().sort_values(["partner", "entity_id"], ignore_index=True)
        evaluated_cases = np.unique(np.asarray(evaluated_cases, dtype=np.int64))
        other_cases = np.setdiff1d(np.asarray(other_cases, dtype=np.int64), evaluated_cases)
        strata = np.concatenate(
            [
                np.full(len(evaluated_cases), STRATUM_EVALUATED_CASES),
                np.full(len(other_cases), STRATUM_OTHER_CASES),
                np.full(len(keys), STRATUM_ENTITIES),
            ]
        ).astype(np.int64)
        case_ids = np.concatenate([evaluated_cases, other_cases])
        return cls(case_ids=case_ids, entity_keys=keys, strata=strata)

    @property
    def n_clusters(self) -> int:
        return len(self.strata)

    def case_cluster(self, case_ids: np.ndarray) -> np.ndarray:
        """Cluster index of each case id (shape as input); raises on unknown ids."""
        idx = pd.Index(self.case_ids).get_indexer(np.asarray(case_ids))
        if (idx < 0).any():
            raise ValueError(f"case_id {np.asarray(case_ids)[idx < 0][0]} has no cluster")
        return idx

    def entity_cluster(self, partner: np.ndarray, entity_id: np.ndarray) -> np.ndarray:
        """Cluster index of each (partner, entity_id) row; raises on unknown entities."""
        index = pd.MultiIndex.from_frame(self.entity_keys)
        idx = index.get_indexer(pd.MultiIndex.from_arrays([partner, entity_id]))
        if (idx < 0).any():
            raise ValueError("scores: a negative row's entity has no bootstrap cluster")
        return idx + len(self.case_ids)


def resample_weights(strata: np.ndarray, *, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield cluster weights for ``n_boot`` stratified bootstrap resamples, a chunk at a time.

    Within each stratum of size n_s, n_s clusters are drawn uniformly with replacement; the weight
    of a cluster is how often it was drawn (Multinomial(n_s, 1/n_s) counts). Only the explicit
    ``seed`` drives the draws (one ``np.random.Generator``), resample after resample, so the
    resamples do not depend on the chunk size.

    Yields:
        float64 arrays of shape (n_clusters, b); the b columns are consecutive resamples.
    """
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    chunk = int(max(1, min(MAX_CHUNK, WEIGHT_BUDGET // max(1, len(strata)))))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        weights = np.zeros((len(strata), b))
        for j in range(b):
            for idx in members:
                weights[idx, j] = np.bincount(rng.integers(0, len(idx), size=len(idx)), minlength=len(idx))
        done += b
        yield weights


def percentile_interval(samples: np.ndarray, *, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval per metric, ignoring resamples where the metric is undefined (NaN).

    Args:
        samples: (n_metrics, n_boot) resampled metric values.
        level: coverage, e.g. 0.95 → the 2.5th and 97.5th percentiles.

    Returns:
        (lo, hi), each (n_metrics,); NaN for a metric with no defined resample.
    """
    n = samples.shape[0]
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    ok = ~np.isnan(samples).all(axis=1)
    if samples.shape[1] and ok.any():
        tail = 100.0 * (1.0 - level) / 2.0
        lo[ok], hi[ok] = np.nanpercentile(samples[ok], [tail, 100.0 - tail], axis=1)
    return lo, hi


def share_greater(diff: np.ndarray) -> np.ndarray:
    """P(A > B): share of resamples (with both metrics defined) where A's value exceeds B's.

    A descriptive bootstrap probability over the paired resamples, not a p-value.
    ``diff`` is (n_metrics, n_boot) of A − B; returns (n_metrics,), NaN with no defined resample.
    """
    valid = ~np.isnan(diff)
    count = valid.sum(axis=1)
    out = np.full(diff.shape[0], np.nan)
    np.divide((np.where(valid, diff, 0.0) > 0).sum(axis=1), count, out=out, where=count > 0)
    return out
