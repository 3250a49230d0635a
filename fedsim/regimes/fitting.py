"""Train one scoring unit's model (± DP-SGD) and hand back a scorer: the step every regime shares.

Non-private: the shared loop :func:`fedsim.training.fit` (or the gradient-boosted baseline). Private
(:func:`fedsim.privacy.privacy_for` says so): :func:`fedsim.privacy.make_private_fit` through the same
loop, with the partner entity of each row as the unit of privacy; the unit's (ε, δ, σ, C, q, steps)
come back as ``dp_*`` metrics, which the caller suffixes with the unit's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fedsim.models import GBTBaseline, Standardizer, make_model
from fedsim.privacy import PrivacySettings, make_private_fit, privacy_for
from fedsim.training import TrainConfig, fit, predict_scores

logger = logging.getLogger("fedsim.regimes")
Scorer = Callable[[pd.DataFrame], np.ndarray]


def fit_scorer(
    ctx: Any, X: pd.DataFrame, y: np.ndarray, weight: np.ndarray, *, groups: np.ndarray | None = None
) -> tuple[Scorer, dict[str, float]]:
    """Fit the unit's model on ``X`` ``(n, d)``, labels ``y`` ``(n,)``, weights ``(n,)``; → (scorer, info).

    groups: ``(n, 2)`` (partner, entity id) per row — the unit of privacy under DP; required then.
    info: ``dp_*`` metrics when trained with DP, else empty. Bad privacy settings (e.g. DP with
    ``gbt``) raise :class:`fedsim.privacy.PrivacyError` before anything is trained.
    """
    privacy = privacy_for(ctx)
    if privacy is not None and not privacy.record_level:
        privacy = None  # client-level DP only: a federated regime's business, nothing to do here
    if privacy is not None and groups is None:
        raise ValueError("groups: None under DP; allowed: the (partner, entity id) of every training row")
    if y.sum() == 0 or y.sum() == len(y):
        # Nothing reported yet at these partners: no model can learn; every row gets the same score.
        logger.warning("no reported fraud in the training window for this unit; scoring is uninformative")
        return (lambda Xt: np.zeros(len(Xt))), {}
    if ctx.model == "gbt":
        # Balanced classes: with ~1 fraud row in 1,000 (and negatives up-weighted to undo subsampling) an
        # unbalanced booster spends its trees on the negatives and ranks fraud barely above chance.
        gbt = GBTBaseline(seed=ctx.seed, class_weight="balanced", max_iter=200, learning_rate=0.05)
        gbt.fit(X.to_numpy(float), y, sample_weight=weight)
        return (lambda Xt: gbt.predict_score(Xt.to_numpy(float))), {}
    std = Standardizer().fit(X.to_numpy(float))
    Xs = std.transform(X.to_numpy(float))
    model = make_model(ctx.model, n_features=Xs.shape[1], seed=ctx.seed)
    cfg = TrainConfig(
        epochs=ctx.training.epochs,
        batch_size=ctx.training.batch_size,
        learning_rate=ctx.training.learning_rate,
        seed=ctx.seed,
        class_weight="balanced",
    )
    info: dict[str, float] = {}
    if privacy is not None and groups is not None:
        info = _private_fit(ctx, model, Xs, y, weight, groups, privacy, cfg)
    else:
        fit(model, Xs, y.astype(np.float32), config=cfg, sample_weight=weight)
    return (lambda Xt: predict_scores(model, std.transform(Xt.to_numpy(float)))), info


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
    info["dp_max_entities_per_person"] = float(max_entities_per_person(ctx.truth, groups))
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


def max_entities_per_person(truth: dict[str, pd.DataFrame], groups: np.ndarray) -> int:
    """Most training-set entities that belong to one hidden person (m of the group-privacy statement).

    Uses the hidden truth, only to *report* how far entity-level DP is from person-level DP; training
    never sees it. 1 when the truth has no entity → person table.
    """
    ent = truth.get("entities") if isinstance(truth, dict) else None
    if ent is None or not {"partner", "entity_id", "person_id"} <= set(ent.columns):
        return 1
    used = pd.DataFrame(np.asarray(groups, dtype=object), columns=["partner", "entity_id"]).drop_duplicates()
    used["entity_id"] = used["entity_id"].astype(ent["entity_id"].dtype)
    m = used.merge(ent[["partner", "entity_id", "person_id"]], on=["partner", "entity_id"], how="inner")
    m = m[m["person_id"] >= 0]
    return int(m.groupby("person_id").size().max()) if len(m) else 1
