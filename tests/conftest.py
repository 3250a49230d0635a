"""Fixtures shared by the whole suite: small real worlds (no mocks) and the MLflow test store.

Every world fixture is session-scoped: it is generated once per test process (once per xdist worker under
``make test``) and must be treated as read-only. A test that needs a different world builds its own; a test that
mutates a world copies it first.

The worlds are built the way ``fedsim run`` builds them: an experiment spec → ``synthetic.world.generate`` →
``fedsim.runner.Workspace`` (features per partner, truth tables, split in seconds). The heavy imports sit inside
the builder so collecting a test module that uses no world does not load torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fedsim.runner import Workspace
    from synthetic.world_data import World

# ~1k entities, as issue 8's regime conformance test asks: three banks (d = 1 each) splitting the people, a telco
# (d = 0.8), a marketplace (d = 0.5) and a placebo partner (d = 0) holding everyone; 10% of people are cases.
KNOWN_ANSWER_WORLD: dict[str, Any] = {
    "preset": "known-answer",
    "seed": 3,
    "overrides": {"known_answer": {"entities": 1000, "days": 20, "prevalence": 0.1}},
}
KNOWN_ANSWER_SPLIT = {"train_days": 12, "gap_days": 0, "test_days": 8}

# The realistic generator at test size: noisy keys and partial coverage (a telco holds ~40% of a bank's people).
# Same world and split as tests/federation/vertical_worlds.py::realistic, so that module can switch unchanged.
SMALL_REALISTIC_WORLD: dict[str, Any] = {"preset": "small", "seed": 2, "overrides": {"persons": 1500, "days": 90}}
SMALL_REALISTIC_SPLIT = {"train_days": 50, "gap_days": 5, "test_days": 20}


def build_workspace(world: dict[str, Any], split: dict[str, int], artifacts_dir: Path) -> Workspace:
    """Generate ``world`` and build the workspace every regime runs on, through the experiment spec."""
    from fedsim.experiment import parse_experiment
    from fedsim.runner import Workspace
    from synthetic.world import generate

    spec = parse_experiment(
        {
            "name": "shared-test-world",
            "world": world,
            "split": split,
            "regimes": ["pooled"],
            "coalitions": "all",
            "models": ["logistic"],
            "seeds": [0],
        }
    )
    return Workspace.build(spec, generate(spec.world.world_config(), spec.world.seed), artifacts_dir)


@pytest.fixture(scope="session")
def small_known_answer_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The ~1k-entity known-answer world (see ``KNOWN_ANSWER_WORLD``), 12 train days, 8 test days, no gap."""
    return build_workspace(KNOWN_ANSWER_WORLD, KNOWN_ANSWER_SPLIT, tmp_path_factory.mktemp("known-answer-ws"))


@pytest.fixture(scope="session")
def small_known_answer_world(small_known_answer_workspace: Workspace) -> World:
    return small_known_answer_workspace.world


@pytest.fixture(scope="session")
def small_realistic_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """1,500 persons over 90 days of the ``small`` preset, seed 2; 50 train days, a 5-day gap, 20 test days."""
    return build_workspace(SMALL_REALISTIC_WORLD, SMALL_REALISTIC_SPLIT, tmp_path_factory.mktemp("realistic-ws"))


@pytest.fixture(scope="session")
def small_realistic_world(small_realistic_workspace: Workspace) -> World:
    return small_realistic_workspace.world


@pytest.fixture(scope="session")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite MLflow store per test process: creating and migrating one costs seconds, so every test that
    tracks shares it and keeps apart by using its own experiment name."""
    folder = tmp_path_factory.getbasetemp() / "fedsim-mlflow"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"
