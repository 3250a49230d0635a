"""The partner's task in plain torch (no Flower): summarise its rows, train one round, score its test rows.

Flower's app layout keeps this apart from the apps: :mod:`.client_app` only unpacks a message, calls
one of these functions and packs the reply, and the in-process engine (:func:`.run.run_in_process`)
calls the very same functions, so a Flower run and the in-process reference compute the same model.
:func:`global_setup` is the server's side of the same maths (the global standardiser and class balance).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedsim.federation.horizontal.settings import HorizontalSettings
from fedsim.federation.partner_data import PartnerData
from fedsim.federation.standardize import (
    ColumnMoments,
    column_moments,
    standardizer_from_lists,
    standardizer_from_moments,
    standardizer_to_lists,
)
from fedsim.models import Standardizer, make_model
from fedsim.privacy import PrivacySettings
from fedsim.rows import entity_days
from fedsim.training import TrainConfig, fit, get_weights, predict_scores, set_weights


def round_seed(seed: int, server_round: int, partner: str) -> int:
    """Batch-order seed of one partner in one round: stable across processes (crc32, not hash())."""
    return int(np.random.SeedSequence([seed, server_round, zlib.crc32(partner.encode())]).generate_state(1)[0])


def partner_summary(data: PartnerData) -> tuple[ColumnMoments, float, float]:
    """What a partner tells the server before training: column moments, Σw of positives, Σw of negatives."""
    positive = float(data.weight[data.y == 1].sum())
    return column_moments(data.X), positive, float(data.weight.sum()) - positive


@dataclass
class LocalRound:
    """What one partner's round produced: weights (get_weights order), num-examples (rows), the final
    epoch's train loss, and under DP the accountant state to keep and the ledger as ``dp_*`` metrics.

    Under DP ``loss`` is NaN: the exact loss of a private training set is a data-dependent number outside
    the DP-SGD guarantee (one entity can move it without bound, BCE being unbounded), so it never leaves
    the partner; only the DP-trained weights and the ledger do.
    """

    weights: list[np.ndarray]
    n_examples: int
    loss: float
    dp_state: dict[str, Any] | None = None
    dp_metrics: dict[str, float] = field(default_factory=dict)


def train_locally(
    data: PartnerData,
    arrays: Sequence[np.ndarray],
    config: Mapping[str, Any],
    *,
    dp_state: dict[str, Any] | None = None,
) -> LocalRound:
    """One round at one partner: global weights in, locally trained weights out (shared loop ``fit``).

    Rows are weighted by their subsampling weight times the global ``pos-weight`` for positives (the
    pooled regime's balanced class weight, identical to BCE's ``pos_weight`` for 0/1 labels). With
    ``dp-settings`` in ``config`` the round runs DP-SGD (:func:`fedsim.privacy.make_private_fit`, the
    partner entity as unit of privacy) and ``dp_state`` carries the accountant across rounds.
    """
    std = standardizer_from_lists(dict(config))
    X, y = std.transform(data.X), data.y.astype(np.float32)
    model = make_model(str(config["model"]), n_features=X.shape[1], seed=int(config["seed"]))
    set_weights(model, arrays)
    mu = float(config.get("proximal-mu", 0.0))
    cfg = TrainConfig.model_validate(
        {
            "epochs": int(config["local-epochs"]),
            "batch_size": int(config["batch-size"]),
            "learning_rate": float(config["learning-rate"]),
            "proximal_mu": mu,
            "class_weight": None,
            "seed": round_seed(int(config["seed"]), int(config["server-round"]), data.partner),
        }
    )
    weight = data.weight * np.where(data.y == 1, float(config["pos-weight"]), 1.0)
    reference = list(arrays) if mu > 0 else None
    if not config.get("dp-settings"):
        report = fit(model, X, y, config=cfg, sample_weight=weight, reference_params=reference)
        return LocalRound(get_weights(model), data.n_rows, float(report.final_loss))
    from fedsim.privacy import AccountantState, make_private_fit

    out = make_private_fit(
        model,
        X,
        y,
        privacy=PrivacySettings.model_validate_json(str(config["dp-settings"])),
        config=cfg,
        seed=round_seed(int(config["seed"]), 0, data.partner),
        groups=data.entity,
        sample_weight=weight,
        state=AccountantState.from_dict(dp_state) if dp_state else None,
        total_rounds=int(config["rounds"]),
        reference_params=reference,
    )
    return LocalRound(get_weights(model), data.n_rows, math.nan, out.state.to_dict(), out.ledger.as_metrics())


def score_locally(data: PartnerData, arrays: Sequence[np.ndarray], config: Mapping[str, Any], out_dir: Path) -> int:
    """Score the partner's own test rows with the global model; write entity-day scores to ``out_dir``.

    Files: ``scores_<window>.parquet`` (partner, entity_id, day, decision_ts, score). Returns the
    number of entity-day rows written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    model = None
    if not config.get("constant", False):
        std = standardizer_from_lists(dict(config))
        model = make_model(str(config["model"]), n_features=std.n_features_out_, seed=int(config["seed"]))
        set_weights(model, arrays)
    written = 0
    for window, frame in data.tests.items():
        if model is None or frame.empty:
            score = np.zeros(len(frame))
        else:
            score = predict_scores(model, std.transform(frame[data.columns].to_numpy(np.float64)))
        rows = pd.DataFrame(
            {
                "partner": data.partner,
                "entity_id": frame["entity_id"].to_numpy(),
                "decision_ts": frame["decision_ts"].to_numpy(),
                "score": score,
            }
        )
        days = entity_days(rows)
        days.to_parquet(out_dir / f"scores_{window}.parquet", index=False)
        written += len(days)
    return written


def global_setup(
    settings: HorizontalSettings, moments: ColumnMoments, *, positive: float, negative: float
) -> tuple[Standardizer, dict[str, Any]]:
    """The global standardiser and the config every partner trains with (settings + scaling + class balance).

    ``pos-weight`` = Σw₋ / Σw₊ over all partners (NaN when no partner has a positive row).
    """
    std = standardizer_from_moments(moments)
    pos_weight = negative / positive if positive > 0 else math.nan
    return std, {**settings.client_config(), **standardizer_to_lists(std), "pos-weight": pos_weight}
