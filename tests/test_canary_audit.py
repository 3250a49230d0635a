"""One-run canary audit (Steinke, Nasr & Jagielski 2023): the bound against hand-computed values, the bound
never above the claimed ε on DP runs, and clearly above 0 on a non-private model that memorises."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from fedsim.audit import canary_audit, canary_params, make_canaries, with_canaries
from fedsim.evaluation.canary_audit import (
    canary_guesses,
    min_nonmembers,
    one_run_epsilon_lower_bound,
    one_run_p_value,
)
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
# The bound (Thm 3.1) against values computed by hand
# --------------------------------------------------------------------------------------------
def test_p_value_at_epsilon_zero_is_a_fair_coin_tail_plus_the_delta_term() -> None:
    # r = 2 guesses, both right, ε = 0: f(2) = P[Bin(2, 1/2) >= 2] = 1/4
    assert one_run_p_value(m=10, guesses=2, correct=2, epsilon=0.0, delta=0.0) == pytest.approx(0.25)
    # δ term: max(P[W = 1] / 1, P[0 <= W <= 1] / 2) = max(0.5, 0.375) = 0.5, times 2·m·δ = 0.2
    assert one_run_p_value(m=10, guesses=2, correct=2, epsilon=0.0, delta=0.01) == pytest.approx(0.25 + 0.2 * 0.5)
    # ε = ln 3: q = 3/4; P[Bin(3, 3/4) >= 2] = 3·(9/16)(1/4) + 27/64 = 54/64
    assert one_run_p_value(m=5, guesses=3, correct=2, epsilon=math.log(3), delta=0.0) == pytest.approx(54 / 64)


@pytest.mark.parametrize("k", [20, 100])
def test_all_guesses_right_gives_the_largest_bound_k_guesses_can_show(k: int) -> None:
    # δ = 0: q^k = β ⇒ q = 0.05^(1/k), ε = ln(q / (1 − q)); k = 20 → 1.82, k = 100 → 3.49
    q = 0.05 ** (1 / k)

    got = one_run_epsilon_lower_bound(m=1000, guesses=k, correct=k, delta=0.0, beta=0.05)

    assert got == pytest.approx(math.log(q / (1 - q)), abs=1e-4)
    with_delta = one_run_epsilon_lower_bound(m=1000, guesses=k, correct=k, delta=1e-5, beta=0.05)
    assert 0 < with_delta < got  # δ > 0 can only weaken what the same guesses show


def test_half_the_guesses_right_shows_nothing() -> None:
    assert one_run_epsilon_lower_bound(m=1000, guesses=100, correct=50, delta=0.0) == 0.0
    assert one_run_epsilon_lower_bound(m=1000, guesses=100, correct=58, delta=1e-5) == 0.0  # p(ε=0) ≈ 0.07 > β


def test_more_correct_guesses_never_lower_the_bound() -> None:
    bounds = [one_run_epsilon_lower_bound(m=500, guesses=100, correct=v, delta=1e-5) for v in range(50, 101, 5)]

    assert all(a <= b for a, b in zip(bounds, bounds[1:], strict=False)) and bounds[-1] > 3


def test_min_nonmembers_is_where_zero_false_positives_certify_the_fpr() -> None:
    # n ≥ ln(0.025) / ln(1 − t): 367.04 → 368 at 1%, 3687.3 → 3688 at 0.1%
    assert min_nonmembers(0.01) == 368 and min_nonmembers(0.001) == 3688


def test_guesses_take_the_top_and_bottom_scores() -> None:
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    included = np.array([True, False, True, False, False, True])

    assert canary_guesses(scores, included, k_plus=2, k_minus=2) == (4, 1 + 1)  # top: 5 in, 4 out; bottom: 1 out, 0 in


def test_canaries_enter_training_as_their_own_entities() -> None:
    X, y, groups = np.zeros((6, 4), np.float32), np.zeros(6, np.float32), np.array(["a", "a", "b", "c", "c", "c"])
    can = make_canaries(40, 4, seed=0, rows=3, held_out=5)

    Xt, yt, gt = with_canaries(X, y, groups, can)

    n_in = int(can.included.sum())
    assert 5 < n_in < 35 and can.X.shape == (45, 4)
    assert Xt.shape == (6 + 3 * n_in, 4) and np.unique(gt).size == 3 + n_in
    assert set(yt[6:]) <= {0.0, 1.0} and 0 < yt[6:].mean() < 1  # random labels, both present


# --------------------------------------------------------------------------------------------
# The audit through the real training path
# --------------------------------------------------------------------------------------------
def _people(n: int = 400, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three rows per person, 5% positives, standardised features."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n), 3)
    X = rng.normal(size=(3 * n, d)).astype(np.float32)
    y = (rng.random(3 * n) < 0.05).astype(np.float32)
    return X, y, groups


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dp_runs_never_show_more_than_the_claimed_epsilon(seed: int) -> None:
    X, y, groups = _people(seed=seed)
    cfg = TrainConfig(epochs=30, batch_size=128, learning_rate=0.01, seed=seed)

    table = canary_audit(
        X,
        y,
        groups,
        config=cfg,
        epsilons=(1.0, 4.0),
        privacy=PrivacySettings(target_epsilon=1.0, accountant="rdp", max_rows_per_entity=8),
        m=300,
        guesses=30,
        rows=8,
        seed=seed,
    )

    assert list(table["epsilon"]) == [1.0, 4.0] and (table["epsilon_spent"] <= table["epsilon"]).all()
    assert (table["epsilon_lower_bound"] <= table["epsilon_spent"]).all(), table[["epsilon", "correct"]]
    assert (table["guesses"] == 60).all() and (table["m"] == 300).all()


# The configuration that memorises (a small synthetic version of `fedsim audit`'s default): an mlp trained
# 100 epochs, 300 canaries, each a ±3 random-sign vector with a random label and 8 rows.
MEMORISING_EPOCHS, MEMORISING_M = 100, 300


def test_a_memorising_non_private_model_shows_a_clearly_positive_epsilon() -> None:
    X, y, groups = _people(seed=5)
    cfg = TrainConfig(epochs=MEMORISING_EPOCHS, batch_size=128, learning_rate=0.01, seed=0)

    table = canary_audit(X, y, groups, config=cfg, epsilons=(math.inf,), m=MEMORISING_M, guesses=30, rows=8, seed=0)

    row = table.iloc[0]
    assert math.isinf(row["epsilon_spent"]) and row["correct"] > 0.75 * row["guesses"]
    assert row["epsilon_lower_bound"] > 1.0, row
    assert row["auc"] > 0.7


def test_audit_command_prints_and_saves_the_canary_table(tmp_path: Path) -> None:
    from fedsim.audit import audit_command
    from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

    exp = tmp_path / "audit.yaml"
    # the known-answer world: 10% of people are cases, so every pool of the membership attack has positives
    exp.write_text(
        yaml.safe_dump(
            {
                "name": "audit_test",
                "world": KNOWN_ANSWER_WORLD,
                "split": KNOWN_ANSWER_SPLIT,
                "regimes": ["siloed"],
                "coalitions": "all",
                "models": ["logistic"],
                "seeds": [0],
                "training": {"epochs": 2, "batch_size": 256, "learning_rate": 0.01},
            }
        )
    )

    table = audit_command(
        exp,
        epsilons=(math.inf,),
        workdir=tmp_path / "work",
        out=tmp_path / "out",
        canaries=200,
        canary_guesses=20,
        canary_epochs=40,
        show=True,
    )

    canary = pd.read_csv(tmp_path / "out" / "canary_audit.csv")
    assert canary.loc[0, "m"] == 200 and canary.loc[0, "guesses"] == 40
    assert canary.loc[0, "epsilon_lower_bound"] == pytest.approx(table.attrs["canary"]["epsilon_lower_bound"].iloc[0])
    flat = canary_params(table.attrs["canary"])
    assert flat["canary_eps_lb_einf"] == pytest.approx(canary.loc[0, "epsilon_lower_bound"])
    assert flat["canary_correct_einf"] == canary.loc[0, "correct"]
    membership = pd.read_csv(tmp_path / "out" / "membership_audit.csv")
    at_01 = membership[membership["fpr_target"] == 0.001].iloc[0]
    assert not at_01["measurable"] and "not measurable with n =" in at_01["note"]  # ~1,000 entities: too few


def test_audit_command_refuses_more_guesses_than_half_the_canaries_before_any_work(tmp_path: Path) -> None:
    from fedsim.audit import audit_command
    from fedsim.errors import FedsimError

    with pytest.raises(FedsimError, match="guesses per side <= canaries / 2"):
        audit_command(tmp_path / "never_read.yaml", workdir=tmp_path, canaries=100, canary_guesses=51, show=False)
    assert not any(tmp_path.iterdir())  # no world built, nothing written
