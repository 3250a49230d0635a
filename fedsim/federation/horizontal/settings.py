"""What a horizontal federation runs with (:class:`HorizontalSettings`) and reports (:class:`HorizontalOutcome`).

Both are plain values (no Flower): the settings travel to the partners inside every train message
(:meth:`HorizontalSettings.client_config`) or, on the deployment engine, inside the app's run config;
the outcome is what the ServerApp learned, returned through a closure (simulation) or a JSON file
(deployment).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fedsim.errors import FedsimError
from fedsim.privacy import PrivacySettings, privacy_for
from fedsim.rows import RunContext, TrainingSettings
from fedsim.settings import FederationSettings, Strategy

ROUND_TIMEOUT_S = 900.0
"""Seconds the server waits for the partners' replies in one round (or stage) before it counts them as failed."""


class HorizontalSettings(BaseModel):
    """Settings of one horizontal federation. Frozen; validated when built.

    No defaults here: the federation's come from :class:`fedsim.settings.FederationSettings` and the
    local training's from :class:`fedsim.rows.TrainingSettings`, through :meth:`build` (or
    :meth:`from_context` for a run), so each default is written once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(ge=1, le=1000, description="federated rounds (count)")
    local_epochs: int = Field(ge=1, le=100, description="local epochs per round at each partner (count)")
    strategy: Strategy = Field(description="aggregation strategy")
    proximal_mu: float = Field(ge=0, le=100, description="FedProx μ; used only with strategy fedprox")
    secure_aggregation: bool = Field(description="SecAgg+ over the model updates")
    model: Literal["logistic", "mlp"] = Field(description="torch model family (fedsim.models)")
    seed: int = Field(ge=0, description="seeds the initial model and each partner's batch order")
    batch_size: int = Field(ge=1, description="rows per local batch (count)")
    learning_rate: float = Field(gt=0, le=10, description="local optimizer step size")
    round_timeout_s: float = Field(ROUND_TIMEOUT_S, gt=0, description="seconds to wait for the partners' replies")
    privacy: PrivacySettings | None = Field(
        None, description="record-level DP-SGD inside every partner (fedsim.privacy); None = no DP"
    )

    @classmethod
    def build(
        cls,
        *,
        model: str,
        seed: int,
        federation: FederationSettings | None = None,
        training: TrainingSettings | None = None,
        privacy: PrivacySettings | None = None,
    ) -> HorizontalSettings:
        """Settings from the typed run settings (their defaults where not given)."""
        if model not in ("logistic", "mlp"):
            raise FedsimError(f"model = {model!r}: horizontal FL trains torch models only; allowed: logistic, mlp")
        f = federation if federation is not None else FederationSettings()
        t = training if training is not None else TrainingSettings()
        return cls(
            rounds=f.rounds,
            local_epochs=f.local_epochs,
            strategy=f.strategy,
            proximal_mu=f.proximal_mu,
            secure_aggregation=f.secure_aggregation,
            model=model,
            seed=seed,
            batch_size=t.batch_size,
            learning_rate=t.learning_rate,
            privacy=privacy,
        )

    @classmethod
    def from_context(cls, ctx: RunContext) -> HorizontalSettings:
        """Settings of a run: ``ctx.federation``, ``ctx.training``, the model, the seed and the run's DP settings."""
        return cls.build(
            model=ctx.model, seed=ctx.seed, federation=ctx.federation, training=ctx.training, privacy=privacy_for(ctx)
        )

    @property
    def mu(self) -> float:
        """The proximal μ partners apply: ``proximal_mu`` under FedProx, 0 under FedAvg."""
        return self.proximal_mu if self.strategy == "fedprox" else 0.0

    def client_config(self) -> dict[str, Any]:
        """Training settings every train message carries (ConfigRecord keys)."""
        return {
            "model": self.model,
            "seed": self.seed,
            "local-epochs": self.local_epochs,
            "rounds": self.rounds,
            "batch-size": self.batch_size,
            "learning-rate": self.learning_rate,
            "proximal-mu": self.mu,
            "dp-settings": self.privacy.model_dump_json() if self.privacy is not None else "",
        }


@dataclass
class HorizontalOutcome:
    """What the ServerApp learned about one run (all per-partner values keyed by partner name).

    round_loss: train loss per round, averaged over the partners that replied, weighted by their
    ``num-examples`` (NaN for a round without replies). partner_loss: each partner's loss per round
    (NaN where it failed). dropouts: partner → rounds in which its ClientApp failed. n_examples:
    training rows per partner. pos_weight: global class balance Σw₋/Σw₊ (NaN if no positives).
    uninformative: no partner had a reported case in the training window, so nothing was trained and
    every row scores 0 (as the siloed regime does). rounds_seconds: wall time of the training rounds.
    dp: partner → its DP ledger after its last completed round (``dp_epsilon``, ``dp_sigma``, ``dp_sample_rate``,
    ``dp_steps``, ``dp_delta``, …: enough to recompute ε). Without SecAgg+ the server reads it from the train
    replies; under SecAgg+ the replies carry none, and the run collects each partner's own ledger file
    (:data:`~.protocol.LEDGER_FILE`) from its output directory, as it collects its scores.
    loss_released: False under DP, where the partners keep their exact losses and round_loss is NaN.
    """

    partners: list[str]
    rounds: int
    round_loss: list[float]
    partner_loss: dict[str, list[float]]
    dropouts: dict[str, list[int]]
    n_examples: dict[str, int]
    n_features: int
    pos_weight: float
    uninformative: bool
    secure_aggregation: bool
    strategy: str
    rounds_seconds: float = math.nan
    failure_reasons: dict[str, str] = field(default_factory=dict)
    dp: dict[str, dict[str, float]] = field(default_factory=dict)
    loss_released: bool = True

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), default=float))
        return path

    @classmethod
    def read(cls, path: Path) -> HorizontalOutcome:
        return cls(**json.loads(path.read_text()))


def read_ledgers(out_root: Path, members: list[str]) -> dict[str, dict[str, float]]:
    """Each member's DP ledger file (:data:`~.protocol.LEDGER_FILE`) from ``out_root/<member>/``; members
    without one (no DP, or failed before its first round) are left out."""
    from fedsim.federation.horizontal.protocol import LEDGER_FILE

    out = {}
    for partner in members:
        path = out_root / partner / LEDGER_FILE
        if path.is_file():
            out[partner] = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    return out
