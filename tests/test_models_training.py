"""Tests for fedsim.models and fedsim.training: known values, determinism, Opacus, FedProx, scaling, GBT."""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fedsim.columns import ALL_MISSING, CONSTANT, informative_columns, uninformative_reasons
from fedsim.models import GBTBaseline, Standardizer, make_model, make_split_net
from fedsim.training import (
    TrainConfig,
    Validation,
    balanced_pos_weight,
    fit,
    fit_early_stopping,
    get_weights,
    loss_flattened,
    make_loader,
    make_optimizer,
    predict_scores,
    set_weights,
    time_validation_split,
    validation_loss,
    weight_names,
)

torch.set_num_threads(1)


def two_gaussians(n: int, *, shift: float, dim: int = 2, prevalence: float = 0.3, seed: int):
    """Negatives ~ N(0, I), positives ~ N(μ, I) with ‖μ‖ = shift along the first axis."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.float32)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    X[:, 0] += shift * y
    return X, y


def moved(model, start) -> float:
    return math.sqrt(sum(float(((w - s) ** 2).sum()) for w, s in zip(get_weights(model), start, strict=True)))


def make_private(model, config, loader, *, noise_multiplier=1.0, max_grad_norm=1.0, seed=0):
    from opacus import PrivacyEngine

    engine = PrivacyEngine(accountant="rdp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = engine.make_private(
            module=model,
            optimizer=make_optimizer(model, config),
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            noise_generator=torch.Generator().manual_seed(seed),
        )
    return engine, *wrapped


# --------------------------------------------------------------------------------------------
# Known values
# --------------------------------------------------------------------------------------------
def test_logistic_reaches_the_bayes_auc_of_two_gaussians_and_matches_sklearn():
    # Prepare: for N(0, I) vs N(μ, I) the best score is linear and AUC = Φ(‖μ‖/√2).
    shift = 1.0
    X, y = two_gaussians(4000, shift=shift, seed=1)
    X_test, y_test = two_gaussians(20_000, shift=shift, seed=2)
    expected = NormalDist().cdf(shift / math.sqrt(2))  # 0.7602
    model = make_model("logistic", n_features=2, seed=0)
    # Execute
    fit(model, X, y, config=TrainConfig(epochs=8, batch_size=256, learning_rate=0.05, seed=0))
    auc = roc_auc_score(y_test, predict_scores(model, X_test))
    reference = LogisticRegression().fit(X, y).decision_function(X_test)
    # Assert
    assert auc == pytest.approx(expected, abs=0.015)
    assert auc == pytest.approx(roc_auc_score(y_test, reference), abs=0.01)


def test_one_sgd_step_equals_the_hand_computed_bce_plus_proximal_gradient():
    # Prepare: one row, logit z = w·x + b, dBCE/dz = σ(z) − y; FedProx adds μ(w − w_ref).
    x, label = np.array([[1.0, -2.0]], dtype=np.float32), np.array([1.0], dtype=np.float32)
    model = make_model("logistic", n_features=2, seed=3)
    w0, b0 = (a.astype(np.float64) for a in get_weights(model))
    w_ref, b_ref = np.array([[0.5, 0.5]]), np.array([-1.0])
    lr, mu = 0.1, 2.0
    config = TrainConfig(epochs=1, batch_size=1, optimizer="sgd", learning_rate=lr, proximal_mu=mu, class_weight=None)
    # Execute
    fit(model, x, label, config=config, reference_params=[w_ref, b_ref])
    # Assert
    residual = 1 / (1 + math.exp(-float(w0[0] @ x[0] + b0[0]))) - 1.0
    w1, b1 = get_weights(model)
    np.testing.assert_allclose(w1, w0 - lr * (residual * x + mu * (w0 - w_ref)), rtol=1e-5)
    np.testing.assert_allclose(b1, b0 - lr * (residual + mu * (b0 - b_ref)), rtol=1e-5)


def test_balanced_pos_weight_is_negatives_over_positives():
    y = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    w = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0, 3.0])
    assert balanced_pos_weight(y) == pytest.approx(4 / 2)
    assert balanced_pos_weight(y, w) == pytest.approx(6 / 3)
    with pytest.raises(ValueError, match="both classes"):
        balanced_pos_weight(torch.zeros(4))


# --------------------------------------------------------------------------------------------
# Determinism and weights
# --------------------------------------------------------------------------------------------
def trained_weights(*, model_seed: int, train_seed: int):
    X, y = two_gaussians(600, shift=1.0, dim=3, seed=5)
    model = make_model("mlp", n_features=3, hidden=8, seed=model_seed)
    fit(model, X, y, config=TrainConfig(epochs=2, batch_size=64, learning_rate=0.01, seed=train_seed))
    return get_weights(model)


def test_same_seeds_give_identical_weights_and_other_seeds_differ():
    reference = trained_weights(model_seed=0, train_seed=0)
    again = trained_weights(model_seed=0, train_seed=0)
    other_init = trained_weights(model_seed=1, train_seed=0)
    other_order = trained_weights(model_seed=0, train_seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(reference, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(reference, other_init, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(reference, other_order, strict=True))


def test_set_weights_round_trip_and_shape_check():
    source, target = make_model("mlp", n_features=4, seed=0), make_model("mlp", n_features=4, seed=1)
    X = np.random.default_rng(0).normal(size=(10, 4))
    set_weights(target, get_weights(source))
    np.testing.assert_array_equal(predict_scores(target, X), predict_scores(source, X))
    bad = get_weights(source)
    bad[0] = bad[0][:, :2]
    with pytest.raises(ValueError, match=r"net\.0\.weight.*allowed: \(32, 4\)"):
        set_weights(target, bad)


def test_zero_weighted_rows_act_as_absent_rows():
    # Full batch, SGD: loss Σ wᵢℓᵢ / Σ wᵢ with 0/1 weights is the mean loss of the kept rows.
    X, y = two_gaussians(200, shift=1.0, seed=7)
    keep = np.random.default_rng(8).random(200) < 0.6
    config = TrainConfig(epochs=5, batch_size=500, optimizer="sgd", learning_rate=0.5)
    weighted, subset = (make_model("logistic", n_features=2, seed=0) for _ in range(2))
    report = fit(weighted, X, y, config=config, sample_weight=keep.astype(float))
    fit(subset, X[keep], y[keep], config=config)
    for a, b in zip(get_weights(weighted), get_weights(subset), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert report.pos_weight == pytest.approx((y[keep] == 0).sum() / (y[keep] == 1).sum(), rel=1e-5)


def test_predict_scores_are_sigmoid_logits_and_restore_train_mode():
    model = make_model("mlp", n_features=3, seed=0)
    X = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    scores = predict_scores(model, X, batch_size=7)
    expected = torch.sigmoid(model(torch.from_numpy(X))).detach().numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-6)
    assert model.training


# --------------------------------------------------------------------------------------------
# FedProx
# --------------------------------------------------------------------------------------------
def test_large_proximal_mu_keeps_weights_near_the_reference():
    X, y = two_gaussians(1000, shift=2.0, seed=9)
    distances = {}
    for mu in (0.0, 100.0):
        model = make_model("mlp", n_features=2, hidden=8, seed=0)
        start = get_weights(model)
        config = TrainConfig(epochs=3, batch_size=64, learning_rate=0.01, proximal_mu=mu)
        fit(model, X, y, config=config, reference_params=start if mu else None)
        distances[mu] = moved(model, start)
    assert distances[100.0] < 0.2 * distances[0.0]


# --------------------------------------------------------------------------------------------
# Opacus
# --------------------------------------------------------------------------------------------
def test_mlp_and_split_net_pass_opacus_validation():
    from opacus.validators import ModuleValidator

    assert ModuleValidator.validate(make_model("mlp", n_features=6, seed=0), strict=False) == []
    assert ModuleValidator.validate(make_split_net([2, 3], seed=0), strict=False) == []


def test_fit_trains_an_opacus_wrapped_model_unchanged():
    # Prepare
    X, y = two_gaussians(2000, shift=2.5, seed=11)
    X_test, y_test = two_gaussians(4000, shift=2.5, seed=12)
    config = TrainConfig(epochs=3, batch_size=64, learning_rate=0.02)
    plain = make_model("mlp", n_features=2, hidden=16, seed=0)
    shapes, names = [w.shape for w in get_weights(plain)], weight_names(plain)
    engine, model, optimizer, loader = make_private(plain, config, make_loader(X, y, batch_size=64, seed=0))
    # Execute
    report = fit(model, X, y, config=config, optimizer=optimizer, data_loader=loader)
    # Assert: it learned, weights are exchangeable with the unwrapped architecture, ε is accounted.
    assert roc_auc_score(y_test, predict_scores(model, X_test)) > 0.8
    assert [w.shape for w in get_weights(model)] == shapes
    assert weight_names(model) == names
    assert sum(steps for _, _, steps in engine.accountant.history) == report.steps
    fresh = make_model("mlp", n_features=2, hidden=16, seed=5)
    set_weights(fresh, get_weights(model))
    np.testing.assert_allclose(predict_scores(fresh, X_test), predict_scores(model, X_test), rtol=1e-6)


def test_empty_poisson_batches_still_take_a_counted_noisy_step():
    # Sampling rate 1/300 per row: P(empty batch) = (1 − 1/300)^300 ≈ e⁻¹, so many batches are empty.
    X, y = two_gaussians(300, shift=1.0, seed=13)
    config = TrainConfig(epochs=1, batch_size=1, learning_rate=0.01, class_weight=None)
    engine, model, optimizer, loader = make_private(
        make_model("logistic", n_features=2, seed=0), config, make_loader(X, y, batch_size=1, seed=0)
    )
    sizes = [len(batch[1]) for batch in loader]
    report = fit(model, X, y, config=config, optimizer=optimizer, data_loader=loader)
    assert 0 in sizes
    assert report.steps == len(loader)
    assert sum(steps for _, _, steps in engine.accountant.history) == len(loader)
    assert math.isfinite(report.final_loss)


def test_proximal_term_survives_opacus_clipping_and_noise():
    X, y = two_gaussians(1000, shift=2.0, seed=14)
    distances = {}
    for mu in (0.0, 100.0):
        config = TrainConfig(epochs=2, batch_size=64, learning_rate=0.01, proximal_mu=mu)
        plain = make_model("logistic", n_features=2, seed=0)
        start = get_weights(plain)
        _, model, optimizer, loader = make_private(plain, config, make_loader(X, y, batch_size=64, seed=0))
        fit(model, X, y, config=config, optimizer=optimizer, data_loader=loader, reference_params=start)
        distances[mu] = moved(model, start)
    assert distances[100.0] < 0.2 * distances[0.0]


# --------------------------------------------------------------------------------------------
# Split learning
# --------------------------------------------------------------------------------------------
def test_split_net_pooled_forward_is_bottoms_then_top_and_it_trains():
    net = make_split_net([2, 1], embedding_dim=4, hidden=8, seed=0)
    X, y = two_gaussians(800, shift=2.0, dim=3, seed=15)
    x = torch.from_numpy(X[:5])
    by_parts = net.top(torch.cat([net.bottoms[0](x[:, :2]), net.bottoms[1](x[:, 2:])], dim=1))
    torch.testing.assert_close(net(x), by_parts)
    same = make_split_net([2, 1], embedding_dim=4, hidden=8, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(get_weights(net), get_weights(same), strict=True))
    fit(net, X, y, config=TrainConfig(epochs=3, batch_size=64, learning_rate=0.02))
    assert roc_auc_score(y, predict_scores(net, X)) > 0.85
    with pytest.raises(ValueError, match="x: 2 columns; allowed: 3"):
        net(x[:, :2])


# --------------------------------------------------------------------------------------------
# Standardizer
# --------------------------------------------------------------------------------------------
def test_standardizer_known_values_and_missing_indicator():
    train = np.array([[1.0, np.nan, 7.0], [3.0, 4.0, 7.0], [5.0, 8.0, 7.0]])
    scaler = Standardizer().fit(train)
    out = scaler.transform(np.array([[3.0, np.nan, 7.0], [1.0, 8.0, 9.0]]))
    std0 = math.sqrt(8 / 3)  # population std of 1, 3, 5
    expected = np.array([[0.0, 0.0, 0.0, 1.0], [-2 / std0, 1.0, 2.0, 0.0]])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert scaler.get_feature_names_out(["a", "b", "c"]) == ["a", "b", "c", "b__missing"]
    assert scaler.n_features_out_ == 4


def test_standardizer_uses_train_statistics_only():
    rng = np.random.default_rng(16)
    train, test = rng.normal(0, 2, size=(5000, 2)), rng.normal(10, 2, size=(5000, 2))
    scaler = Standardizer().fit(train)
    z_train, z_test = scaler.transform(train), scaler.transform(test)
    np.testing.assert_allclose(z_train.mean(axis=0), 0.0, atol=1e-5)
    shifted = (test.mean(axis=0) - train.mean(axis=0)) / train.std(axis=0)  # ≈ 5, not 0
    np.testing.assert_allclose(z_test.mean(axis=0), shifted, rtol=1e-4)
    with pytest.raises(ValueError, match=r"X: 3 columns; allowed: 2"):
        scaler.transform(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="inf"):
        Standardizer().fit(np.array([[np.inf]]))


# --------------------------------------------------------------------------------------------
# GBT baseline
# --------------------------------------------------------------------------------------------
def test_gbt_learns_the_toy_with_missing_values_and_is_deterministic():
    X, y = two_gaussians(2000, shift=2.0, seed=17)
    X_test, y_test = two_gaussians(2000, shift=2.0, seed=18)
    X[np.random.default_rng(19).random(X.shape) < 0.1] = np.nan
    first = GBTBaseline(seed=0, max_iter=50).fit(X, y).predict_score(X_test)
    second = GBTBaseline(seed=0, max_iter=50).fit(X, y).predict_score(X_test)
    assert roc_auc_score(y_test, first) > 0.8
    np.testing.assert_array_equal(first, second)


# --------------------------------------------------------------------------------------------
# Validation at the boundary
# --------------------------------------------------------------------------------------------
def test_bad_input_names_the_field_and_the_allowed_values():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match=r"name: 'cnn'; allowed: one of \('logistic', 'mlp'\)"):
        make_model("cnn", n_features=3, seed=0)
    with pytest.raises(ValueError, match="y: shape"):
        fit(make_model("logistic", n_features=2, seed=0), np.zeros((4, 2)), np.zeros(3), config=TrainConfig())
    with pytest.raises(ValueError, match="NaN"):
        make_loader(np.array([[np.nan]]), np.array([1.0]), batch_size=1, seed=0)
    with pytest.raises(ValueError, match="sample_weight"):
        make_loader(np.zeros((2, 1)), np.array([0.0, 1.0]), batch_size=1, seed=0, sample_weight=[1.0, -1.0])


# --------------------------------------------------------------------------------------------
# Uninformative columns and the gbt crash (issue 9)
# --------------------------------------------------------------------------------------------
def test_gbt_fits_with_an_all_missing_and_a_constant_column_and_ignores_them():
    # Before the fix HistGradientBoosting's binning raised "window shape cannot be larger than input array
    # shape" on the all-NaN column (pooled with a placebo partner on realistic worlds, `models: [gbt]`).
    X, y = two_gaussians(600, shift=1.5, dim=2, seed=7)
    with_junk = np.column_stack([X[:, 0], np.full(600, np.nan), X[:, 1], np.full(600, 3.0)])
    gbt = GBTBaseline(seed=0, max_iter=30).fit(with_junk, y)
    assert gbt.dropped_columns_ == {1: ALL_MISSING, 3: CONSTANT}
    X_test, _ = two_gaussians(200, shift=1.5, dim=2, seed=8)
    junk_test = np.column_stack([X_test[:, 0], np.full(200, 5.0), X_test[:, 1], np.full(200, -1.0)])
    clean = GBTBaseline(seed=0, max_iter=30).fit(X, y).predict_score(X_test)
    np.testing.assert_array_equal(gbt.predict_score(junk_test), clean)  # the junk columns reach no tree
    with pytest.raises(ValueError, match="allowed: 4"):
        gbt.predict_score(X_test)
    with pytest.raises(ValueError, match="constant or all-missing"):
        GBTBaseline(seed=0).fit(np.full((10, 2), np.nan), np.array([0, 1] * 5))


def test_informative_columns_drops_only_all_missing_and_constant_columns():
    frame = pd.DataFrame(
        {
            "varies": [1.0, 2.0, np.nan, 4.0],
            "never_joined": [np.nan] * 4,
            "flag_always_one": [1.0] * 4,
            "constant_but_sometimes_missing": [7.0, np.nan, 7.0, 7.0],  # missingness may carry signal: kept
            "binary": [0.0, 1.0, 0.0, 0.0],
        }
    )
    selection = informative_columns(frame)
    assert selection.kept == ["varies", "constant_but_sometimes_missing", "binary"]
    assert selection.dropped == {"never_joined": ALL_MISSING, "flag_always_one": CONSTANT}
    assert selection.dropped_text() == "never_joined (all missing); flag_always_one (constant)"
    assert uninformative_reasons(np.array([[5.0]])) == [CONSTANT]  # one row: nothing varies
    with pytest.raises(ValueError, match="0 rows"):
        informative_columns(frame.iloc[:0])
    with pytest.raises(ValueError, match="duplicate"):
        informative_columns(pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]))


# --------------------------------------------------------------------------------------------
# Early stopping (issue 9)
# --------------------------------------------------------------------------------------------
def test_time_validation_split_holds_out_the_end_of_the_window_with_ties_together():
    times = np.repeat(np.arange(10), 10)  # 10 days, 10 rows a day
    y = np.tile([1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 10)
    held = time_validation_split(times, y, fraction=0.2, min_positives=1)
    assert held is not None
    np.testing.assert_array_equal(held, times >= 8)  # the last two days, whole days only
    # Too few positives in the latest rows: the cut moves back until it holds min_positives (≤ half of them).
    held = time_validation_split(times, y, fraction=0.2, min_positives=4)
    assert held is not None
    np.testing.assert_array_equal(held, times >= 6)
    held = time_validation_split(times, y, fraction=0.2, min_positives=50)
    assert held is not None
    np.testing.assert_array_equal(held, times >= 5)  # capped at half of the 10 positives
    y_late = np.where(times <= 5, y, 0)  # reports stop after day 5
    held = time_validation_split(times, y_late, fraction=0.2, min_positives=1)
    assert held is not None
    np.testing.assert_array_equal(held, times >= 5)
    # One day only, or positives only at one time: no cut leaves both classes on both sides.
    assert time_validation_split(np.zeros(20), np.tile([0, 1], 10)) is None
    assert time_validation_split(times, np.where(times == 9, y, 0)) is None
    with pytest.raises(ValueError, match="fraction"):
        time_validation_split(times, y, fraction=1.0)


def _noisy_problem(seed: int):
    """Few rows, many pure-noise features: an over-fitting model gets worse on later rows."""
    X, y = two_gaussians(400, shift=1.0, dim=30, seed=seed)
    return X, y, np.arange(400) // 40  # 10 "days"


def test_early_stopping_stops_by_patience_and_restores_the_best_weights():
    X, y, times = _noisy_problem(3)
    model = make_model("logistic", n_features=30, seed=0)
    config = TrainConfig(epochs=300, batch_size=32, learning_rate=0.05, patience=3)
    report = fit_early_stopping(model, X, y, times=times, config=config, validation_fraction=0.3)
    assert report.converged is True and report.epochs < 300
    assert report.epochs - report.best_epoch == 3  # stopped exactly `patience` epochs after the best
    assert report.n_validation == 120 and report.n_examples == 280
    held = times >= 7
    best = min(report.validation_losses)
    assert report.validation_losses[report.best_epoch - 1] == best
    again = validation_loss(model, Validation(X[held], y[held]), class_weight="balanced")
    assert again == pytest.approx(best, rel=1e-6)  # the model kept is the best epoch's, not the last
    assert report.validation_losses[-1] > best
    metrics = report.as_metrics()
    assert metrics["converged"] == 1.0 and metrics["train_epochs"] == report.epochs
    assert metrics["best_epoch"] == report.best_epoch and metrics["val_loss"] == pytest.approx(best)


def test_hitting_the_epoch_budget_is_reported_as_not_converged():
    X, y, times = _noisy_problem(4)
    model = make_model("logistic", n_features=30, seed=0)
    config = TrainConfig(epochs=2, batch_size=400, learning_rate=1e-4, patience=5)
    report = fit_early_stopping(model, X, y, times=times, config=config)
    assert report.converged is False and report.epochs == 2
    assert report.as_metrics()["converged"] == 0.0
    # Without a usable validation slice it trains the budget on all rows and says it did not converge.
    one_day = np.zeros(400)
    report = fit_early_stopping(model, X, y, times=one_day, config=config)
    assert report.converged is False and report.best_epoch is None and report.n_examples == 400


def test_fixed_epochs_without_validation_are_unchanged_by_the_patience_setting():
    X, y = two_gaussians(300, shift=1.0, seed=5)
    a, b = make_model("logistic", n_features=2, seed=1), make_model("logistic", n_features=2, seed=1)
    report = fit(a, X, y, config=TrainConfig(epochs=3, batch_size=50))
    fit(b, X, y, config=TrainConfig(epochs=3, batch_size=50, patience=2))  # no validation: patience unused
    assert report.converged is None and report.as_metrics() == {"train_epochs": 3.0}
    for wa, wb in zip(get_weights(a), get_weights(b), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_early_stopping_is_refused_without_patience_and_under_dp():
    X, y = two_gaussians(200, shift=1.0, seed=6)
    validation = Validation(X[:50], y[:50])
    model = make_model("logistic", n_features=2, seed=0)
    with pytest.raises(ValueError, match="patience"):
        fit(model, X, y, config=TrainConfig(epochs=2), validation=validation)
    config = TrainConfig(epochs=2, batch_size=50, patience=2)
    _engine, dp_model, dp_optimizer, dp_loader = make_private(model, config, make_loader(X, y, batch_size=50, seed=0))
    with pytest.raises(ValueError, match="DP"):
        fit(dp_model, X, y, config=config, optimizer=dp_optimizer, data_loader=dp_loader, validation=validation)


def test_refit_retrains_from_the_initial_weights_on_all_rows_for_the_best_epoch_count():
    X, y, times = _noisy_problem(3)
    config = TrainConfig(epochs=300, batch_size=32, learning_rate=0.05, patience=3)
    stopped = make_model("logistic", n_features=30, seed=0)
    plain = fit_early_stopping(stopped, X, y, times=times, config=config, validation_fraction=0.3)
    refitted = make_model("logistic", n_features=30, seed=0)
    report = fit_early_stopping(refitted, X, y, times=times, config=config, validation_fraction=0.3, refit=True)
    # Same early-stopping phase, then best_epoch epochs on all 400 rows (validation slice included).
    assert report.best_epoch == plain.best_epoch and report.validation_losses == plain.validation_losses
    assert report.refit is True and report.converged is True
    assert report.epochs == plain.best_epoch and report.n_examples == 400
    # The refit is exactly fit() on all rows from the same initial weights for best_epoch epochs.
    reference = make_model("logistic", n_features=30, seed=0)
    fit(reference, X, y, config=config.model_copy(update={"epochs": plain.best_epoch, "patience": None}))
    for wa, wb in zip(get_weights(refitted), get_weights(reference), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(a, b) for a, b in zip(get_weights(refitted), get_weights(stopped), strict=True))
    metrics = report.as_metrics()
    assert metrics["refit"] == 1.0 and metrics["train_epochs"] == plain.best_epoch
    assert plain.as_metrics()["refit"] == 0.0


def test_loss_flattened_compares_the_mean_loss_of_the_last_rounds_with_the_rounds_before():
    settled = [0.8, 0.6, 0.5, 0.45, 0.42, 0.4, 0.401, 0.399, 0.402, 0.4, 0.398, 0.401, 0.4, 0.399, 0.4]
    assert loss_flattened(settled) is True  # single rounds jitter, the window means agree within 1%
    assert loss_flattened(settled[:10]) is False  # rounds 6-10 (mean 0.40) vs 1-5 (0.55)
    assert loss_flattened([1.0, 0.9, 0.8]) is None  # too few rounds to tell
    assert loss_flattened([0.5, math.nan, 0.5, 0.5, 0.5, 0.495], window=2) is True  # unknown rounds skipped
    assert loss_flattened([1.0, 1.0, 0.9, 0.9], window=2, tolerance=0.05) is False  # 10% drop
    assert loss_flattened([1.0, 1.0, 0.9, 0.9], window=2, tolerance=0.15) is True
    with pytest.raises(ValueError, match="tolerance"):
        loss_flattened([1.0, 1.0], tolerance=0.0)
