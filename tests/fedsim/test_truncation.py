"""No look-ahead, checked generally: every feature at t is the same when the tables are cut back to t.

The check (fedsim.truncation) rebuilds each partner's tables from what existed at t — entities, events,
and fields known only later censored — so it covers features nobody listed. It must pass for every
partner kind and must catch planted look-ahead features, including the two this check first found.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from fedsim.features import DAY, BankFeatures, PartnerFeatures, TelcoFeatures, _dense
from fedsim.truncation import as_of, check_truncation, sample_times
from synthetic.config import build_config
from synthetic.world import PartnerView, World, generate

# the module's worlds are built once: keep its tests in one xdist worker
pytestmark = pytest.mark.xdist_group("test_truncation")

TIMES_PER_PARTNER = 14


@pytest.fixture(scope="module")
def world() -> World:
    return generate(build_config(preset="small", overrides={"population": {"persons": 3000, "days": 60}}), 3)


@pytest.fixture(scope="module")
def known_answer_world() -> World:
    config = build_config(preset="known-answer", overrides={"known_answer": {"entities": 3000, "days": 14}})
    return generate(config, 1)


def _times(world: World, partner: str, roles: tuple[str, ...] = ("victim", "mule", "fraudster")) -> np.ndarray:
    """Sampled decision times: half at rows of entities that take part in a case (in the given roles)."""
    rows = PartnerFeatures.for_view(world.partners[partner]).decision_rows()
    ce = world.truth_table("case_entities")
    focus = ce.loc[(ce["partner"] == partner) & ce["role"].isin(roles), "entity_id"].to_numpy()
    return sample_times(rows.ts, rows.entity, focus, n=TIMES_PER_PARTNER, seed=0)


@pytest.mark.parametrize("kind", ["bank", "telco", "marketplace"])
def test_every_feature_is_unchanged_when_the_tables_stop_at_t(world: World, kind: str) -> None:
    for partner in world.partner_names(kind):
        times = _times(world, partner)
        assert len(times) >= TIMES_PER_PARTNER // 2
        mismatches = check_truncation(world.partners[partner], times)
        assert not mismatches, f"look-ahead in {sorted({m.column for m in mismatches})}: {mismatches[:3]}"


def test_signal_partners_pass_the_truncation_check(known_answer_world: World) -> None:
    for partner in known_answer_world.partner_names("signals"):
        view = known_answer_world.partners[partner]
        rows = PartnerFeatures.for_view(view).decision_rows()
        times = sample_times(rows.ts, rows.entity, np.zeros(0, np.int64), n=TIMES_PER_PARTNER, seed=0)
        assert not check_truncation(view, times)


def test_as_of_keeps_only_what_existed_and_censors_later_facts(world: World) -> None:
    calls = world.table("telco", "calls")
    long_call = calls[calls["ts"] > 30 * DAY].sort_values("duration_s").iloc[-1]
    t = int(long_call["ts"]) + 1  # that call is running at t
    bank = as_of(world.partners["bank_1"], t)
    assert (bank.tables["accounts"].column("opened_ts").to_numpy() <= t).all()
    assert (bank.tables["transactions"].column("ts").to_numpy() <= t).all()
    assert bank.tables["transactions"].num_rows < world.partners["bank_1"].tables["transactions"].num_rows
    calls = as_of(world.partners["telco"], t).tables["calls"].to_pandas()
    running = calls["ts"] + calls["duration_s"] > t
    assert running.any() and (calls.loc[running, "duration_s"] > 10**8).all()
    full = world.table("marketplace", "orders").set_index("order_id")
    cut = as_of(world.partners["marketplace"], t).tables["orders"].to_pandas().set_index("order_id")
    pending = full.index[(full["ts"] <= t) & (full["delivered_ts"] > t)]
    assert len(pending) and cut.loc[pending, "delivered_ts"].isna().all()
    assert cut["delivered_ts"].dropna().le(t).all() and cut["shipping_label_ts"].dropna().le(t).all()


# ---------------------------------------------------------------------------------------------------
# Planted look-ahead: the check must find it
# ---------------------------------------------------------------------------------------------------
class _NextDayPayments(BankFeatures):
    """Planted: counts the customer's payments in the 24 h *after* t."""

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        f = super()._context(entity, ts)
        f["bank__out_n_next_24h"] = self.out_idx.count(_dense(entity, self.entities), ts + DAY, DAY)
        return f


class _NewestAccountEver(BankFeatures):
    """The bug the check first found: newest account age over *all* the customer's accounts, later ones too."""

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        f = super()._context(entity, ts)
        newest = pd.Series(self._a_opened).groupby(self._a_cust).max().reindex(entity).to_numpy(dtype=float)
        f["bank__newest_account_age_d"] = (ts - newest) / DAY
        return f


class _LastHandsetEver(TelcoFeatures):
    """The other bug it found: the subscriber's *last* activation's handset, which may be activated after t."""

    def _context(self, entity: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
        f = super()._context(entity, ts)
        act = self.tables["sim_events"]
        act = act[act["event"] == "activate"]
        codes = pd.Series(pd.factorize(act["handset_hash"])[0], index=act.index)
        last = codes.groupby(act["subscriber_id"].to_numpy()).last().reindex(entity).fillna(-1).to_numpy(np.int64)
        f["telco__handset_activations_30d"] = np.where(last >= 0, self.handset_idx.count(last, ts, 30 * DAY), 0.0)
        return f


def _planted(cls: type[PartnerFeatures]) -> Callable[[PartnerView], PartnerFeatures]:
    return lambda view: cls(view)


def test_a_planted_future_window_is_caught(world: World) -> None:
    mismatches = check_truncation(
        world.partners["bank_1"], _times(world, "bank_1"), features=_planted(_NextDayPayments)
    )
    assert {m.column for m in mismatches} == {"bank__out_n_next_24h"}


@pytest.mark.parametrize(
    ("partner", "cls", "column", "roles"),
    [
        ("bank_1", _NewestAccountEver, "bank__newest_account_age_d", ("mule",)),
        ("telco", _LastHandsetEver, "telco__handset_activations_30d", ("fraudster",)),
    ],
)
def test_the_two_look_aheads_it_found_are_caught(
    world: World, partner: str, cls: type[PartnerFeatures], column: str, roles: tuple[str, ...]
) -> None:
    view: PartnerView = world.partners[partner]
    mismatches = check_truncation(view, _times(world, partner, roles), features=_planted(cls))
    assert mismatches and {m.column for m in mismatches} == {column}
