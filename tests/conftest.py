"""Fixtures shared by the whole suite: small real worlds (no mocks) and the MLflow test store.

Every world fixture is session-scoped: it is generated once per test process (once per xdist worker under
``make test``) and must be treated as read-only. A test that needs a different world builds its own with
:func:`tests.worlds.build_workspace`; a test that mutates a world copies it first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One core per xdist worker. Otherwise OpenMP (scikit-learn's gradient boosting) starts a thread per core in
    # each of the two workers, and its spinning threads oversubscribed 2:1 made the null-comparison fixture 9x
    # slower inside the suite than alone (908 s against 104 s). Set before anything loads OpenMP; subprocesses
    # (the CLI tests, Flower's Ray actors) inherit it.
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

from tests.worlds import (
    CLOSED_FORM_SPLIT,
    CLOSED_FORM_WORLD,
    KNOWN_ANSWER_SPLIT,
    KNOWN_ANSWER_WORLD,
    SMALL_REALISTIC_SPLIT,
    SMALL_REALISTIC_WORLD,
    build_workspace,
)

if TYPE_CHECKING:
    from fedsim.runner import Workspace
    from synthetic.world_data import World


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
def closed_form_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The 16k-person known-answer world (see ``CLOSED_FORM_WORLD``), 8 train days, 8 test days, no gap: the
    closed-form tests (tests/fedsim/test_regimes_known_answer.py, tests/test_convergence.py) share it."""
    return build_workspace(CLOSED_FORM_WORLD, CLOSED_FORM_SPLIT, tmp_path_factory.mktemp("closed-form-ws"))


@pytest.fixture(scope="session")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite MLflow store per test process: creating and migrating one costs seconds, so every test that
    tracks shares it and keeps apart by using its own experiment name."""
    folder = tmp_path_factory.getbasetemp() / "fedsim-mlflow"
    folder.mkdir(exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"
