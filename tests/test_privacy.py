"""DP accounting, person-level DP-SGD, settings validation and plain-language ε (fedsim.privacy)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from fedsim.experiment import ExperimentError, expand, parse_experiment
from fedsim.models import make_model
from fedsim.privacy import (
    AccountantState,
    PrivacyError,
    PrivacySettings,
    cap_rows_per_entity,
    crosscheck_epsilon,
    default_delta,
    epsilon_spent,
    explain_epsilon,
    make_private_fit,
    noise_for_target,
    odds_factor,
    person_blocks,
    privacy_for,
)
from fedsim.training import TrainConfig

PARTNERS = ["bank_1", "bank_2", "telco", "marketplace"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # tiny models on a shared 2-core machine: one thread is faster and steadier
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning, module="opacus")
    yield
    torch.set_num_threads(before)


def _gaussian_composition_epsilon(*, sigma: float, steps: int, delta: float) -> float:
    """Exact ε of `steps` Gaussian mechanisms (sensitivity 1, noise σ), no subsampling.

    The composition is μ-GDP with μ = √steps / σ (Dong, Roth & Su 2019, Cor. 2), and a μ-GDP mechanism is
    (ε, δ(ε))-DP with δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2) (Balle & Wang 2018, Thm 8); solved for ε.
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    mu = math.sqrt(steps) / sigma
    gap = lambda e: norm.cdf(-e / mu + mu / 2) - math.exp(e) * norm.cdf(-e / mu - mu / 2) - delta  # noqa: E731
    return float(brentq(gap, 0.0, 100.0))


def _rdp_gaussian_epsilon(*, sigma: float, steps: int, delta: float) -> float:
    """RDP of the Gaussian mechanism, T·α/(2σ²) (Mironov 2017, Prop. 7), converted to (ε, δ) with Balle et
    al. 2020, Thm 21: ε = min_α RDP(α) + ln((α−1)/α) − (ln δ + ln α)/(α−1), over Opacus' order grid."""
    alphas = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)), dtype=float)
    rdp = steps * alphas / (2 * sigma**2)
    eps = rdp + np.log((alphas - 1) / alphas) - (math.log(delta) + np.log(alphas)) / (alphas - 1)
    return float(eps.min())


def _data(
    n_entities: int = 300, rows_per: int = 3, d: int = 8, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_entities), rows_per)
    X = rng.normal(size=(groups.size, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=groups.size) > 1.2).astype(np.float32)
    return X, y, groups


CFG = TrainConfig(epochs=2, batch_size=32, learning_rate=0.01, seed=0)


# --------------------------------------------------------------------------------------------
# Known values
# --------------------------------------------------------------------------------------------
def test_prv_epsilon_matches_the_exact_gaussian_composition() -> None:
    exact = _gaussian_composition_epsilon(sigma=2.0, steps=10, delta=1e-5)  # 7.5113

    prv = epsilon_spent([(2.0, 1.0, 10)], delta=1e-5, accountant="prv")

    # PRV reports an upper bound within its 0.01 ε discretisation error
    assert exact - 1e-9 <= prv <= exact + 0.02, (prv, exact)


def test_rdp_epsilon_matches_the_closed_form() -> None:
    expected = _rdp_gaussian_epsilon(sigma=2.0, steps=10, delta=1e-5)  # 8.0794

    assert epsilon_spent([(2.0, 1.0, 10)], delta=1e-5, accountant="rdp") == pytest.approx(expected, rel=1e-9)


def test_pinned_epsilon_for_the_opacus_readme_schedule() -> None:
    # 10k rows, batch 256 → q = 0.0256, σ = 1.06, 80 steps, δ = 1e-5. Pinned values; the RDP one is
    # reproduced by Google's dp-accounting to 6 digits in the cross-check test below.
    history = [(1.06, 256 / 10_000, 80)]

    assert epsilon_spent(history, delta=1e-5, accountant="rdp") == pytest.approx(1.82691, abs=1e-4)
    assert epsilon_spent(history, delta=1e-5, accountant="prv") == pytest.approx(1.467, abs=0.02)


@pytest.mark.parametrize(
    ("sigma", "q", "steps", "delta", "accountant"),
    [
        (1.06, 0.0256, 80, 1e-5, "rdp"),
        (0.8, 0.01, 1000, 1e-6, "rdp"),
        (1.06, 0.0256, 80, 1e-5, "prv"),
        (2.0, 0.1, 200, 1e-5, "prv"),
    ],
)
def test_epsilon_agrees_with_dp_accounting_within_five_percent(
    sigma: float, q: float, steps: int, delta: float, accountant: str
) -> None:
    check = crosscheck_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant=accountant)

    assert check.relative_difference <= 0.05, check


