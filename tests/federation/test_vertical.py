"""Vertical split learning, run in-process (the same node code as the Flower apps, no Ray): it must
reproduce the same network trained centrally, and assign roles as documented."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim.errors import FedsimError
from fedsim.federation.vertical import Plan
from fedsim.regimes.hybrid import hybrid_roles
from fedsim.regimes.vertical import Vertical, leakage_register, resolve_roles
from fedsim.runner import Workspace
from tests.federation.split_reference import central_split_scores, scores_frame
from tests.federation.vertical_worlds import CHAIN_1, context, known_answer


def _max_gap(vertical, central) -> float:  # type: ignore[no-untyped-def]
    m = vertical.merge(central, on=["partner", "entity_id", "day"], suffixes=("_v", "_c"))
    assert len(m) == len(vertical) == len(central)
    return float(np.abs(m["score_v"] - m["score_c"]).max())


def test_split_learning_reproduces_central_training_of_the_same_net() -> None:
    ws = known_answer()
    ctx = context(ws, rounds=2)

    vertical = Vertical().run(ctx)
    central = scores_frame(central_split_scores(ctx, "bank_1", ("telco", "marketplace")))

    # Same seed, same rows, same batches, same Adam: the split only moves where each part is computed.
    assert _max_gap(vertical.scores, central.scores) < 1e-5
    assert vertical.metrics["psi.bank_1.telco.match_rate"] == 1.0
    assert vertical.metrics["psi.bank_1.marketplace.precision"] == 1.0
    assert len(vertical.step_metrics["train_loss"]) == 2
    # federation params under the horizontal regime's names (fl_*), so one query finds the engine of any run
    assert (vertical.params["fl_engine"], vertical.params["fl_rounds"]) == ("in_process", 2)
    assert vertical.params["fl_label_holders"] == "bank_1"
    assert vertical.params["fl_feature_parties"] == "telco+marketplace"
    assert vertical.step_metrics["train_loss"][1] < vertical.step_metrics["train_loss"][0]


@pytest.mark.slow
def test_unmatched_people_get_the_missing_embedding_as_central_training_does(
    small_realistic_workspace: Workspace,
) -> None:
    ctx = context(small_realistic_workspace, ("bank_1", "telco"), rounds=2)

    vertical = Vertical().run(ctx)
    central = scores_frame(central_split_scores(ctx, "bank_1", ("telco",)))

    # Most of the bank's people are not at the telco: their rows ride on the telco's all-missing embedding.
    assert vertical.metrics["psi.bank_1.telco.match_rate"] < 0.8
    assert vertical.metrics["psi.bank_1.telco.recall"] < 1.0
    assert _max_gap(vertical.scores, central.scores) < 1e-5


# ------------------------------------------------------------------------------------------------
# Roles, settings, register
# ------------------------------------------------------------------------------------------------
def test_label_holder_by_kind_by_name_and_reversed() -> None:
    ws = known_answer(banks=2, entities=400)
    chain = ("bank_1", "bank_2", "telco", "marketplace")

    by_kind = resolve_roles(context(ws, chain))
    by_name = resolve_roles(context(ws, ("bank_2", "telco"), label_holder="bank_2"))
    reversed_ = resolve_roles(context(ws, ("bank_1", "telco"), label_holder="telco"))

    assert (by_kind.holders, by_kind.parties) == (("bank_1", "bank_2"), ("telco", "marketplace"))
    assert (by_name.holders, by_name.parties) == (("bank_2",), ("telco",))
    assert (reversed_.holders, reversed_.parties) == (("telco",), ("bank_1",))
    # hybrid: a partner name stands for its kind
    assert hybrid_roles(context(ws, chain, label_holder="bank_2")).holders == ("bank_1", "bank_2")


@pytest.mark.parametrize(
    ("coalition", "holder", "message"),
    [
        (("bank_1", "bank_2", "telco"), "bank_1", "bank_2"),  # a bank that is not a holder
        (("bank_1", "telco"), "marketplace", "marketplace"),  # holder kind absent
        (("bank_1", "bank_2"), "bank", "another kind"),  # nobody to join with
    ],
)
def test_impossible_roles_are_refused_by_name(coalition, holder, message) -> None:  # type: ignore[no-untyped-def]
    ws = known_answer(banks=2, entities=400)

    with pytest.raises(FedsimError, match=message):
        resolve_roles(context(ws, coalition, label_holder=holder))


def test_plan_rejects_a_partner_in_both_roles() -> None:
    with pytest.raises(ValueError, match="disjoint"):
        Plan(
            mode="vertical",
            holders=("bank_1",),
            parties=("bank_1", "telco"),
            seed=0,
            rounds=1,
            local_epochs=1,
            batch_size=8,
            learning_rate=0.1,
            embedding_dim=2,
            hidden=4,
            out_dir="",
        )


def test_leakage_register_covers_every_channel() -> None:
    roles = resolve_roles(context(known_answer(banks=1, entities=400), CHAIN_1))

    vertical, hybrid = leakage_register("vertical", roles), leakage_register("hybrid", roles)

    assert {"psi", "schedule", "embeddings", "gradients", "coordinator"} <= set(vertical)
    assert set(hybrid) - set(vertical) == {"model_arrays"}
    assert "decision times" in vertical["schedule"] and "telco+marketplace" in vertical["schedule"]
