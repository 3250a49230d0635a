"""Checks every registered regime must pass, in the spirit of scikit-learn's ``parametrize_with_checks``.

Each check takes a regime and a workspace (a real world: no mocks) and runs the regime the way ``fedsim run``
does: experiment spec → grid cell (:func:`fedsim.experiment.expand`) → run context
(:meth:`fedsim.runner.Workspace.context`) → ``regime.run``. Federated regimes run one round in process (the
same partner code as under Flower, without Ray), so the whole set stays fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from fedsim.errors import FedsimError
from fedsim.evaluation.privacy_audit import leakage_register
from fedsim.experiment import RunSpec, expand, parse_experiment
from fedsim.regimes import Regime, RegimeResult, RunContext
from fedsim.runner import Workspace
from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

DAY = 86_400


def kinds_of(ws: Workspace) -> dict[str, str]:
    return {p: f.block for p, f in ws.features.items()}


def candidate_coalitions(ws: Workspace, *, max_size: int = 3) -> list[tuple[str, ...]]:
    """Every coalition of up to ``max_size`` real partners (the placebo is left out), smallest first."""
    partners = sorted(p for p in ws.features if p != "placebo")
    return [c for n in range(1, max_size + 1) for c in itertools.combinations(partners, n)]


def cell_for(regime: Regime, ws: Workspace, *, seed: int = 0) -> RunSpec:
    """The first grid cell of ``regime`` on the known-answer world (smallest admitted coalition of 2+)."""
    kinds = kinds_of(ws)
    admitted = [c for c in candidate_coalitions(ws) if len(c) >= 2 and regime.admits(c, kinds) is None]
    assert admitted, f"{regime.name}: admits no coalition of up to 3 partners of the known-answer world"
    spec = parse_experiment(
        {
            "name": "conformance",
            "world": KNOWN_ANSWER_WORLD,
            "split": KNOWN_ANSWER_SPLIT,
            "regimes": [regime.name],
            "coalitions": [list(admitted[0])],
            "models": ["logistic"],
            "seeds": [seed],
            "training": {"epochs": 1},
            "federation": {"rounds": 1, "engine": "in_process", "embedding_dim": 2},
            "metrics": {"bootstrap": 10},
        }
    )
    cells = expand(spec, list(ws.features), kinds=kinds)
    assert cells, f"{regime.name}: the grid has no cell for the admitted coalition {admitted[0]}"
    return cells[0]


def run_cell(regime: Regime, ws: Workspace, *, seed: int = 0) -> tuple[RunSpec, RegimeResult]:
    cell = cell_for(regime, ws, seed=seed)
    return cell, regime.run(ws.context(cell))


# ------------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------------
def check_scores_only_the_test_window(regime: Regime, ws: Workspace) -> None:
    cell, result = run_cell(regime, ws)
    s = result.scores
    assert len(s) > 0, f"{regime.name}: no scores"
    assert {"partner", "entity_id", "day", "decision_ts", "score"} <= set(s.columns)
    ts = s["decision_ts"].to_numpy()
    assert ((ts >= ws.split.test_start) & (ts < ws.split.test_end)).all(), f"{regime.name}: scores outside test"
    assert (s["day"].to_numpy() == ts // DAY).all()
    assert set(s["partner"]) <= set(cell.coalition), f"{regime.name}: scores partners outside its coalition"
    assert np.isfinite(s["score"].to_numpy(float)).all()


def check_one_row_per_partner_entity_day(regime: Regime, ws: Workspace) -> None:
    _, result = run_cell(regime, ws)
    assert not result.scores.duplicated(["partner", "entity_id", "day"]).any()


def check_same_seed_same_scores(regime: Regime, ws: Workspace) -> None:
    _, first = run_cell(regime, ws, seed=1)
    _, again = run_cell(regime, ws, seed=1)
    key = ["partner", "entity_id", "day"]
    a, b = first.scores.sort_values(key).reset_index(drop=True), again.scores.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def check_logs_what_it_shares(regime: Regime, ws: Workspace) -> None:
    _, result = run_cell(regime, ws)
    assert isinstance(result.params.get("sharing"), str) and result.params["sharing"].strip(), (
        f"{regime.name}: params lack a 'sharing' sentence saying what crosses a partner's boundary"
    )


def check_has_leakage_register_rows(regime: Regime, ws: Workspace) -> None:
    assert regime.leakage, f"{regime.name}: no rows in the leakage register"
    reg = leakage_register()
    rows = reg[reg["regime"] == regime.name]
    assert len(rows) == len(regime.leakage)
    assert not rows.isna().any().any() and (rows["learns"].str.len() > 0).all()


def check_refuses_a_coalition_before_any_work(regime: Regime, ws: Workspace) -> None:
    kinds = kinds_of(ws)
    refused = [c for c in candidate_coalitions(ws) if regime.admits(c, kinds) is not None]
    if not refused:
        pytest.skip(f"{regime.name} admits every coalition")
    coalition = refused[0]
    calls: list[RunContext] = []
    ctx = replace(ws.context(cell_for(regime, ws)), coalition=coalition)
    original = regime.score

    def recording(c: RunContext) -> RegimeResult:
        calls.append(c)
        return original(c)

    regime.score = recording  # type: ignore[method-assign, assignment]
    try:
        with pytest.raises(FedsimError) as err:
            regime.run(ctx)
    finally:
        del regime.score
    assert not calls, f"{regime.name}: started work on a coalition it does not admit"
    message = str(err.value)
    assert regime.name in message and "+".join(coalition) in message, message


def check_settings_are_frozen_documented_and_defaulted(regime: Regime, ws: Workspace) -> None:
    """A regime's settings model (experiment files' ``regime_settings``) is frozen, refuses unknown keys, and
    every field has a description and a default, so an experiment without the section still runs."""
    model = regime.settings_model
    if model is None:
        pytest.skip(f"{regime.name} has no settings")
    assert model.model_config.get("frozen") and model.model_config.get("extra") == "forbid", regime.name
    for name, info in model.model_fields.items():
        assert info.description, f"{regime.name}: setting {name} has no description"
        assert not info.is_required(), f"{regime.name}: setting {name} has no default"
    model()  # the defaults validate


CHECKS: tuple[Callable[[Regime, Workspace], None], ...] = (
    check_has_leakage_register_rows,
    check_settings_are_frozen_documented_and_defaulted,
    check_refuses_a_coalition_before_any_work,
    check_scores_only_the_test_window,
    check_one_row_per_partner_entity_day,
    check_logs_what_it_shares,
    check_same_seed_same_scores,
)
