"""Features at decision time t use only data strictly before t (no look-ahead), and count correctly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fedsim.features import EventIndex, PartnerFeatures
from synthetic.config import build_config
from synthetic.world import PartnerView, generate

DAY = 86_400


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return generate(
        build_config(preset="small", overrides={"population": {"persons": 2500, "days": 40}, "barriers": []}), 5
    )


def _tamper_after(view: PartnerView, t: int, rng: np.random.Generator) -> PartnerView:
    """Change everything that happens at or after t: drop rows, shuffle values, add new late rows/entities."""
    tables = {}
    for name, table in view.tables.items():
        df = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
        time_col = next((c for c in ("ts", "created_ts") if c in df), None)
        if time_col is None:
            tables[name] = table
            continue
        late = df[time_col] >= t
        early, tail = df[~late], df[late].sample(frac=0.7, random_state=1)
        for col in tail.columns:
            if col not in (time_col, "customer_id", "subscriber_id", "user_id", "entity_id", "account_id"):
                tail[col] = rng.permutation(tail[col].to_numpy())
        extra = df[~late].sample(n=min(200, int((~late).sum())), random_state=2).copy()
        extra[time_col] = t + rng.integers(0, 5 * DAY, len(extra))
        if name == "users":  # brand-new accounts after t that share devices / payout IBANs with old ones
            extra["user_id"] = extra["user_id"] + 10**15
        tables[name] = pa.Table.from_pandas(
            pd.concat([early, tail, extra], ignore_index=True).sort_values(time_col, kind="stable"),
            schema=table.schema,
            preserve_index=False,
        )
    return PartnerView(view.name, view.kind, tables)


@pytest.mark.parametrize("partner", ["bank_1", "telco", "marketplace"])
def test_changing_data_after_t_never_changes_a_feature_at_t(world, partner: str) -> None:  # type: ignore[no-untyped-def]
    t = 25 * DAY + 12 * 3600
    view = world.partners[partner]
    original = PartnerFeatures.for_view(view)
    tampered = PartnerFeatures.for_view(_tamper_after(view, t, np.random.default_rng(0)))
    rows = original.decision_rows()
    rows = rows.select(rows.ts < t)
    assert len(rows.entity) > 100
    before = original.own(rows)
    after = tampered.own(rows)
    pd.testing.assert_frame_equal(before, after, check_dtype=False)
    # and the query right at t itself (strictly-before means an event at t is not seen either)
    at_t = np.full(len(rows.entity), t)
    pd.testing.assert_frame_equal(
        original.context(rows.entity, at_t), tampered.context(rows.entity, at_t), check_dtype=False
    )


def test_tampering_before_t_does_change_features(world) -> None:  # type: ignore[no-untyped-def]
    """The property above could pass vacuously; shifting the cut-off to the start must break equality."""
    view = world.partners["bank_1"]
    original = PartnerFeatures.for_view(view)
    tampered = PartnerFeatures.for_view(_tamper_after(view, 2 * DAY, np.random.default_rng(0)))
    rows = original.decision_rows()
    rows = rows.select((rows.ts > 20 * DAY) & (rows.ts < 30 * DAY))
    assert not original.own(rows).equals(tampered.own(rows))


def test_event_index_windows_hand_computed() -> None:
    # entity 0: events at 10, 20, 30 (values 1, 2, 4); entity 1: event at 15 (value 8)
    idx = EventIndex(np.array([0, 0, 0, 1]), np.array([10, 20, 30, 15]), {"v": np.array([1.0, 2.0, 4.0, 8.0])})
    e, ts = np.array([0, 0, 0, 1, 1]), np.array([30, 31, 10, 15, 16])
    assert idx.count(e, ts, 15).tolist() == [1, 2, 0, 0, 1]  # [t-15, t): strictly before t
    assert idx.total("v", e, ts, 100).tolist() == [3, 7, 0, 0, 8]
    h = idx.since_last(e, ts)
    assert h[0] == pytest.approx(10 / 3600) and np.isnan(h[2]) and np.isnan(h[3])


def test_unknown_entities_get_missing_not_zero(world) -> None:  # type: ignore[no-untyped-def]
    f = PartnerFeatures.for_view(world.partners["telco"])
    ctx = f.context(np.array([-1, f.entities[0]]), np.array([10 * DAY, 10 * DAY]))
    assert ctx.iloc[0].isna().all()
    assert ctx.iloc[1].notna().all()
