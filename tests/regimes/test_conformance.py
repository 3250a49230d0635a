"""Every registered regime keeps the regime contract (tests/regimes/conformance.py), on the ~1k-entity
known-answer world."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fedsim.regimes import get_regime, regime_names
from fedsim.runner import Workspace
from tests.regimes.conformance import CHECKS

FEDERATED = {name for name in regime_names() if get_regime(name).federated}


def _params() -> list[Any]:
    out: list[Any] = []
    for name in regime_names():
        marks = [pytest.mark.slow] if name in FEDERATED else []
        for check in CHECKS:
            out.append(pytest.param(name, check, id=f"{name}-{check.__name__}", marks=marks))
    return out


@pytest.mark.parametrize(("name", "check"), _params())
def test_regime_conforms(
    name: str, check: Callable[[object, Workspace], None], small_known_answer_workspace: Workspace
) -> None:
    check(get_regime(name), small_known_answer_workspace)
