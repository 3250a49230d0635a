"""On the known-answer world the measured value of sharing matches the closed form (world.md §7)."""

from __future__ import annotations

import pytest

from fedsim.evaluation import compare, evaluate
from fedsim.runner import Workspace
from synthetic.known_answer import coalition_optimal_auc
from tests.fedsim.helpers_fedsim import oracle_scores, run_regime

# the module's worlds are built once: keep its tests in one xdist worker
pytestmark = pytest.mark.xdist_group("test_regimes_known_answer")

BANKS = ["bank_1", "bank_2", "bank_3"]
CHAIN = [*BANKS, "telco", "marketplace"]


@pytest.fixture(scope="module")
def ws(closed_form_workspace: Workspace) -> Workspace:
    return closed_form_workspace


def _eval(ws, scores, level=0.99):  # type: ignore[no-untyped-def]
    return evaluate(
        scores,
        ws.truth,
        partner_sizes=ws.partner_sizes,
        ci_level=level,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        n_boot=300,
    )


@pytest.mark.slow
def test_pooled_reaches_the_closed_form_and_no_more(ws) -> None:  # type: ignore[no-untyped-def]
    scores = run_regime(ws, "pooled", CHAIN).scores
    ev = _eval(ws, scores[scores["partner"].str.startswith("bank")])
    optimum = coalition_optimal_auc(ws.world.config, CHAIN)
    lo, hi = ev.value("roc_auc", column="lo"), ev.value("roc_auc", column="hi")
    assert lo <= optimum <= hi, f"pooled AUC 99% CI [{lo:.3f}, {hi:.3f}] misses the closed form {optimum:.3f}"
    # On the very same rows the Bayes-optimal score sets the ceiling: the model reaches it, never beats it
    # (beating it would mean a leak; falling short, a loss in the features/join/training path).
    oracle = _eval(ws, oracle_scores(ws, CHAIN)).value("roc_auc")
    assert abs(ev.value("roc_auc") - oracle) < 0.01, (ev.value("roc_auc"), oracle)


@pytest.mark.slow
@pytest.mark.parametrize("silo", ["bank_1", "telco"])
def test_each_silo_matches_its_own_closed_form(ws, silo: str) -> None:  # type: ignore[no-untyped-def]
    scores = run_regime(ws, "siloed", [silo]).scores
    ev = _eval(ws, scores)
    optimum = coalition_optimal_auc(ws.world.config, [silo])
    lo, hi = ev.value("roc_auc", column="lo"), ev.value("roc_auc", column="hi")
    assert lo <= optimum <= hi, f"{silo}: AUC 99% CI [{lo:.3f}, {hi:.3f}] vs closed form {optimum:.3f}"


@pytest.mark.slow
def test_placebo_partner_adds_no_value(ws) -> None:  # type: ignore[no-untyped-def]
    without = run_regime(ws, "pooled", [*BANKS, "telco"]).scores
    with_placebo = run_regime(ws, "pooled", [*BANKS, "telco", "placebo"]).scores
    banks_only = lambda s: s[s["partner"].str.startswith("bank")]  # noqa: E731
    cmp = compare(
        banks_only(with_placebo),
        banks_only(without),
        ws.truth,
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        n_boot=300,
    )
    for metric in ("roc_auc", "ap"):
        lo, hi = cmp.value(metric, column="lo"), cmp.value(metric, column="hi")
        # No value: the gain's CI never lies above 0 (that would be a leak), and any effect is negligible
        # (an uninformative input can only cost a little estimation noise).
        assert lo <= 0.0, f"placebo adds {metric}: difference CI [{lo:.4f}, {hi:.4f}]"
        assert abs(cmp.value(metric)) < 0.01, f"placebo moves {metric} by {cmp.value(metric):.4f}"
    # ...while a real partner does add value: the telco's gain has a CI above zero.
    banks_alone = run_regime(ws, "pooled", BANKS).scores
    gain = compare(
        banks_only(without),
        banks_only(banks_alone),
        ws.truth,
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        n_boot=300,
    )
    assert gain.value("roc_auc", column="lo") > 0