def test_default_delta_is_a_tenth_of_one_over_n() -> None:
    assert default_delta(2_000) == pytest.approx(5e-5)
    with pytest.raises(PrivacyError, match="n_persons"):
        default_delta(0)


# --------------------------------------------------------------------------------------------
# Property: target-ε mode never overshoots
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "q", "steps", "accountant"),
    [
        (0.5, 0.05, 100, "rdp"),
        (1.0, 0.01, 2000, "rdp"),
        (4.0, 0.1, 50, "rdp"),
        (8.0, 0.05, 200, "rdp"),
        (1.0, 0.05, 100, "prv"),
        (4.0, 0.2, 50, "prv"),
    ],
)
def test_noise_for_target_never_overshoots(target: float, q: float, steps: int, accountant: str) -> None:
    sigma = noise_for_target(target_epsilon=target, delta=1e-5, sample_rate=q, steps=steps, accountant=accountant)

    spent = epsilon_spent([(sigma, q, steps)], delta=1e-5, accountant=accountant)
    assert spent <= target
    assert spent >= target - 0.05  # and it is not needlessly noisy (Opacus' search tolerance is 0.01)


@pytest.mark.parametrize(("target", "rounds"), [(1.0, 1), (2.0, 3)])
def test_training_in_target_mode_ends_at_or_under_the_target(target: float, rounds: int) -> None:
    X, y, groups = _data()
    settings = PrivacySettings(target_epsilon=target, accountant="rdp")
    state, spent = None, []

    for r in range(rounds):
        out = make_private_fit(
            make_model("logistic", n_features=X.shape[1], seed=r),
            X,
            y,
            privacy=settings,
            config=CFG,
            seed=0,
            groups=groups,
            state=state,
            total_rounds=rounds,
        )
        state = out.state
        spent.append(out.ledger.epsilon)

    assert spent[-1] <= target
    assert spent == sorted(spent)  # ε accumulates across rounds: the history is carried
    assert state is not None and state.rounds_done == rounds
    with pytest.raises(PrivacyError, match="planned for"):
        make_private_fit(
            make_model("logistic", n_features=X.shape[1], seed=9),
            X,
            y,
            privacy=settings,
            config=CFG,
            seed=0,
            groups=groups,
            state=state,
            total_rounds=rounds,
        )


# --------------------------------------------------------------------------------------------
# Person-level examples
# --------------------------------------------------------------------------------------------
def test_cap_keeps_positives_first_then_at_most_cap_rows() -> None:
    groups = np.array([7, 7, 7, 7, 3, 3])
    y = np.array([0, 1, 0, 1, 0, 0])

    keep = cap_rows_per_entity(groups, y, cap=2, seed=0)

    assert keep.tolist() == [False, True, False, True, True, True]


@pytest.mark.parametrize("cap", [1, 2, 5])
def test_cap_property_every_entity_keeps_min_rows_cap(cap: int) -> None:
    rng = np.random.default_rng(cap)
    groups = rng.integers(0, 40, size=400)
    y = (rng.random(400) < 0.2).astype(int)

    keep = cap_rows_per_entity(groups, y, cap=cap, seed=1)

    for g in np.unique(groups):
        rows = groups == g
        assert keep[rows].sum() == min(rows.sum(), cap)
        assert y[rows & keep].sum() == min(y[rows].sum(), cap)  # positives are never dropped for negatives


def test_person_blocks_pad_with_zero_weight_and_keep_weights_mean_one() -> None:
    X = np.arange(10, dtype=np.float32).reshape(5, 2)
    y = np.array([0, 1, 0, 0, 1], dtype=np.float32)
    groups = np.array(["a", "b", "a", "a", "b"])

    blocks = person_blocks(X, y, groups, cap=2, seed=0, sample_weight=np.array([1, 2, 1, 1, 2]))

    assert blocks.X.shape == (2, 2, 2) and blocks.rows_kept == 4 and blocks.rows_dropped == 1
    assert blocks.w.sum() == pytest.approx(4.0)  # mean 1 over the 4 kept rows, padding none here
    assert sorted(blocks.y.sum(axis=1).tolist()) == [0.0, 2.0]
    # composite keys (partner, entity id) group the same way as one id column
    keys = np.array([["p", 1], ["q", 1], ["p", 1], ["p", 1], ["q", 1]], dtype=object)
    composite = person_blocks(X, y, keys, cap=2, seed=0)
    assert composite.X.shape == blocks.X.shape and composite.rows_kept == blocks.rows_kept


