"""A regime defined here, in the test module, runs through grid expansion, ``fedsim run`` and the conformance
checks without any edit under fedsim/: the registry is the only place a regime is declared."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from fedsim.errors import FedsimError
from fedsim.evaluation.privacy_audit import leakage_register
from fedsim.experiment import ExperimentError, expand, parse_experiment
from fedsim.regimes import LeakageRow, Regime, RegimeResult, RunContext, register_regime, unregister_regime
from fedsim.regimes.base import ScoringUnit, run_units
from fedsim.runner import Workspace, run_experiment
from fedsim.settings import FederationSettings
from fedsim.tracking import Tracker
from tests.regimes.conformance import CHECKS
from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

NAME = "label_sharing_test"


class LabelSharing(Regime):
    """Each partner scores its own rows with its own features, but learns from every coalition partner's
    reports (labels cross the boundary, features do not). Needs a bank in the coalition."""

    name = NAME
    leakage = (LeakageRow("each partner", "which of its customers another partner reported as fraud", "—"),)

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        if "bank" in {kinds[p] for p in coalition}:
            return None
        return f"regime {NAME}, coalition = {'+'.join(coalition)}: needs a bank"

    def score(self, ctx: RunContext) -> RegimeResult:
        units = [
            ScoringUnit(home=(p,), context_from=(), watchlist_from=(p,), label_sources=ctx.coalition)
            for p in ctx.coalition
        ]
        return run_units(ctx, units, {"sharing": "reported-fraud labels of the coalition"})


@pytest.fixture
def registered() -> Iterator[Regime]:
    regime = register_regime(LabelSharing)
    yield regime
    unregister_regime(NAME)


def _experiment(**extra: object) -> dict[str, object]:
    return {
        "name": "custom-regime",
        "world": KNOWN_ANSWER_WORLD,
        "split": KNOWN_ANSWER_SPLIT,
        "regimes": [NAME],
        "coalitions": [["bank_1", "telco"], ["telco", "marketplace"]],
        "models": ["logistic", "gbt"],
        "seeds": [0],
        "training": {"epochs": 1},
        "metrics": {"bootstrap": 10},
        **extra,
    }


def test_an_unregistered_name_is_refused_with_the_registered_names() -> None:
    with pytest.raises(
        ExperimentError, match=rf"regimes\[0\] = '{NAME}': not a registered regime; allowed: .*'pooled'"
    ):
        parse_experiment(_experiment())


def test_grid_expansion_follows_the_regime_rules(registered: Regime, small_known_answer_workspace: Workspace) -> None:
    ws = small_known_answer_workspace
    kinds = {p: f.block for p, f in ws.features.items()}
    cells = expand(parse_experiment(_experiment()), list(ws.features), kinds=kinds)

    # telco+marketplace has no bank: not admitted; gbt allowed (not federated); one seed
    assert {(c.regime, c.coalition, c.model) for c in cells} == {
        (NAME, ("bank_1", "telco"), "logistic"),
        (NAME, ("bank_1", "telco"), "gbt"),
    }
    assert all(c.federation is None for c in cells)
    assert NAME in set(leakage_register()["regime"])
    refused = replace(ws.context(cells[0]), coalition=("telco", "marketplace"))
    with pytest.raises(FedsimError, match=rf"{NAME}, coalition = telco\+marketplace: needs a bank"):
        registered.run(refused)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_it_passes_the_conformance_checks(
    check: Callable[[Regime, Workspace], None], registered: Regime, small_known_answer_workspace: Workspace
) -> None:
    check(registered, small_known_answer_workspace)


@pytest.mark.slow
def test_it_runs_through_fedsim_run(registered: Regime, tmp_path: Path, store_uri: str) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(_experiment(models=["logistic"])))

    summary = run_experiment(path, tracking_uri=store_uri, workdir=tmp_path / "work", progress=False)

    assert (summary.executed, summary.reused) == (1, 0)
    again = run_experiment(path, tracking_uri=store_uri, workdir=tmp_path / "work", progress=False)
    assert (again.executed, again.reused) == (0, 1) and again.run_ids == summary.run_ids
    tracker = Tracker(store_uri, "custom-regime")
    params = tracker.client.get_run(summary.run_ids[0]).data.params
    assert params["sharing"] == "reported-fraud labels of the coalition"
