"""The value concepts of fedsim.evaluation.value on games whose answers are known by hand or by definition."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsim.evaluation import value as V


def _game(n: int, v: np.ndarray, *, seeds: int = 1, n_boot: int = 0, noise: float = 0.0, seed: int = 0) -> V.GameSample:
    """A sample whose every seed and resample holds ``v`` plus independent noise (v(∅) kept as given)."""
    rng = np.random.default_rng(seed)
    points = np.tile(v, (seeds, 1)) + noise * rng.standard_normal((seeds, 1 << n))
    draws = points[:, :, None] + noise * rng.standard_normal((seeds, 1 << n, n_boot))
    points[:, 0], draws[:, 0] = v[0], v[0]
    return V.GameSample(players=tuple(f"p{i}" for i in range(n)), points=points, draws=draws)


def _random_v(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.uniform(0, 1, 1 << n)
    v[0] = rng.uniform(-0.2, 0.2)
    return v


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_shapley_is_efficient_exactly_on_random_games(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(20):
        v = _random_v(n, rng)
        phi = V.shapley_operator(n) @ v
        assert phi.sum() == pytest.approx(v[-1] - v[0], abs=1e-12)


def test_efficiency_holds_draw_by_draw_and_for_the_seed_mean() -> None:
    n = 4
    sample = _game(n, _random_v(n, np.random.default_rng(1)), seeds=3, n_boot=50, noise=0.05)
    per_draw = V.apply(V.shapley_operator(n), np.moveaxis(sample.draws, 2, 1))  # (S, B, n)
    full = sample.draws[:, -1, :] - sample.draws[:, 0, :]
    np.testing.assert_allclose(per_draw.sum(axis=2), full, atol=1e-12)
    t = V.estimate(sample, V.shapley_operator(n), [f"p{i}" for i in range(n)])
    assert t["value"].sum() == pytest.approx(float(np.mean(sample.points[:, -1] - sample.points[:, 0])), abs=1e-12)


def _additive(weights: list[float]) -> np.ndarray:
    n = len(weights)
    return np.array([sum(w for i, w in enumerate(weights) if s >> i & 1) for s in range(1 << n)], dtype=float)


def test_a_duplicated_partner_shares_its_value_with_its_twin() -> None:
    # p0 and p1 carry the same information: any coalition with either gets 0.4, with both still 0.4; p2 adds 0.2.
    n = 3
    v = np.array([0.4 * bool(s & 0b011) + 0.2 * bool(s & 0b100) for s in range(1 << n)])
    phi = V.shapley_operator(n) @ v
    assert phi[0] == pytest.approx(phi[1])
    assert phi[0] == pytest.approx(0.2)  # half of the twins' 0.4 each, not 0.4 each (doubling)
    assert phi[2] == pytest.approx(0.2)
    assert phi.sum() == pytest.approx(v[-1] - v[0])


def test_null_player_gets_zero_under_every_concept() -> None:
    n = 4
    rng = np.random.default_rng(3)
    base = _random_v(n - 1, rng)
    v = np.array([base[s & 0b0111] for s in range(1 << n)])  # p3 never changes v
    for op in (V.shapley_operator(n), V.banzhaf_operator(n), V.leave_one_out_operator(n)):
        assert (op @ v)[3] == pytest.approx(0.0, abs=1e-12)
    assert (V.shapley_operator(n) @ v)[:3] == pytest.approx(V.shapley_operator(n - 1) @ base)


def test_three_player_game_by_hand() -> None:
    # v: ∅ 0, {a} 1, {b} 2, {c} 0, {a,b} 4, {a,c} 1, {b,c} 3, {a,b,c} 6  (bit 0 = a, 1 = b, 2 = c)
    v = np.array([0, 1, 2, 4, 0, 1, 3, 6], dtype=float)
    # Shapley of a: orders abc acb: v(a)=1 twice; bac: v(ab)-v(b)=2; bca: v(abc)-v(bc)=3; cab: v(ac)-v(c)=1;
    # cba: 3 → (1+1+2+3+1+3)/6 = 11/6
    phi = V.shapley_operator(3) @ v
    assert phi[0] == pytest.approx(11 / 6)
    assert phi.sum() == pytest.approx(6.0)
    # Banzhaf of a: mean of v(S∪a)−v(S) over S ⊆ {b,c}: (1−0) + (4−2) + (1−0) + (6−3) = 7 → 7/4
    beta = V.banzhaf_operator(3) @ v
    assert beta[0] == pytest.approx(7 / 4)
    # b: (2−0) + (4−1) + (3−0) + (6−1) = 13 → 13/4; c: (0) + (1−1) + (3−2) + (6−4) = 3 → 3/4
    assert beta[1:] == pytest.approx([13 / 4, 3 / 4])
    loo = V.leave_one_out_operator(3) @ v
    assert loo == pytest.approx([6 - 3, 6 - 1, 6 - 4])


def test_permutation_sampling_approaches_the_exact_value() -> None:
    n = 6
    v = _random_v(n, np.random.default_rng(5))
    exact = V.shapley_operator(n) @ v
    perms = V.sample_permutations(n, 3000, seed=1)
    approx = V.permutation_operator(n, perms) @ v
    spread = np.abs(np.diff(v)).max()
    assert np.abs(approx - exact).max() < 0.05 * spread
    assert approx.sum() == pytest.approx(v[-1] - v[0])  # each order telescopes: efficient exactly too
    few = V.permutation_operator(n, V.sample_permutations(n, 3, seed=1)) @ v
    assert np.abs(few - exact).max() > np.abs(approx - exact).max()


def test_permutation_sampling_needs_only_the_prefix_coalitions() -> None:
    n = 6
    perms = V.sample_permutations(n, 4, seed=2)
    needed = set(V.permutation_coalitions(perms))
    op = V.permutation_operator(n, perms)
    used = {s for s in range(1, 1 << n) if op[:, s].any()}
    assert used <= needed
    assert len(needed) <= 4 * n < (1 << n) - 1


def test_marginal_by_size_of_an_additive_game_is_flat() -> None:
    v = _additive([0.1, 0.2, 0.3, 0.4])
    m = V.marginal_by_size_operator(4) @ v
    assert m == pytest.approx([0.25] * 4)
    concave = np.sqrt(_additive([1.0, 1.0, 1.0, 1.0]))
    assert np.all(np.diff(V.marginal_by_size_operator(4) @ concave) < 0)


def test_missing_coalition_refused_only_when_needed() -> None:
    n = 3
    v = _additive([1.0, 2.0, 3.0])
    v[0b011] = math.nan
    with pytest.raises(Exception, match="not run"):
        V.apply(V.shapley_operator(n), v[None])
    assert V.apply(V.leave_one_out_operator(n)[[0]], v[None])[0, 0] == pytest.approx(1.0)  # v(abc) − v(bc)
    with pytest.raises(Exception, match="not run"):
        V.apply(V.leave_one_out_operator(n)[[2]], v[None])  # v(abc) − v(ab): ab was not run


def test_paired_cis_cancel_noise_shared_by_all_coalitions() -> None:
    # A case-resample shock common to every coalition (the same resamples) drops out of a difference.
    b = 400
    rng = np.random.default_rng(7)
    v = _additive([0.1, 0.2, 0.3])
    shock = rng.standard_normal(b)
    draws = (v[:, None] + shock[None, :])[None].copy()
    draws[:, 0] = 0.0
    sample = V.GameSample(players=("a", "b", "c"), points=v[None], draws=draws)
    single = V.coalition_values(sample)
    gain = V.gains(sample)
    assert (single["hi"] - single["lo"]).min() > 2.0
    both = gain[gain["coalition"] != "∅"]
    assert (both["hi"] - both["lo"]).max() < 1e-9


def test_best_and_smallest_near_best_coalition() -> None:
    # c alone is as good as the full chain up to noise; a and b add nothing.
    n = 3
    v = np.array([0.5 * bool(s & 0b100) + 0.01 * bool(s & 0b001) for s in range(1 << n)])
    sample = _game(n, v, seeds=5, n_boot=300, noise=0.05, seed=4)
    out = V.best_and_smallest(sample)
    assert out["smallest_near_best"] == "p2"
    assert "p0" not in out["near_best"]
    assert out["shortfall_lo"] <= 0 <= out["shortfall_hi"] or out["shortfall"] == 0


def test_flags_every_partner_gains_and_diminishing_returns() -> None:
    concave = np.sqrt(_additive([1.0, 1.0, 1.0]))
    flat = _game(3, concave, seeds=3, n_boot=200, noise=0.001)
    f = V.flags(flat)
    assert f["every_partner_gains"] is True
    assert f["diminishing_returns"] is True
    assert f["below_best_silo"].empty
    # a pair that falls below its best silo (FLamby)
    v = concave.copy()
    v[0b011] = 0.5
    f2 = V.flags(_game(3, v, seeds=3, n_boot=200, noise=0.001))
    row = f2["below_best_silo"]
    assert list(row["coalition"]) == ["p0+p1"]
    assert row["hi"].iloc[0] < 0


def test_waterfall_ends_at_the_full_chain_and_sums_to_it() -> None:
    v = _additive([0.3, 0.1, 0.2])
    w = V.waterfall(_game(3, v, seeds=2, n_boot=20))
    assert w["coalition"].iloc[0] == "p0"
    assert w["coalition"].iloc[-1] == "p0+p1+p2"
    assert list(w["step"]) == ["best silo: p0", "+ p2", "+ p1"]
    assert w["value"].sum() == pytest.approx(v[-1])


def test_value_outcomes_are_those_measured_on_the_common_test_set() -> None:
    from fedsim.errors import FedsimError
    from fedsim.evaluation.estimator import MetricKey
    from fedsim.value import outcome_of

    ed = outcome_of("ed_h6")
    assert ed.empty == 0.0 and ed.matches(MetricKey("ed", "all", k=0.01, h=6.0), 0.01)
    assert not ed.matches(MetricKey("ed", "all", k=0.01, h=0.0), 0.01)
    assert not ed.matches(MetricKey("ed", "all", k=0.02, h=6.0), 0.01)
    eur = outcome_of("prevented_eur_d1_r0.7")
    assert eur.matches(MetricKey("prevented_eur", "x", k=0.01, delta_h=1.0, rho=0.7), 0.01)
    assert outcome_of("roc_auc").empty == 0.5
    for refused in ("ap", "lift", "recall", "precision", "ed_h"):
        with pytest.raises(FedsimError, match="common test set"):
            outcome_of(refused)


def test_benjamini_hochberg_by_hand() -> None:
    # m = 4: sorted p 0.01, 0.02, 0.03, 0.5 → 0.04, 0.04, 0.04, 0.5 (step-up keeps them monotone)
    q = V.benjamini_hochberg(np.array([0.03, 0.5, 0.01, np.nan, 0.02]))
    np.testing.assert_allclose(q[[0, 1, 2, 4]], [0.04, 0.5, 0.04, 0.04])
    assert np.isnan(q[3])
    assert V.two_sided_p(np.array([1.0, 0.5, 0.2]), 100) == pytest.approx([0.01, 1.0, 0.4])


def test_gains_carry_bh_adjusted_p_values() -> None:
    v = _additive([0.3, 0.0, 0.2])
    g = V.gains(_game(3, v, seeds=3, n_boot=200, noise=0.01, seed=2))
    assert (g["q_bh"] >= g["p_two_sided"] - 1e-12).all()
    null = g[g["added"] == "p1"]
    real = g[g["added"] != "p1"]
    assert (real["q_bh"] < 0.05).all() and (null["q_bh"] > 0.05).all()
