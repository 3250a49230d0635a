"""A run whose split has a second test window logs that window's case alerts (`case_alerts_second`), evaluated
on the regime's second-window scores — what `fedsim adapt` reads to follow detection past a barrier."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fedsim.experiment import expand
from fedsim.regimes import get_regime
from tests.worlds import KNOWN_ANSWER_WORLD, build_workspace


def test_second_window_case_alerts_are_logged_and_differ_from_the_first(tmp_path: Path) -> None:
    split = {"train_days": 10, "gap_days": 0, "test_days": 5, "second_test_days": 5}
    ws = build_workspace(KNOWN_ANSWER_WORLD, split, tmp_path)
    cell = expand(ws.spec, list(ws.features))[0]  # pooled, logistic
    result = get_regime(cell.regime).run(ws.context(cell))
    assert result.second_scores is not None
    run = ws.package(cell, result)
    first = pd.read_parquet(run.artifacts["case_alerts"])
    second = pd.read_parquet(run.artifacts["case_alerts_second"])
    assert len(second) > 0
    # each window evaluates its own cases: none is in both
    assert set(first["case_id"]).isdisjoint(set(second["case_id"]))
    test_start, test_end = ws.split.second_test  # type: ignore[misc]
    assert (second["t_alert"].dropna() >= test_start).all() and (second["t_alert"].dropna() < test_end).all()


def test_a_run_without_a_second_window_logs_none(tmp_path: Path) -> None:
    split = {"train_days": 12, "gap_days": 0, "test_days": 8}
    ws = build_workspace(KNOWN_ANSWER_WORLD, split, tmp_path)
    cell = expand(ws.spec, list(ws.features))[0]
    run = ws.package(cell, get_regime(cell.regime).run(ws.context(cell)))
    assert "case_alerts_second" not in run.artifacts
