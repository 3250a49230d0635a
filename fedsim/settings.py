"""Typed, frozen settings a run carries: the federation settings (each default written once) and test hooks.

:class:`FederationSettings` is both the experiment file's ``federation:`` section (validated there, and
hashed into every federated cell's config hash, so its field names and defaults are part of the resume
contract) and the typed ``RunContext.federation`` a regime reads. Nothing here imports a regime, the
federation layer or Flower, so every layer may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Engine = Literal["simulation", "deployment", "in_process"]
"""How a federated regime runs: ``simulation`` (Flower's simulation engine, Ray), ``deployment`` (SuperLink +
SuperNodes) or ``in_process`` (the same partner code in this process, without Flower; for tests)."""

Strategy = Literal["fedavg", "fedprox"]

LABEL_HOLDER_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""Shape of ``federation.label_holder`` (a kind or partner name); the world's names are checked at load."""


class FederationSettings(BaseModel):
    """Settings of the federated regimes (horizontal, vertical, hybrid); ignored by the others.

    Frozen and strict-keyed. A regime that cannot honour a non-default value refuses it when the
    experiment is loaded (see :meth:`fedsim.regimes.RegimeSpec.refuse_settings`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(default=5, ge=1, le=1000, strict=True, description="Federated rounds; default 5.")
    local_epochs: int = Field(
        default=1,
        ge=1,
        le=100,
        strict=True,
        description="Local epochs per round at each client (horizontal); default 1.",
    )
    strategy: Strategy = Field(default="fedavg", description="Aggregation strategy.")
    proximal_mu: float = Field(
        default=0.01,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="FedProx proximal term μ (used when strategy = fedprox).",
    )
    secure_aggregation: bool = Field(default=False, description="SecAgg+ for horizontal updates.")
    engine: Engine = Field(
        default="simulation", description="Flower engine: simulation (Ray) or deployment (SuperLink + SuperNodes)."
    )
    label_holder: str = Field(
        default="bank",
        pattern=LABEL_HOLDER_PATTERN,
        description="Who holds the labels in vertical/hybrid FL: a partner kind of the world (bank, telco, "
        "marketplace; a known-answer world's kinds are its partner names without the number) or a partner "
        "name (bank_2). Checked against the world's partners when the experiment is loaded. Default bank.",
    )
    embedding_dim: int = Field(
        default=8, ge=1, le=256, strict=True, description="Width of each party's bottom-model output (vertical FL)."
    )

    def non_defaults(self, names: tuple[str, ...]) -> dict[str, object]:
        """Those of ``names`` whose value differs from the default, name → value."""
        defaults = FederationSettings()
        return {n: getattr(self, n) for n in names if getattr(self, n) != getattr(defaults, n)}


@dataclass(frozen=True)
class RunHooks:
    """Test-only hooks of a run (never set by an experiment file, never hashed).

    capture_dir: record every Flower message in and out of each app there. faults: partner → round
    from which its ClientApp raises (dropout tests).
    """

    capture_dir: str | None = None
    faults: Mapping[str, int] = field(default_factory=dict)
