"""The `reports` regime: own features, the coalition's labels, carried across only by salted key.

Conformance (tests/regimes/test_conformance.py) covers the common contract; these are its own properties,
on the small realistic world, where bank_3 receives few reports of its own (5 positive training rows).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedsim.data import known_cases, row_labels
from fedsim.regimes import get_regime
from fedsim.regimes.reports import report_traced_truth
from fedsim.rows import RunContext, ScoringUnit, TrainingSettings, silo, unit_frame
from fedsim.runner import Workspace

# the module's worlds are built once: keep its tests in one xdist worker
pytestmark = pytest.mark.xdist_group("test_reports")


def _ctx(ws: Workspace, coalition: tuple[str, ...]) -> RunContext:
    return RunContext(
        world=ws.world,
        coalition=coalition,
        model="gbt",
        seed=0,
        split=ws.split,
        training=TrainingSettings(),
        features=ws.features,
        truth=ws.truth,
    )


def _train_labels(ctx: RunContext, partner: str, truth: dict[str, pd.DataFrame], sources: tuple[str, ...]) -> Any:
    rows = ctx.features[partner].decision_rows()
    rows = rows.select((rows.ts >= ctx.split.train_start) & (rows.ts < ctx.split.train_end))
    cases = known_cases(truth, ctx.kinds, label_sources=sources, before_ts=ctx.split.train_end)
    return row_labels(partner, rows.entity, rows.ts, truth, cases)


class _NoKeys:
    """A partner whose salted keys are withheld: everything else is the real partner's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def keys(self) -> pd.DataFrame:
        k = self._inner.keys().copy()
        for c in k.columns:
            if c != "entity_id":
                k[c] = pd.array([pd.NA] * len(k), dtype="Int64")
        return k


@pytest.fixture(scope="module")
def chain(small_realistic_workspace: Workspace) -> RunContext:
    return _ctx(small_realistic_workspace, tuple(sorted(small_realistic_workspace.world.partners)))


def test_scarce_partner_learns_from_the_coalitions_reports(chain: RunContext) -> None:
    own = _train_labels(chain, "bank_3", chain.truth, ("bank_3",))
    shared = _train_labels(chain, "bank_3", report_traced_truth(chain), chain.coalition)
    assert (shared >= own).all(), "a partner's own reports must stay labels"
    assert shared.sum() >= own.sum() + 10, (own.sum(), shared.sum())


def test_only_the_key_join_carries_a_report(chain: RunContext) -> None:
    """Withhold bank_3's keys: no other partner's report can reach it, so its labels fall back to its own."""
    no_keys: Any = _NoKeys(chain.features["bank_3"])
    hidden = replace(chain, features={**chain.features, "bank_3": no_keys})
    own = _train_labels(chain, "bank_3", chain.truth, ("bank_3",))
    shared = _train_labels(hidden, "bank_3", report_traced_truth(hidden), chain.coalition)
    np.testing.assert_array_equal(shared, own)


def test_each_partner_adds_its_own_reports(chain: RunContext) -> None:
    """A pair (bank_3, X) gets bank_3's reports and X's only; the pairs' labels together are the chain's."""
    with_all = _train_labels(chain, "bank_3", report_traced_truth(chain), chain.coalition)
    union = np.zeros_like(with_all)
    for other in chain.coalition:
        if other == "bank_3":
            continue
        pair = replace(chain, coalition=("bank_3", other))
        truth = report_traced_truth(pair)
        assert set(truth["case_entities"]["partner"]) <= {"bank_3", other}
        labels = _train_labels(pair, "bank_3", truth, pair.coalition)
        assert (labels <= with_all).all(), other
        union |= labels
    np.testing.assert_array_equal(union, with_all)


def test_reports_never_uses_another_partners_features(chain: RunContext) -> None:
    """Same columns and values as the silo: no joined features and no shared watchlist."""
    shared = replace(chain, truth=report_traced_truth(chain))
    window = (chain.split.test_start, chain.split.test_end)
    for p in chain.coalition:
        X_silo, _ = unit_frame(chain, silo(p), window, labels_before=chain.split.train_end, train=False)
        unit = ScoringUnit(home=(p,), context_from=(), watchlist_from=(p,), label_sources=chain.coalition)
        X_rep, _ = unit_frame(shared, unit, window, labels_before=chain.split.train_end, train=False)
        assert list(X_rep.columns) == list(X_silo.columns), p
        foreign = {f"{chain.features[o].block}__" for o in chain.coalition} - {f"{chain.features[p].block}__"}
        assert not [c for c in X_rep.columns if c.startswith(tuple(foreign))], p
        pd.testing.assert_frame_equal(X_rep, X_silo)


def test_run_trains_on_more_reported_fraud_than_the_silo(small_realistic_workspace: Workspace) -> None:
    ws = small_realistic_workspace
    ctx = replace(_ctx(ws, ("bank_1", "bank_2", "bank_3")), model="logistic")
    reports = get_regime("reports").run(ctx)
    siloed = get_regime("siloed").run(ctx)
    assert reports.metrics["train_positives.bank_3"] > siloed.metrics["train_positives.bank_3"]
    assert reports.params["sharing"].startswith("fraud reports")
    assert get_regime("reports").admits(("bank_1",), ctx.kinds) is not None
