"""The partner boundary in horizontal FL: every message a partner sends or receives in a real run carries
only model weights and aggregates — and the checker that says so does catch leaks (negative controls)."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim.federation.boundary import BoundaryRules, check_message, check_messages, identifier_values
from fedsim.federation.engine import CapturedMessage, read_capture
from fedsim.federation.partner_data import build_partner_data, partner_only
from fedsim.regimes import get_regime
from tests.federation.horizontal_worlds import BANKS, context, workspace


def _rules(ws, datas):
    ids = identifier_values([ws.features[p].keys() for p in BANKS] + [ws.truth["entities"][["entity_id"]]])
    counts = frozenset(n for d in datas for n in [d.n_rows, *map(len, d.tests.values())])
    return BoundaryRules(identifiers=ids, row_counts=counts, weight_names=frozenset({"net.weight", "net.bias"}))


def test_boundary_checker_passes_model_updates_and_catches_leaks() -> None:
    ws = workspace()
    data = build_partner_data(partner_only(context(ws), "bank_1"), "bank_1")
    rules = _rules(ws, [data])
    ids = rules.identifiers
    clean = CapturedMessage(
        "from_partner",
        "train",
        {"partition-id": 0},
        arrays={"arrays/net.weight": np.ones((1, 2)), "arrays/net.bias": np.zeros(1)},
        metrics={"metrics/train-loss": 0.6, "metrics/num-examples": data.n_rows},
    )
    assert check_message(clean, rules) == []
    leaks = {
        "raw rows": CapturedMessage("from_partner", "train", {}, arrays={"arrays/net.weight": data.X}),
        "ids": CapturedMessage("from_partner", "train", {}, arrays={"arrays/net.bias": ids[:3].astype(float)}),
        "unknown array": CapturedMessage("from_partner", "query.stats", {}, arrays={"extra/x": np.ones(2)}),
        "id in config": CapturedMessage("to_partner", "train", {}, configs={"config/who": str(int(ids[5]))}),
        "per-row list": CapturedMessage("from_partner", "query.score", {}, metrics={"metrics/s": [0.1] * data.n_rows}),
        "other type": CapturedMessage("from_partner", "query.rows", {}),
    }
    for what, msg in leaks.items():
        assert check_message(msg, rules), what


@pytest.mark.slow
@pytest.mark.xdist_group("flower")
def test_only_model_updates_and_aggregates_cross_the_partner_boundary(tmp_path) -> None:
    ws = workspace()
    ctx = context(ws, rounds=2, capture_dir=str(tmp_path / "capture"))
    rules = _rules(ws, [build_partner_data(partner_only(ctx, p), p) for p in BANKS])
    # execute
    get_regime("horizontal").run(ctx)
    messages = read_capture(tmp_path / "capture")
    # assert: every message of every partner was seen (stats + 2 rounds + score, in and out) and is clean
    assert len(messages) == len(BANKS) * 4 * 2
    assert sum(1 for m in messages if m.message_type == "train" and m.direction == "from_partner") == 6
    assert all(m.arrays for m in messages if m.message_type == "train")
    assert check_messages(messages, rules) == []


def test_anonymous_reply_rule_catches_a_clear_count_loss_or_ledger() -> None:
    from fedsim.federation.boundary import SECAGG_COUNT_KEY, check_anonymous_replies

    def reply(**metrics: float) -> CapturedMessage:
        return CapturedMessage("from_partner", "train", {"partition-id": 0}, metrics=metrics)

    assert check_anonymous_replies([reply(**{SECAGG_COUNT_KEY: 1})], constant=1) == []
    leaks = {
        "exact count": reply(**{SECAGG_COUNT_KEY: 812}),
        "loss": reply(**{SECAGG_COUNT_KEY: 1, "fitres.metrics/train-loss": 0.4}),
        "ledger": reply(**{SECAGG_COUNT_KEY: 1, "fitres.metrics/dp_epsilon": 0.9}),
    }
    for what, msg in leaks.items():
        assert check_anonymous_replies([msg], constant=1), what
