"""The rules baseline (E0): readable rules on as-of features, thresholds from the training window only.

Conformance (tests/regimes/test_conformance.py) covers the common regime contract; these are the rules'
own properties, on the small realistic world and on planted frames.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fedsim.features import PartnerFeatures
from fedsim.regimes import get_regime
from fedsim.regimes.rules import tune_partner
from fedsim.rows import RunContext, TrainingSettings, silo, unit_frame
from fedsim.rules import BANK_RULES, MAX_FIRE_SHARE, RULES, rule_book_for, tune
from fedsim.runner import Workspace
from synthetic.world import PartnerView

pytestmark = pytest.mark.xdist_group("test_rules")


def _ctx(ws: Workspace, features: dict[str, PartnerFeatures] | None = None) -> RunContext:
    return RunContext(
        world=ws.world,
        coalition=tuple(sorted(ws.world.partners)),
        model="gbt",
        seed=0,
        split=ws.split,
        training=TrainingSettings(),
        features=features or ws.features,
        truth=ws.truth,
    )


def _perturb_after(view: PartnerView, t: int) -> PartnerView:
    """bank tables with every transaction at or after ``t`` ten times larger and every later session remote."""
    tables = dict(view.tables)
    tr = tables["transactions"]
    later = pc.greater_equal(tr.column("ts"), t)
    amount = pc.if_else(later, pc.multiply(tr.column("amount_eur"), 10.0), tr.column("amount_eur"))
    tables["transactions"] = tr.set_column(tr.schema.get_field_index("amount_eur"), "amount_eur", amount)
    se = tables["sessions"]
    rat = pc.or_(se.column("remote_access_tool"), pc.greater_equal(se.column("ts"), t))
    tables["sessions"] = se.set_column(se.schema.get_field_index("remote_access_tool"), "remote_access_tool", rat)
    assert isinstance(tables["transactions"], pa.Table)
    return PartnerView(view.name, view.kind, tables)


def test_every_rule_reads_an_existing_as_of_feature(small_realistic_workspace: Workspace) -> None:
    """A rule's columns are columns of the partner's model frame, i.e. as-of features the truncation check covers."""
    ctx = _ctx(small_realistic_workspace)
    for p in ctx.coalition:
        X, _ = unit_frame(ctx, silo(p), (ctx.split.test_start, ctx.split.test_end), labels_before=0, train=False)
        for rule in rule_book_for(ctx.kinds[p], ctx.features[p].block):
            missing = [c.column for c in rule.conditions if c.column not in X]
            assert not missing, f"{p}: rule {rule.name} reads columns no feature provides: {missing}"


def test_thresholds_depend_only_on_training_rows(small_realistic_workspace: Workspace) -> None:
    ws = small_realistic_workspace
    ctx = _ctx(ws)
    view = ws.world.partners["bank_1"]
    changed = PartnerFeatures.for_view(_perturb_after(view, ws.split.test_start))
    perturbed = _ctx(ws, {**ws.features, "bank_1": changed})
    before, after = tune_partner(ctx, "bank_1"), tune_partner(perturbed, "bank_1")
    assert before.text() == after.text()
    assert [t.thresholds for t in before.rules] == [t.thresholds for t in after.rules]
    # the perturbation is real: the test-window rows the rules score did change
    window = (ws.split.test_start, ws.split.test_end)
    Xa, _ = unit_frame(ctx, silo("bank_1"), window, labels_before=ws.split.train_end, train=False)
    Xb, _ = unit_frame(perturbed, silo("bank_1"), window, labels_before=ws.split.train_end, train=False)
    assert not np.allclose(Xa["ev_amount"].to_numpy(), Xb["ev_amount"].to_numpy())
    assert not np.array_equal(before.score(Xa), before.score(Xb))


def _planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Payments where fraud = a new payee with a large amount after a remote-access session; the rest is noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "ev_new_payee": (rng.random(n) < 0.1).astype(float),
            "ev_amount": rng.lognormal(4, 1, n),
            "bank__remote_access_1h": np.zeros(n),
            "bank__own_transfer_sum_1h": np.where(rng.random(n) < 0.02, rng.lognormal(5, 1, n), 0.0),
        }
    )
    y = np.zeros(n, dtype=int)
    fraud = rng.choice(n, n // 50, replace=False)
    y[fraud] = 1
    X.loc[fraud, "ev_new_payee"] = 1.0
    X.loc[fraud, "ev_amount"] = rng.uniform(3000, 6000, len(fraud))
    X.loc[fraud, "bank__remote_access_1h"] = 1.0
    return X, y


def test_a_planted_pattern_scores_above_the_rest() -> None:
    X, y = _planted(5000, seed=1)
    book = tune(rule_book_for("bank", "bank"), X, y, np.ones(len(y)))
    by_name = {t.rule.name: t for t in book.rules}
    assert by_name["remote_access_tool"].precision == pytest.approx(1.0)
    high = by_name["high_amount"]  # fraud pays 3,000-6,000; legitimate payments are mostly below 1,000
    assert high.precision >= 0.9 and high.recall >= 0.5, high
    Xt, yt = _planted(2000, seed=2)
    s = book.score(Xt)
    assert s[yt == 1].min() > s[yt == 0].max()
    assert (book.fired(Xt)["remote_access_tool"].to_numpy() == (yt == 1)).all()


def test_no_tuned_rule_fires_on_most_training_rows() -> None:
    """A mostly-zero column still gets a threshold that flags few rows (not '≥ 0', which fires everywhere)."""
    X, y = _planted(5000, seed=3)
    book = tune(rule_book_for("bank", "bank"), X, y, np.ones(len(y)))
    for t in book.rules:
        if any(c.threshold is None for c in t.rule.conditions):
            assert t.fired_share <= MAX_FIRE_SHARE, t.text()


def test_without_reports_rules_stay_strict_and_score_one_point() -> None:
    X, y = _planted(2000, seed=4)
    book = tune(BANK_RULES, X, np.zeros_like(y), np.ones(len(y)))
    assert book.notes and all(t.points == 1 for t in book.rules)
    high = next(t for t in book.rules if t.rule.name == "high_amount")
    assert high.fired_share <= 0.01


def test_regime_logs_rules_thresholds_and_firings(small_realistic_workspace: Workspace) -> None:
    ctx = _ctx(small_realistic_workspace)
    result = get_regime("rules").run(ctx)
    for p in ctx.world.partners:
        text = result.params[f"rules.{p}"]
        for rule in RULES[ctx.kinds[p]]:
            assert f"{rule.name}:" in text
            assert f"rule_fired_test.{p}.{rule.name}" in result.metrics
    assert "≥" in result.params["rules.bank_1"] and "pts" in result.params["rules.bank_1"]
    s = result.scores
    assert set(s["partner"]) == set(ctx.world.partners)
    assert (s["score"] > 0).any() and (s["score"] == 0).any()
