"""Train one scoring unit's model (± DP-SGD) and hand back a scorer: the step every regime shares.

Columns that are constant or all-missing in the unit's training rows never reach a model
(:func:`fedsim.columns.informative_columns`); their count is the ``dropped_columns`` metric and their
names the ``dropped_columns.<unit>`` param.

Non-private torch models train to convergence (issue 9): :func:`fedsim.training.fit_early_stopping`
early-stops on the end of the training window, then (``refit``) retrains on all training rows for the
chosen number of epochs; ``train_epochs``, ``converged`` (1/0), ``best_epoch``, ``val_loss``,
``val_rows`` and ``refit`` come back as metrics, and a unit that did not converge is logged as a warning.
The gradient-boosted baseline has its own stopping rule (a fixed number of trees). Private
(:func:`fedsim.privacy.privacy_for` says so): :func:`fedsim.privacy.make_private_fit` through the same
loop with a *fixed* budget of ``training.epochs`` (choosing the epoch on validation loss would leak and the
accountant needs the step count up front), with the partner entity of each row as the unit of privacy;
the unit's (ε, δ, σ, C, q, steps) come back as ``dp_*`` metrics. The caller suffixes every metric with
the unit's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fedsim.columns import informative_columns
from fedsim.models import GBTBaseline, Standardizer, make_model
from fedsim.person_privacy import ModelExposure, home_examples, max_group_size, register_exposure, with_joined_context
from fedsim.privacy import PrivacySettings, make_private_fit, privacy_for
from fedsim.training import (
    DEFAULT_EARLY_STOPPING,
    TrainConfig,
    fit_early_stopping,
    predict_scores,
)

logger = logging.getLogger("fedsim.regimes")
DEFAULT_PATIENCE = DEFAULT_EARLY_STOPPING.patience or 5
Scorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Fitted:
    """A unit's trained scorer, its metrics (suffixed with the unit by the caller) and its text params."""

    scorer: Scorer
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def fit_scorer(
    ctx: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    weight: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    times: np.ndarray | None = None,
) -> Fitted:
    """Fit the unit's model on ``X`` ``(n, d)``, labels ``y`` ``(n,)``, weights ``(n,)``.

    groups: ``(n, 2)`` (partner, entity id) per row — the unit of privacy under DP; required then.
    times: ``(n,)`` decision time per row — where the early-stopping validation slice (the end of the
    training window) is cut; required for a non-private torch model.
    The scorer takes a frame with (at least) the columns of ``X`` and uses only the kept ones. Bad privacy
    settings (e.g. DP with ``gbt``) raise :class:`fedsim.privacy.PrivacyError` before anything is trained.
    """
    privacy = privacy_for(ctx)
    if privacy is not None and not privacy.record_level:
        privacy = None  # client-level DP only: a federated regime's business, nothing to do here
    if privacy is not None and groups is None:
        raise ValueError("groups: None under DP; allowed: the (partner, entity id) of every training row")
    if y.sum() == 0 or y.sum() == len(y):
        # Nothing reported yet at these partners: no model can learn; every row gets the same score.
        logger.warning("no reported fraud in the training window for this unit; scoring is uninformative")
        return Fitted(lambda Xt: np.zeros(len(Xt)))
    selection = informative_columns(X)
    params = {"dropped_columns": selection.dropped_text() or "none"}
    info: dict[str, float] = {"dropped_columns": float(len(selection.dropped))}
    if selection.dropped:
        logger.info("left out %d uninformative training columns: %s", len(selection.dropped), params["dropped_columns"])
    if not selection.kept:
        logger.warning("every training column is constant or missing for this unit; scoring is uninformative")
        return Fitted(lambda Xt: np.zeros(len(Xt)), info, params)
    kept = selection.kept
    Xk = X[kept].to_numpy(float)
    if ctx.model == "gbt":
        # Balanced classes: with ~1 fraud row in 1,000 (and negatives up-weighted to undo subsampling) an
        # unbalanced booster spends its trees on the negatives and ranks fraud barely above chance.
        gbt = GBTBaseline(seed=ctx.seed, class_weight="balanced", max_iter=200, learning_rate=0.05)
        gbt.fit(Xk, y, sample_weight=weight)
        return Fitted(lambda Xt: gbt.predict_score(Xt[kept].to_numpy(float)), info, params)
    std = Standardizer().fit(Xk)  # all training rows (validation slice included); never test rows
    Xs = std.transform(Xk)
    model = make_model(ctx.model, n_features=Xs.shape[1], seed=ctx.seed)
    cfg = TrainConfig(
        epochs=ctx.training.epochs,
        batch_size=ctx.training.batch_size,
        learning_rate=ctx.training.learning_rate,
        seed=ctx.seed,
        class_weight="balanced",
    )
    if privacy is not None and groups is not None:
        info.update(_private_fit(ctx, model, Xs, y, weight, groups, privacy, cfg))
        info["train_epochs"] = float(cfg.epochs)  # no `converged`: a fixed budget is not a convergence test
        params["training_budget"] = f"fixed {cfg.epochs} epochs (DP-SGD: no early stopping)"
    else:
        info.update(_converged_fit(ctx, model, Xs, y, weight, times, cfg))
        params["training_budget"] = _budget_text(ctx)
    return Fitted(lambda Xt: predict_scores(model, std.transform(Xt[kept].to_numpy(float))), info, params)


