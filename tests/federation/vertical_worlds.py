"""Small real worlds and run contexts for the vertical / hybrid split-learning tests (no mocks).

The realistic world these tests use is the shared ``small_realistic_workspace`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from fedsim.regimes import RunContext, TrainingSettings
from fedsim.runner import Workspace
from fedsim.settings import Engine, FederationSettings, RunHooks
from tests.worlds import build_workspace

CHAIN_1 = ("bank_1", "telco", "marketplace")
SPLIT = {"train_days": 10, "gap_days": 0, "test_days": 10}


def _build(world: dict[str, Any], split: dict[str, int]) -> Workspace:
    return build_workspace(world, split, Path(tempfile.mkdtemp(prefix="vfl-ws-")), name="vfl")


@lru_cache(maxsize=4)
def known_answer(banks: int = 1, entities: int = 3000) -> Workspace:
    """Known-answer world: ``banks`` banks (d = 1 each), telco d = 0.8, marketplace d = 0.5, 20 days,
    10% of people are cases; telco and marketplace hold everyone (full key coverage)."""
    ka = {"entities": entities, "days": 20, "prevalence": 0.1, "bank_shifts": [1.0] * banks, "placebo": False}
    return _build({"preset": "known-answer", "seed": 3, "overrides": {"known_answer": ka}}, SPLIT)


def context(
    ws: Workspace,
    coalition: tuple[str, ...] = CHAIN_1,
    *,
    rounds: int = 2,
    engine: Engine = "in_process",
    batch_size: int = 512,
    label_holder: str = "bank",
    capture_dir: str | None = None,
) -> RunContext:
    """A split-learning run of ``coalition``: seed 0, lr 0.01, 10% of legitimate rows kept for training."""
    federation = FederationSettings(
        rounds=rounds, local_epochs=1, engine=engine, label_holder=label_holder, embedding_dim=4
    )
    return RunContext(
        world=ws.world,
        coalition=coalition,
        model="mlp",
        seed=0,
        split=ws.split,
        training=TrainingSettings(1, batch_size, 0.01, 0.1),
        features=ws.features,
        truth=ws.truth,
        federation=federation,
        hooks=RunHooks(capture_dir=capture_dir),
    )
