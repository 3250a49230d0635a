"""Cluster bootstrap machinery (fedsim.evaluation.bootstrap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsim.evaluation import bootstrap


def _strata():
    return np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])


def test_resample_weights_draw_each_stratum_its_own_size():
    # execute
    weights = np.concatenate(list(bootstrap.resample_weights(_strata(), n_boot=250, seed=1)), axis=1)

    # assert: 250 resamples; per stratum the counts sum to the stratum size (3, 2, 4)
    assert weights.shape == (9, 250)
    strata = _strata()
    for s, size in ((0, 3), (1, 2), (2, 4)):
        assert (weights[strata == s].sum(axis=0) == size).all()
    # each cluster is drawn once on average
    assert weights.mean() == pytest.approx(1.0, abs=0.1)


def test_resample_weights_reproducible_and_independent_of_chunking(monkeypatch):
    # prepare
    first = np.concatenate(list(bootstrap.resample_weights(_strata(), n_boot=30, seed=7)), axis=1)
    monkeypatch.setattr(bootstrap, "MAX_CHUNK", 4)

    # execute
    chunks = list(bootstrap.resample_weights(_strata(), n_boot=30, seed=7))
    other_seed = np.concatenate(list(bootstrap.resample_weights(_strata(), n_boot=30, seed=8)), axis=1)

    # assert
    assert len(chunks) == 8
    np.testing.assert_array_equal(first, np.concatenate(chunks, axis=1))
    assert not np.array_equal(first, other_seed)


def test_percentile_interval_known_values_and_nan_handling():
    # prepare: metric 0 = 0..100 (percentiles are exact), metric 1 undefined everywhere
    samples = np.vstack([np.arange(101.0), np.full(101, np.nan)])

    # execute
    lo, hi = bootstrap.percentile_interval(samples, level=0.95)

    # assert
    assert (lo[0], hi[0]) == pytest.approx((2.5, 97.5))
    assert np.isnan(lo[1]) and np.isnan(hi[1])


def test_share_greater_counts_strict_wins_over_defined_resamples():
    diff = np.array([[1.0, -1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [np.nan, 1.0, np.nan, -1.0]])
    np.testing.assert_allclose(bootstrap.share_greater(diff), [0.5, 0.0, 0.5])


def test_cluster_index_keeps_only_clusters_that_carry_data():
    # prepare: evaluated cases 1, 2; case 9 is outside the window but has rows; entity (bank, 4) has negatives
    neg = pd.DataFrame({"partner": ["bank", "bank", "telco"], "entity_id": [4, 4, 12]})

    # execute
    index = bootstrap.ClusterIndex.build(
        evaluated_cases=np.array([2, 1]), other_cases=np.array([9, 1, 9]), negative_entities=[neg]
    )

    # assert
    assert index.case_ids.tolist() == [1, 2, 9]
    assert index.strata.tolist() == [0, 0, 1, 2, 2]
    assert index.entity_cluster(np.array(["telco", "bank"]), np.array([12, 4])).tolist() == [4, 3]
    with pytest.raises(ValueError, match="case_id 5"):
        index.case_cluster(np.array([5]))
