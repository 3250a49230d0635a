"""Modus-operandi alerts: identifier-free descriptions of ≥ min_count reported cases, used by the others' models.

Conformance (tests/regimes/test_conformance.py) covers the common contract; these are the regime's own
properties on the small realistic world, where each partner has only 1-3 reported cases per group in the
training window: the default minimum count (10) releases nothing there, a count of 2 releases a few groups.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from fedsim.evaluation.labels import case_windows, positive_pairs
from fedsim.experiment import expand, parse_experiment
from fedsim.federation.boundary import identifier_values
from fedsim.regimes import get_regime
from fedsim.regimes.base import run_units
from fedsim.regimes.mo_alerts import MIN_COUNT, Description, MoAlerts, MoAlertsSettings, positive_groups, release
from fedsim.rows import RunContext, TrainingSettings, silo, unit_frame
from fedsim.runner import Workspace
from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

pytestmark = pytest.mark.xdist_group("test_mo_alerts")
KEY = ["partner", "entity_id", "day"]


BANKS = ("bank_1", "bank_2", "bank_3")


@pytest.fixture(scope="module")
def chain(small_realistic_workspace: Workspace) -> RunContext:
    ws = small_realistic_workspace
    return RunContext(
        world=ws.world,
        coalition=tuple(sorted(ws.world.partners)),
        model="gbt",
        seed=0,
        split=ws.split,
        training=TrainingSettings(),
        features=ws.features,
        truth=ws.truth,
    )


def _sorted(s: pd.DataFrame) -> pd.DataFrame:
    return s.sort_values(KEY).reset_index(drop=True)


def test_registered_with_the_default_minimum_count() -> None:
    regime = get_regime("mo_alerts")
    assert isinstance(regime, MoAlerts) and regime.min_count == MIN_COUNT == 10
    assert any(f"{MIN_COUNT}" in row.limited_by for row in regime.leakage)
    with pytest.raises(ValueError):
        MoAlerts(min_count=0)


@pytest.mark.parametrize("min_count", [1, 1_000])
def test_min_count_from_the_experiment_reaches_the_regime(
    min_count: int, small_known_answer_workspace: Workspace
) -> None:
    """experiment file → grid cell → run context → regime: the count set in regime_settings is the one applied
    (on the ~1k-entity known-answer world every partner has a group of ≥ 1 reported case, none of 1,000)."""
    ws = small_known_answer_workspace
    spec = parse_experiment(
        {
            "name": "mo-count",
            "world": KNOWN_ANSWER_WORLD,
            "split": KNOWN_ANSWER_SPLIT,
            "regimes": ["mo_alerts"],
            "models": ["logistic"],
            "seeds": [0],
            "training": {"epochs": 1},
            "regime_settings": {"mo_alerts": {"min_count": min_count}},
        }
    )
    (cell,) = expand(spec, list(ws.features))
    ctx = ws.context(cell)
    assert ctx.settings(MoAlertsSettings).min_count == min_count

    result = get_regime("mo_alerts").run(ctx)

    assert result.params["mo_min_count"] == min_count
    released = [v for k, v in result.metrics.items() if k.startswith("mo_released.")]
    assert len(released) == len(ctx.coalition)
    assert all(v > 0 for v in released) if min_count == 1 else all(v == 0 for v in released)


def test_settings_of_another_regime_are_refused_by_the_context(chain: RunContext) -> None:
    class Other(MoAlertsSettings):
        pass

    ctx = dataclasses.replace(chain, regime_settings=Other(min_count=3))
    assert ctx.settings(Other).min_count == 3
    assert dataclasses.replace(chain, regime_settings=None).settings(MoAlertsSettings).min_count == MIN_COUNT
    with pytest.raises(TypeError, match="not Other"):
        dataclasses.replace(chain, regime_settings=MoAlertsSettings()).settings(Other)


def test_below_the_minimum_count_nothing_is_released_and_scores_equal_the_silos(chain: RunContext) -> None:
    assert all(not release(chain, p, MIN_COUNT) for p in chain.coalition)
    banks = dataclasses.replace(chain, coalition=BANKS)  # the three banks: the cheapest coalition that could share
    result = MoAlerts().run(banks)
    baseline = run_units(banks, [silo(p) for p in BANKS], {})
    pd.testing.assert_frame_equal(_sorted(result.scores), _sorted(baseline.scores))
    assert all(v == 0 for k, v in result.metrics.items() if k.startswith("mo_re"))


def test_groups_below_the_count_stay_home(chain: RunContext) -> None:
    """Every released group has ≥ min_count distinct reported cases, and every such group is released."""
    for p in chain.coalition:
        X, idx = unit_frame(
            chain,
            silo(p),
            (chain.split.train_start, chain.split.train_end),
            labels_before=chain.split.train_end,
            train=True,
        )
        counts = positive_groups(chain, p, idx).groupby(["fraud_type", "role"])["case_id"].nunique()
        released = {(d.fraud_type, d.role): d.cases for d in release(chain, p, 2)}
        assert released == {k: int(v) for k, v in counts.items() if v >= 2}


def _numbers(d: Description) -> np.ndarray:
    return np.array([*d.mean.values(), *d.sd.values(), *d.hour_share, d.cases], dtype=float)


def test_released_descriptions_hold_no_identifier(chain: RunContext) -> None:
    released = [d for p in chain.coalition for d in release(chain, p, 2)]
    assert len(released) >= 3, "a count of 2 must release some groups on this world"
    # identifiers: every salted key (phone, e-mail, IBAN hashes) of every partner, and the counterparties'
    key_frames = [f.keys().drop(columns="entity_id") for f in chain.features.values()]
    events = [f.decision_rows().event for f in chain.features.values()]
    hashes = identifier_values(key_frames + [e[[c for c in ("cp_iban_hash", "other_hash") if c in e]] for e in events])
    assert hashes.size > 1000
    entity_ids = np.concatenate([f.entities for f in chain.features.values()])
    for d in released:
        values = _numbers(d)
        assert not np.isin(values, hashes.astype(float)).any(), d.text()
        # an entity id could only hide in a value that is a whole number larger than any count or day share
        big_whole = values[(values == np.round(values)) & (values > max(d.cases, 1))]
        assert not np.isin(big_whole, entity_ids).any(), (d.text(), big_whole)
        assert not any("hash" in c or c.endswith("entity_id") for c in d.mean), sorted(d.mean)
        assert len(d.hour_share) == 24 and abs(sum(d.hour_share) - 1) < 1e-9
        text_fields = [v for f in dataclasses.fields(d) if isinstance(v := getattr(d, f.name), str)]
        assert all(not v.isdigit() for v in text_fields)


def _ap(scores: pd.DataFrame, chain: RunContext, partner: str) -> float:
    s = scores[scores["partner"] == partner].reset_index(drop=True)
    pairs = positive_pairs(
        s, chain.truth["case_entities"], case_windows(chain.truth["cases"], chain.truth["money_outs"])
    )
    y = np.zeros(len(s), dtype=int)
    y[pairs["row"].to_numpy()] = 1
    return float(average_precision_score(y, s["score"].to_numpy())) if y.any() else float("nan")


@pytest.mark.slow  # 4 runs of three bank models: minutes on a shared 2-core machine
def test_receivers_ap_is_not_below_status_quo_beyond_noise(chain: RunContext) -> None:
    """With a count of 2, each bank receives the other banks' helpdesk-victim profiles; its AP must not fall
    below its silo model's by more than the noise of this tiny world (0.05 on average over banks and 2 seeds)."""
    regime = MoAlerts(min_count=2)
    gaps = []
    for seed in (0, 1):
        ctx = dataclasses.replace(chain, seed=seed, coalition=BANKS)
        mo = regime.run(ctx)
        base = run_units(ctx, [silo(p) for p in BANKS], {})
        receivers = [p for p in BANKS if mo.metrics[f"mo_received.{p}"] > 0]
        assert receivers == list(BANKS)
        gaps += [_ap(mo.scores, ctx, p) - _ap(base.scores, ctx, p) for p in receivers]
    gaps_arr = np.array([g for g in gaps if np.isfinite(g)])
    assert gaps_arr.size and gaps_arr.mean() > -0.05, gaps
