"""Small real worlds and run contexts for the vertical / hybrid split-learning tests (no mocks)."""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from fedsim.experiment import parse_experiment
from fedsim.regimes import RunContext, TrainingSettings
from fedsim.runner import Workspace
from fedsim.settings import Engine, FederationSettings, RunHooks
from synthetic.world import generate

CHAIN_1 = ("bank_1", "telco", "marketplace")
SPLIT = {"train_days": 10, "gap_days": 0, "test_days": 10}


def _build(world: dict[str, Any], split: dict[str, int]) -> Workspace:
    spec = parse_experiment(
        {
            "name": "vfl",
            "world": world,
            "split": split,
            "regimes": ["vertical"],
            "coalitions": "all",
            "models": ["mlp"],
            "seeds": [0],
        }
    )
    w = generate(spec.world.world_config(), spec.world.seed)
    return Workspace.build(spec, w, Path(tempfile.mkdtemp(prefix="vfl-ws-")))


@lru_cache(maxsize=4)
def known_answer(banks: int = 1, entities: int = 3000) -> Workspace:
    """Known-answer world: ``banks`` banks (d = 1 each), telco d = 0.8, marketplace d = 0.5, 20 days,
    10% of people are cases; telco and marketplace hold everyone (full key coverage)."""
    ka = {"entities": entities, "days": 20, "prevalence": 0.1, "bank_shifts": [1.0] * banks, "placebo": False}
    return _build({"preset": "known-answer", "seed": 3, "overrides": {"known_answer": ka}}, SPLIT)


@lru_cache(maxsize=1)
def realistic() -> Workspace:
    """A small realistic world: noisy keys, partial coverage (a telco holds ~40% of a bank's people)."""
    return _build(
        {"preset": "small", "seed": 2, "overrides": {"persons": 1500, "days": 90}},
        {"train_days": 50, "gap_days": 5, "test_days": 20},
    )


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