def test_ledger_states_entities_as_unit_and_delta_one_tenth_of_one_over_n() -> None:
    X, y, groups = _data(n_entities=250)
    model = make_model("mlp", n_features=X.shape[1], seed=0)

    out = make_private_fit(
        model, X, y, privacy=PrivacySettings(noise_multiplier=1.0, accountant="rdp"), config=CFG, seed=0, groups=groups
    )

    assert out.ledger.n_examples == 250
    assert out.ledger.delta == pytest.approx(1 / 2500)
    assert out.ledger.sample_rate == pytest.approx(1 / math.ceil(250 / CFG.batch_size))
    assert out.ledger.steps == out.report.steps == CFG.epochs * math.ceil(250 / CFG.batch_size)
    assert "entity" in out.ledger.unit
    expected = epsilon_spent(out.state.history, delta=1 / 2500, accountant="rdp")
    assert out.ledger.epsilon == pytest.approx(expected)
    # unwrapped again: plain keys, no Opacus prefix, usable for the next round's set_weights
    assert list(model.state_dict()) == list(make_model("mlp", n_features=8, seed=0).state_dict())
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())


def test_fresh_noise_every_round_and_a_seed_reproduces_a_run() -> None:
    X, y, groups = _data()
    settings = PrivacySettings(noise_multiplier=1.0, accountant="rdp")

    def weights(seed: int, state: AccountantState | None = None) -> np.ndarray:
        model = make_model("logistic", n_features=X.shape[1], seed=0)
        make_private_fit(model, X, y, privacy=settings, config=CFG, seed=seed, groups=groups, state=state)
        layer = model.net
        assert isinstance(layer, torch.nn.Linear)  # the logistic model is one linear layer
        return layer.weight.detach().numpy().copy()

    first = AccountantState(
        accountant="rdp", history=((1.0, 0.1, 20),), noise_multiplier=1.0, sample_rate=0.1, delta=1e-4, rounds_done=1
    )
    record = first.to_dict()
    assert AccountantState.from_dict(record) == first
    assert all(
        isinstance(v, str | int | float) or (isinstance(v, list) and all(isinstance(x, int | float) for x in v))
        for v in record.values()
    )  # fits a Flower ConfigRecord: scalars, flat lists
    assert np.array_equal(weights(3), weights(3))
    assert not np.array_equal(weights(3), weights(3, AccountantState.from_dict(first.to_dict())))


# --------------------------------------------------------------------------------------------
# Bad input fails before any training
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": -1.0}, "target_epsilon"),
        ({"target_epsilon": 1.0, "delta": 1.0}, "delta"),
        ({"target_epsilon": 1.0, "delta": 2.5}, "delta"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.1}, "not both"),
        ({}, "both None"),
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"target_epsilon": 1.0, "accountant": "gdp"}, "accountant"),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PrivacySettings(**kwargs)


class _WithBatchNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin, self.bn = nn.Linear(8, 1), nn.BatchNorm1d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(x)).squeeze(-1)


def test_dp_on_a_model_opacus_cannot_wrap_fails_before_training() -> None:
    X, y, groups = _data()
    model = _WithBatchNorm()
    before = [p.detach().clone() for p in model.parameters()]

    with pytest.raises(PrivacyError, match="BatchNorm"):
        make_private_fit(model, X, y, privacy=PrivacySettings(target_epsilon=1.0), config=CFG, seed=0, groups=groups)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_gbt_with_dp_is_refused() -> None:
    class Ctx:
        model, epsilon, options = "gbt", 1.0, dict[str, object]()

    with pytest.raises(PrivacyError, match="gbt"):
        privacy_for(Ctx())


def _experiment(privacy: dict) -> dict:
    return {
        "name": "t",
        "world": {"preset": "small", "seed": 1},
        "split": {"train_days": 10, "gap_days": 1, "test_days": 10},
        "regimes": ["pooled"],
        "models": ["logistic", "gbt"],
        "seeds": [0],
        "privacy": privacy,
    }


@pytest.mark.parametrize(
    ("privacy", "words"),
    [
        ({"epsilon": [1.0], "noise_multiplier": [1.0]}, ["privacy", "not both"]),
        ({"epsilon": [0.0]}, ["privacy.epsilon[0]", "> 0"]),
        ({"epsilon": [1.0], "delta": 1.0}, ["privacy.delta", "< 1"]),
        ({"epsilon": [1.0], "max_grad_norm": -1}, ["privacy.max_grad_norm"]),
        ({"epsilon": [1.0], "max_rows_per_entity": 0}, ["privacy.max_rows_per_entity"]),
    ],
)
def test_bad_experiment_privacy_names_the_field(privacy: dict, words: list[str]) -> None:
    with pytest.raises(ExperimentError) as err:
        parse_experiment(_experiment(privacy))
    for word in words:
        assert word in str(err.value)


