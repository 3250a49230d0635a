"""Small known-answer worlds and run contexts for the horizontal-FL tests (real data, no mocks)."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from fedsim.evaluation import evaluate
from fedsim.privacy import PrivacySettings
from fedsim.regimes import RunContext, TrainingSettings
from fedsim.runner import Workspace
from fedsim.settings import Engine, FederationSettings, RunHooks, Strategy
from tests.worlds import build_workspace

BANKS = ("bank_1", "bank_2", "bank_3")
SPLIT = {"train_days": 12, "gap_days": 0, "test_days": 8}


def world_spec(*, case_shares: list[float] | None = None, entities: int = 3000) -> dict[str, Any]:
    """Known-answer world: three banks of equal size with a strong signal (d = 2), 20 days, no placebo."""
    ka: dict[str, Any] = {"entities": entities, "bank_shifts": [2.0, 2.0, 2.0], "days": 20, "placebo": False}
    if case_shares is not None:
        ka["bank_case_shares"] = case_shares
    return {"preset": "known-answer", "seed": 3, "overrides": {"known_answer": ka}}


@lru_cache(maxsize=4)
def _workspace(case_shares: tuple[float, ...] | None) -> Workspace:
    world = world_spec(case_shares=list(case_shares) if case_shares else None)
    return build_workspace(world, SPLIT, Path(tempfile.mkdtemp(prefix="hz-ws-")), name="hz")


def workspace(case_shares: list[float] | None = None) -> Workspace:
    """A built Workspace (world, features, truth, split), cached per case split."""
    return _workspace(tuple(case_shares) if case_shares else None)


def context(
    ws: Workspace,
    coalition: tuple[str, ...] = BANKS,
    *,
    rounds: int = 2,
    strategy: Strategy = "fedavg",
    secure: bool = False,
    engine: Engine = "simulation",
    epochs: int = 3,
    privacy: PrivacySettings | None = None,
    capture_dir: str | None = None,
    faults: dict[str, int] | None = None,
) -> RunContext:
    """A horizontal run of ``coalition``: logistic model, seed 0, ``epochs`` (pooled) / 1 local epoch per round."""
    federation = FederationSettings(
        rounds=rounds, local_epochs=1, strategy=strategy, proximal_mu=0.1, secure_aggregation=secure, engine=engine
    )
    return RunContext(
        world=ws.world,
        coalition=coalition,
        model="logistic",
        seed=0,
        split=ws.split,
        training=TrainingSettings(epochs, 256, 0.01, 0.2),
        features=ws.features,
        truth=ws.truth,
        federation=federation,
        privacy=privacy,
        hooks=RunHooks(capture_dir=capture_dir, faults=dict(faults or {})),
    )


def average_precision(ws: Workspace, scores: Any) -> float:
    """Step-wise AP of entity-day scores on the test window (fedsim.evaluation, no bootstrap)."""
    ev = evaluate(
        scores,
        ws.truth,
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        n_boot=0,
    )
    return float(ev.value("ap"))
