"""Empirical privacy audit: membership inference vs the DP bound, split-learning label leakage, the register,
and the privacy–utility table."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fedsim.audit import audit_params, capture_split_gradients, membership_audit
from fedsim.evaluation.label_leakage import label_leakage_report
from fedsim.evaluation.privacy_audit import (
    auc_interval,
    clopper_pearson,
    dp_tpr_bound,
    epsilon_lower_bound,
    leakage_register,
    membership_table,
    threshold_at_fpr,
)
from fedsim.evaluation.privacy_utility import privacy_utility_table
from fedsim.experiment import REGIMES
from fedsim.privacy import PrivacySettings
from fedsim.training import TrainConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning, module="opacus")
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Known values of the pure functions
# --------------------------------------------------------------------------------------------
def test_auc_interval_matches_hanley_mcneil() -> None:
    # A = 0.8, n1 = n2 = 50: Q1 = 0.8/1.2, Q2 = 1.28/1.8; SE² = (0.16 + 49(Q1 − 0.64) + 49(Q2 − 0.64)) / 2500
    se = math.sqrt((0.16 + 49 * (0.8 / 1.2 - 0.64) + 49 * (1.28 / 1.8 - 0.64)) / 2500)

    assert auc_interval(0.8, n_pos=50, n_neg=50) == pytest.approx((0.8 - 1.959964 * se, 0.8 + 1.959964 * se))


def test_clopper_pearson_at_the_edges_has_a_closed_form() -> None:
    # k = 0: hi = 1 − (α/2)^(1/n); k = n: lo = (α/2)^(1/n)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** (1 / 10), 1.0))
    lo, hi = clopper_pearson(30, 100)
    assert lo < 0.30 < hi


def test_dp_bound_is_e_to_the_epsilon_times_fpr_plus_delta() -> None:
    assert dp_tpr_bound(0.01, epsilon=1.0, delta=1e-5) == pytest.approx(math.e * 0.01 + 1e-5)
    assert dp_tpr_bound(0.5, epsilon=4.0, delta=0.0) == 1.0
    assert dp_tpr_bound(0.001, epsilon=math.inf, delta=0.0) == 1.0


def test_epsilon_lower_bound_for_a_perfect_attack_on_twenty() -> None:
    # 20/20 members caught, 0/20 non-members flagged: TPR_lo = 0.025^(1/20), FPR_hi = 1 − 0.025^(1/20)
    tpr_lo = 0.025 ** (1 / 20)
    expected = math.log((tpr_lo - 1e-5) / (1 - tpr_lo))  # ≈ 1.60

    got = epsilon_lower_bound(tp=20, n_members=20, fp=0, n_nonmembers=20, delta=1e-5)

    assert got == pytest.approx(expected)
    chance = epsilon_lower_bound(tp=2, n_members=100, fp=2, n_nonmembers=100, delta=1e-5)
    assert chance == 0.0  # an attack at chance level shows nothing


def test_threshold_at_fpr_lets_through_at_most_that_share() -> None:
    scores = np.arange(1, 101, dtype=float)

    t = threshold_at_fpr(scores, 0.05)

    assert t == 95.0 and (scores > t).mean() == 0.05


def test_membership_table_detects_separated_scores_and_not_identical_ones() -> None:
    rng = np.random.default_rng(0)
    separated = membership_table(rng.normal(3, 1, 2000), rng.normal(0, 1, 2000), epsilon=0.5, delta=1e-5)
    same = membership_table(rng.normal(0, 1, 2000), rng.normal(0, 1, 2000), epsilon=0.5, delta=1e-5)

    assert (~separated["under_bound"]).all() and (separated["epsilon_lower_bound"] > 0.5).all()
    assert same["under_bound"].all() and (same["epsilon_lower_bound"] < 0.5).all()


# --------------------------------------------------------------------------------------------
# The audit on trained models
# --------------------------------------------------------------------------------------------
def _memorisation_data(n_persons: int = 1000, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per person, labels independent of features: only memorising can lower a member's loss."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_persons, d)).astype(np.float32)
    y = (rng.random(n_persons) < 0.5).astype(np.float32)
    return X, y, np.arange(n_persons)


@pytest.fixture(scope="module")
def overfit_table() -> pd.DataFrame:
    X, y, groups = _memorisation_data()
    cfg = TrainConfig(epochs=150, batch_size=100, learning_rate=0.01, seed=0, class_weight=None)
    return membership_audit(X, y, groups, config=cfg, model="mlp", epsilons=(math.inf,), seed=0)


def test_attack_beats_chance_on_an_overfit_non_private_model(overfit_table: pd.DataFrame) -> None:
    at_1pct = overfit_table[overfit_table["fpr_target"] == 0.01].iloc[0]

    assert overfit_table["auc_lo"].iloc[0] > 0.6  # members told apart from non-members, with 95% confidence
    assert at_1pct["tpr"] > at_1pct["fpr"]  # more members than non-members flagged at the 1% threshold


def test_dp_models_stay_under_the_bound_at_epsilon_1_and_4() -> None:
    X, y, groups = _memorisation_data()
    cfg = TrainConfig(epochs=10, batch_size=100, learning_rate=0.01, seed=0, class_weight=None)

    table = membership_audit(
        X,
        y,
        groups,
        config=cfg,
        model="mlp",
        epsilons=(1.0, 4.0),
        privacy=PrivacySettings(target_epsilon=1.0, accountant="rdp"),
        seed=0,
    )

    assert set(table["epsilon"]) == {1.0, 4.0}
    assert (table["epsilon_spent"] <= table["epsilon"]).all()
    assert table["under_bound"].all(), table[["epsilon", "fpr_target", "tpr_lo", "bound_hi"]]
    assert (table["epsilon_lower_bound"] <= table["epsilon_spent"]).all()
    assert table["delta"].to_numpy() == pytest.approx(np.full(4, 1 / (10 * 400)))  # 400 member persons
    flat = audit_params(table)
    assert flat["audit_tpr_f0.01_e1"] == table.query("epsilon == 1 and fpr_target == 0.01")["tpr"].iloc[0]


# --------------------------------------------------------------------------------------------
# Split learning label leakage
# --------------------------------------------------------------------------------------------
def test_label_leakage_from_the_split_learning_protocols_own_gradients(tmp_path: Path) -> None:
    from fedsim.regimes.vertical import holder_data
    from tests.federation.vertical_worlds import context, known_answer

    # prepare: a bank (labels) and a telco (features only) on a known-answer world
    ctx = context(known_answer(entities=1500), ("bank_1", "telco"), batch_size=128)
    # execute: one round of the vertical protocol itself; the telco's received gradients, then the attacks
    grads, labels = capture_split_gradients(ctx, holder="bank_1", party="telco", work=tmp_path)
    leak = label_leakage_report(grads, labels)
    control = label_leakage_report(grads, np.random.default_rng(1).permutation(labels))  # unrelated labels
    # assert: one gradient row per matched training row of the epoch, of the embedding width; the label
    # leaks through the gradients the protocol sends, and not to an attack scored on shuffled labels
    y = holder_data(ctx, "bank_1").y_train
    assert grads.shape == (len(labels), ctx.federation.embedding_dim) and 0 < len(labels) <= len(y)
    assert 0 < labels.sum() <= y.sum()
    assert leak["auc_norm"] > 0.9 and leak["auc_direction"] > 0.9
    assert abs(control["auc_norm"] - 0.5) < 0.1 and abs(control["auc_direction"] - 0.5) < 0.1


def test_leakage_register_covers_every_sharing_regime() -> None:
    reg = leakage_register()

    sharing = set(REGIMES) - {"status_quo", "pooled_oracle"}
    assert sharing <= set(reg["regime"])
    assert reg["learns"].str.contains("intersection").any()
    assert not reg.isna().any().any()


# --------------------------------------------------------------------------------------------
# Privacy–utility table
# --------------------------------------------------------------------------------------------
def _runs() -> pd.DataFrame:
    rows = []
    for regime, coalition, base in (
        ("pooled", "bank_1+telco", 0.5),
        ("siloed", "bank_1", 0.3),
        ("siloed", "telco", 0.2),
    ):
        for eps in ("inf", "1"):
            for seed in ("0", "1"):
                value = base - (0.1 if eps == "1" else 0.0) + (0.02 if seed == "1" else 0.0)
                row = {
                    "params.regime": regime,
                    "params.coalition": coalition,
                    "params.model": "logistic",
                    "params.seed": seed,
                    "params.epsilon": eps,
                    "metrics.ed_h0_k0.005": value,
                    "metrics.ed_h0_k0.005_lo": value - 0.05,
                    "metrics.ed_h0_k0.005_hi": value + 0.05,
                    "metrics.prevented_eur_d0_r1.0_k0.005": 1000 * value,
                    "metrics.prevented_eur_d0_r1.0_k0.005_lo": 900 * value,
                    "metrics.prevented_eur_d0_r1.0_k0.005_hi": 1100 * value,
                }
                if eps == "1":
                    row.update({"metrics.dp_epsilon.bank_1": 0.99, "metrics.dp_delta.bank_1": 1e-5})
                    if regime == "pooled":
                        row.update({"metrics.dp_epsilon.telco": 0.98, "metrics.dp_delta.telco": 2e-5})
                rows.append(row)
    return pd.DataFrame(rows)


def test_privacy_utility_table_averages_seeds_and_keeps_the_best_silo() -> None:
    table = privacy_utility_table(_runs(), capacity=0.005)

    assert set(zip(table["regime"], table["coalition"], strict=True)) == {
        ("pooled", "bank_1+telco"),
        ("siloed", "bank_1"),
    }
    pooled_dp = table[(table["regime"] == "pooled") & (table["epsilon"] == 1.0)].iloc[0]
    assert pooled_dp["ed_h0"] == pytest.approx(0.41)  # mean of 0.40 and 0.42
    # the CI covers cases × 2 seeds: wider than a typical run's case-only CI [0.36, 0.46] (seeds.interval_from_runs)
    assert pooled_dp["ed_h0_lo"] < 0.36 and pooled_dp["ed_h0_hi"] > 0.46
    assert pooled_dp["covers"] == "cases × 2 training seeds"
    assert pooled_dp["prevented_eur_d0_r1.0"] == pytest.approx(410.0)
    assert pooled_dp["epsilon_spent"] == pytest.approx(0.99)  # the larger of the run's two models
    assert pooled_dp["epsilon_total"] == pytest.approx(1.97)  # their sum
    assert pooled_dp["delta"] == pytest.approx(2e-5) and pooled_dp["n_seeds"] == 2
    # these runs predate per-person accounting (no dp_epsilon_person_max): the odds fall back to basic composition
    assert pooled_dp["odds_factor"] == pytest.approx(math.exp(1.97))
    no_dp = table[(table["regime"] == "pooled") & np.isinf(table["epsilon"])].iloc[0]
    assert math.isinf(no_dp["epsilon_spent"]) and no_dp["ed_h0"] == pytest.approx(0.51)