# --------------------------------------------------------------------------------------------
# The sweep in experiment files
# --------------------------------------------------------------------------------------------
def test_epsilon_sweep_expands_to_dp_cells_and_keeps_non_private_hashes() -> None:
    spec = parse_experiment(_experiment({"epsilon": [0.5, 1, 2, 4, 8, "inf"], "delta": 1e-6}))
    plain = parse_experiment(_experiment({"epsilon": ["inf"]}))

    cells = expand(spec, PARTNERS)

    dp = [c for c in cells if not math.isinf(c.epsilon)]
    assert sorted(c.epsilon for c in dp) == [0.5, 1, 2, 4, 8]
    assert all(
        c.model == "logistic"
        and c.privacy is not None
        and c.privacy.target_epsilon == c.epsilon
        and c.privacy.delta == 1e-6
        for c in dp
    )
    assert len({c.config_hash for c in cells}) == len(cells)
    # a non-private cell hashes as before privacy settings existed (its privacy is None, left out)
    inf_hashes = {c.config_hash for c in cells if math.isinf(c.epsilon)}
    assert inf_hashes == {c.config_hash for c in expand(plain, PARTNERS)}
    assert all("privacy" not in c.result_fields() for c in cells if c.privacy is None)


def test_noise_mode_sweep_names_cells_by_sigma_and_drops_gbt() -> None:
    cells = expand(parse_experiment(_experiment({"noise_multiplier": [0.8, 1.5]})), PARTNERS)

    assert all(c.privacy is not None for c in cells)
    assert sorted(float(c.privacy.noise_multiplier or 0) for c in cells if c.privacy) == [0.8, 1.5]
    assert {c.run_name.split("|")[-1] for c in cells} == {"sigma=0.8", "sigma=1.5"}
    assert all(c.model != "gbt" for c in cells)


# --------------------------------------------------------------------------------------------
# Plain words; client-level DP is not offered
# --------------------------------------------------------------------------------------------
def test_odds_wording_en_and_nl() -> None:
    assert odds_factor(1.0) == pytest.approx(math.e)
    assert "2.7-fold" in explain_epsilon(1.0)
    assert "2,7 keer" in explain_epsilon(1.0, language="nl")
    assert "55-fold" in explain_epsilon(4.0)
    assert "3,000-fold" in explain_epsilon(8.0) and "3.000 keer" in explain_epsilon(8.0, language="nl")
    assert "0,5" in explain_epsilon(0.5, language="nl") and "1.6-fold" in explain_epsilon(0.5)
    assert "no formal privacy guarantee" in explain_epsilon(math.inf)
    assert "δ = 1e-05" in explain_epsilon(1.0, delta=1e-5)


def test_odds_wording_names_the_per_person_unit() -> None:
    # the pooled run: ε = 2.99 per person (all models composed) is ×20 in odds, not ×2.7
    text = explain_epsilon(2.99, per_person=True)
    assert "ε = 2.99 (per person, all models composed)" in text and "20-fold" in text and "models together" in text
    assert "(per persoon, alle modellen samen)" in explain_epsilon(2.99, language="nl", per_person=True)
    assert "per person" not in explain_epsilon(2.99)


def test_odds_of_a_huge_per_person_epsilon_are_worded_and_never_overflow() -> None:
    # fedsim runs crashed (OverflowError in math.exp) on the default world's pooled chain at ε = 4 per model,
    # whose worst person composed to ε = 1809.
    from fedsim.summary import _fmt_person

    assert odds_factor(1809.1) == math.inf and odds_factor(700.0) == pytest.approx(math.exp(700.0))
    assert _fmt_person(1809.1) == "1.81e+03 (odds ×>1 billion)"
    assert _fmt_person(9.88) == "9.88 (odds ×19,536)" and _fmt_person(math.inf) == "∞ (no DP)"
    text = explain_epsilon(1809.1, per_person=True)
    assert "protects nobody in practice" in text and "more than a billion-fold" in text and "per person" in text
    assert "meer dan een miljard keer" in explain_epsilon(25.0, language="nl")
    assert "more than a billion" not in explain_epsilon(20.0)  # e^20 = 485 million: still a number
    import pandas as pd

    from fedsim.summary import _curve_cell

    dp_row, plain_row = pd.Series({"epsilon_person": 1809.1}), pd.Series({"epsilon_person": math.inf})
    assert _curve_cell("odds_factor", math.inf, dp_row) == ">1e9 (no practical bound)"
    assert _curve_cell("odds_factor", math.inf, plain_row) == "inf"  # the non-private run
    assert _curve_cell("odds_factor", 54.6, dp_row) == "54.6"


def test_client_level_dp_is_not_in_the_schema() -> None:
    # A setting that is accepted and then always fails is not allowed: client-level DP is an unknown key.
    with pytest.raises(ExperimentError, match=r"privacy\.client_level: unknown key; allowed keys here: epsilon"):
        parse_experiment(_experiment({"client_level": {"noise_multiplier": 1.0}}))
    with pytest.raises(ValueError, match="client_level"):
        PrivacySettings.model_validate({"target_epsilon": 1.0, "client_level": None})