def _stopping(ctx: Any) -> tuple[int, int, bool]:
    """(max epochs, patience, refit) of the run's training settings (the experiment's ``training:``)."""
    training = ctx.training
    return training.max_epochs, training.patience, training.refit


def _budget_text(ctx: Any) -> str:
    max_epochs, patience, refit = _stopping(ctx)
    then = "; then refit on all training rows for the best epoch count" if refit else "; best epoch's weights kept"
    return f"early stopping on the end of the training window (≤ {max_epochs} epochs, patience {patience}{then})"


def _converged_fit(
    ctx: Any, model: Any, Xs: np.ndarray, y: np.ndarray, weight: np.ndarray, times: np.ndarray | None, cfg: TrainConfig
) -> dict[str, float]:
    """Early-stopped training of a non-private torch model; its metrics, with a warning if it did not converge."""
    max_epochs, patience, refit = _stopping(ctx)
    config = cfg.model_copy(update={"epochs": max_epochs, "patience": patience})
    if times is None:
        raise ValueError("times: None; allowed: the decision time of every training row (for early stopping)")
    report = fit_early_stopping(
        model, Xs, y.astype(np.float32), times=times, config=config, sample_weight=weight, refit=refit
    )
    if not report.converged:
        logger.warning(
            "%s model did not converge: the validation loss on the end of the training window was still "
            "improving after %d epochs (or there were too few fraud reports to hold some out); its scores "
            "may understate what %s can do. Raise training.max_epochs, or treat this run with care.",
            ctx.model,
            report.epochs,
            ctx.model,
        )
    return report.as_metrics()


def _private_fit(
    ctx: Any,
    model: Any,
    Xs: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    groups: np.ndarray,
    privacy: PrivacySettings,
    cfg: TrainConfig,
) -> dict[str, float]:
    keys = _entity_keys(groups)
    out = make_private_fit(
        model, Xs, y.astype(np.float32), privacy=privacy, config=cfg, seed=ctx.seed, groups=keys, sample_weight=weight
    )
    info = out.ledger.as_metrics()
    # The examples hold their home entity and every entity whose features a regime joined in (pooled).
    examples = with_joined_context(home_examples(groups))
    entities = ctx.truth.get("entities") if isinstance(ctx.truth, dict) else None
    info["dp_max_entities_per_person"] = float(max_group_size(examples, entities))
    name = "+".join(str(p) for p in pd.unique(np.asarray(groups, dtype=object)[:, 0]))
    register_exposure(ModelExposure.from_ledger(name, out.ledger, examples, history=out.state.history))
    logger.info(
        "DP-SGD: ε = %.3g at δ = %.2g (σ = %.3g, C = %g, q = %.3g, %d steps, %s) over %d entities",
        out.ledger.epsilon,
        out.ledger.delta,
        out.ledger.noise_multiplier,
        out.ledger.max_grad_norm,
        out.ledger.sample_rate,
        out.ledger.total_steps,
        out.ledger.accountant,
        out.ledger.n_examples,
    )
    return info


def _entity_keys(groups: np.ndarray) -> np.ndarray:
    """(partner, entity id) rows → one integer code per distinct entity (partners may reuse ids)."""
    frame = pd.DataFrame(np.asarray(groups, dtype=object), columns=["partner", "entity_id"])
    return frame.groupby(["partner", "entity_id"], sort=True).ngroup().to_numpy()
