"""Entity alignment by ECDH-PSI: same answer as the plain intersection, and its quality against the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedsim.alignment import (
    align,
    key_elements,
    match_quality,
    plain_intersection,
    plain_pairs,
    psi_client_intersection,
    psi_client_request,
    psi_server_answer,
)
from fedsim.features import PartnerFeatures
from fedsim.runner import Workspace
from synthetic.config import build_config
from synthetic.world import generate, to_pandas

NA = pd.NA


def _keys(rows: list[tuple]) -> pd.DataFrame:
    cols = ["entity_id", "phone_hash", "email_hash", "iban_hash"][: len(rows[0])]
    frame = pd.DataFrame(rows, columns=cols)
    return frame.astype({c: "Int64" for c in cols[1:]})


# Bank: entity 1 shares a phone with telco 10, entity 2 an e-mail with marketplace-like party 20,
# entity 3 shares nothing, entity 4 has two accounts (two IBANs), the second one known to the party.
HOLDER = _keys([(1, 111, 901, 5001), (2, 222, 902, 5002), (3, 333, NA, 5003), (4, 444, NA, 5004), (4, 444, NA, 5005)])
PARTY = _keys([(10, 111, NA, NA), (20, NA, 902, NA), (30, 999, NA, 5005), (40, 111, NA, NA)])


def test_psi_pairs_equal_the_hand_computed_join() -> None:
    a = align(HOLDER, PARTY, holder="bank", party="market")

    got = dict(zip(a.pairs["holder_entity"], a.pairs["party_entity"], strict=True))
    # 1↔10 by phone (40 shares it too, but 10 comes first in the party's table), 2↔20 by e-mail,
    # 4↔30 by its second IBAN; 3 shares nothing.
    assert got == {1: 10, 2: 20, 4: 30}
    assert dict(zip(a.pairs["holder_entity"], a.pairs["key"], strict=True)) == {
        1: "phone_hash",
        2: "email_hash",
        4: "iban_hash",
    }
    assert a.match_rate == pytest.approx(3 / 4)
    assert a.intersection_size == 3  # phone 111, e-mail 902, IBAN 5005


def test_phone_outranks_email_when_they_point_to_different_people() -> None:
    holder = _keys([(1, 111, 902)])
    party = _keys([(20, NA, 902), (10, 111, NA)])

    a = align(holder, party)

    assert a.pairs["party_entity"].tolist() == [10]


def test_psi_protocol_steps_reveal_exactly_the_plain_intersection() -> None:
    rng = np.random.default_rng(4)
    client = [f"phone_hash:{v}" for v in rng.choice(10_000, 300, replace=False)]
    server = [f"phone_hash:{v}" for v in rng.choice(10_000, 400, replace=False)]

    req = psi_client_request(client)
    setup, response = psi_server_answer(server, req.request)
    found = psi_client_intersection(req.key, setup, response)

    assert {client[i] for i in found} == set(client) & set(server)
    # the client's secret key never travels: it is not inside the request
    assert req.key not in req.request


def test_cardinality_only_reveals_the_size_and_no_pairs() -> None:
    a = align(HOLDER, PARTY, cardinality_only=True)

    assert a.intersection_size == len(plain_intersection(HOLDER, PARTY)) == 3
    assert a.pairs.empty
    with pytest.raises(ValueError, match="cardinality-only"):
        _ = a.match_rate


def test_match_quality_hand_computed() -> None:
    pairs = pd.DataFrame({"holder_entity": [1, 2, 4], "party_entity": [10, 20, 30]})
    truth = pd.DataFrame(
        {
            "partner": ["bank"] * 4 + ["market"] * 4,
            "entity_id": [1, 2, 3, 4, 10, 20, 30, 40],
            "person_id": [7, 8, 9, 6, 7, 5, 6, 9],
        }
    )

    q = match_quality(pairs, truth, holder="bank", party="market")

    # correct pairs: 1↔10 (person 7) and 4↔30 (person 6); 2↔20 is wrong (8 vs 5).
    assert q.precision == pytest.approx(2 / 3)
    # the party holds persons 7, 6, 9 of the bank's four people; 1 and 4 found, 3 (person 9) missed.
    assert q.true_overlap == pytest.approx(3 / 4)
    assert q.recall == pytest.approx(2 / 3)
    assert q.match_rate == pytest.approx(3 / 4)


def test_missing_key_column_is_named() -> None:
    with pytest.raises(ValueError, match="email_hash"):
        key_elements(pd.DataFrame({"entity_id": [1], "phone_hash": [2]}), ["phone_hash", "email_hash"])


# ------------------------------------------------------------------------------------------------
# Generated worlds
# ------------------------------------------------------------------------------------------------
def _features(preset: str, **overrides: object) -> tuple[dict[str, PartnerFeatures], pd.DataFrame]:
    cfg = build_config(preset=preset, config_file=None, overrides=overrides)
    world = generate(cfg, 2)
    return (
        {n: PartnerFeatures.for_view(v) for n, v in world.partners.items()},
        to_pandas(world.truth["entities"]),
    )


@pytest.fixture(scope="module")
def realistic(small_realistic_workspace: Workspace) -> tuple[dict[str, PartnerFeatures], pd.DataFrame]:
    # The shared small realistic world (preset small, seed 2, 1,500 persons, 90 days).
    return small_realistic_workspace.features, small_realistic_workspace.truth["entities"]


def test_known_answer_alignment_is_complete_and_exact() -> None:
    feats, truth = _features("known-answer", known_answer={"entities": 400, "days": 14, "bank_shifts": [1.0, 1.0]})

    a = align(feats["bank_1"].keys(), feats["telco"].keys(), holder="bank_1", party="telco")
    q = match_quality(a.pairs, truth, holder="bank_1", party="telco", holder_entities=a.holder_entities)

    assert (q.match_rate, q.precision, q.recall, q.true_overlap) == (1.0, 1.0, 1.0, 1.0)
    assert a.holder_entities == len(feats["bank_1"].entities)


@pytest.mark.parametrize("party", ["telco", "marketplace"])
def test_realistic_alignment_is_noisy_and_equals_the_clear_join(realistic, party: str) -> None:  # type: ignore[no-untyped-def]
    feats, truth = realistic
    hk, pk = feats["bank_1"].keys(), feats[party].keys()

    a = align(hk, pk, holder="bank_1", party=party)
    q = match_quality(a.pairs, truth, holder="bank_1", party=party, holder_entities=a.holder_entities)

    clear = plain_pairs(hk, pk)
    pd.testing.assert_frame_equal(a.pairs.reset_index(drop=True), clear.reset_index(drop=True))
    assert a.intersection_size == len(plain_intersection(hk, pk))
    # Keys have gaps, stale numbers, typos and shared household numbers: the match is real but imperfect.
    assert 0.0 < q.match_rate < 1.0
    assert 0.5 < q.recall < 1.0
    assert q.precision > 0.8
    assert q.match_rate <= q.true_overlap + (1 - q.precision)
