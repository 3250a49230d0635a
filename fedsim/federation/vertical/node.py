"""One partner's message handler for split learning, independent of the transport (no Flower here).

:func:`handle` routes an action to the label-holder or feature-party code according to the partner's
bundle, keeps the run settings in the partner's state, and writes the partner's local outputs
(scores, its half of the alignment) next to its bundle. The Flower ClientApp
(:mod:`fedsim.federation.vertical`) and the in-process :class:`LocalExchange` both call it, so the two
run the very same party code.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fedsim.federation.vertical import label_holder as holder
from fedsim.federation.vertical import party
from fedsim.federation.vertical.data import HolderData, PartyData, Payload, Plan, State, load_bundle, out_dir

HOLDER_ACTIONS = ("hello", "psi_start", "psi_finish", "begin", "step", "weights", "set_weights")
PARTY_ACTIONS = ("hello", "psi_answer", "schedule", "step", "average")


def _plan(state: State) -> Plan:
    if "plan" not in state:
        raise ValueError("state: no run settings; allowed: a 'hello' message first")
    return Plan.from_json(bytes(state["plan"]).decode())


def encode_plan(plan: Plan) -> str:
    """Run settings as sent in the 'hello' message (the coordinator's output path stays with it)."""
    return replace(plan, out_dir="").to_json()


def handle(bundle_path: str, action: str, payload: Payload, state: State) -> Payload:
    """Run ``action`` for the partner whose bundle is at ``bundle_path``; updates ``state`` in place."""
    data = load_bundle(str(bundle_path))
    allowed = HOLDER_ACTIONS if isinstance(data, HolderData) else PARTY_ACTIONS
    if action not in allowed:
        raise ValueError(f"action: {action!r} at {data.name} ({data.role}); allowed: {', '.join(allowed)}")
    if action == "hello":
        state["plan"] = np.frombuffer(str(payload["plan"]).encode(), dtype=np.uint8).copy()
        return {
            "partner": data.name,
            "block": data.block,
            "role": data.role,
            "keys": ",".join(c for c in data.keys.columns if c != "entity_id"),
        }
    plan = _plan(state)
    if isinstance(data, HolderData):
        return _holder(data, Path(out_dir(bundle_path)), action, payload, state, plan)
    return _party(data, Path(out_dir(bundle_path)), action, payload, state, plan)


def _holder(data: HolderData, out: Path, action: str, payload: Payload, state: State, plan: Plan) -> Payload:
    if action == "psi_start":
        return holder.psi_start(data, state, payload)
    if action == "psi_finish":
        reply, halves = holder.psi_finish(data, state, payload, plan)
        for p, half in halves.items():
            half.to_parquet(out / f"anchors_{p}.parquet", index=False)
        return reply
    if action == "begin":
        if any(k.startswith("model/") for k in payload):
            holder.init(state, payload)
        return holder.begin(data, state, payload, plan)
    if action == "weights":
        return holder.weights(state)
    if action == "set_weights":
        return holder.set_weights(state, payload)
    reply, scores = holder.step(data, state, payload, plan)
    if scores is not None:
        chunk = int(state["cursor"]) - 1
        scores.to_parquet(out / f"scores_{chunk:05d}.parquet", index=False)
    return reply


def _party(data: PartyData, out: Path, action: str, payload: Payload, state: State, plan: Plan) -> Payload:
    if action == "psi_answer":
        return party.psi_answer(data, state, payload)
    if action == "schedule":
        reply, halves = party.schedule(data, state, payload, plan)
        for b, half in halves.items():
            half.to_parquet(out / f"owners_{b}.parquet", index=False)
        return reply
    if any(k.startswith("model/") for k in payload):
        party.init(state, payload)
    record_leakage(out, state, payload, plan)
    if action == "average":
        party.step(data, state, payload, plan)  # the round's last gradients first
        return party.average(state, payload, plan)
    reply = party.step(data, state, payload, plan)
    if plan.bottom_dp and payload.get("train") is False and "dp/ledger_written" not in state:
        (out / LEDGER_FILE).write_text(json.dumps(party.dp_ledger(state, plan)))
        state["dp/ledger_written"] = np.asarray(1)
    return reply


LEDGER_FILE = "dp_ledger.json"
"""A party's DP ledger (ε, δ, σ, q and steps per holder, accountant), written when scoring starts."""


def record_leakage(out: Path, state: State, payload: Payload, plan: Plan) -> None:
    """What a curious party can compute from each gradient block it receives: the norm and direction
    label-leakage attacks (:func:`fedsim.evaluation.label_leakage.label_leakage_scores`, per batch, the
    all-missing row left out), saved with the rows' schedule positions as ``leak_<holder>_<n>.npz`` in
    its local output. The evaluator scores them against the true labels after the run."""
    from fedsim.evaluation.label_leakage import label_leakage_scores

    for b in plan.holders:
        if f"grad/{b}" not in payload or f"pending/{b}" not in state:
            continue
        rows = np.asarray(state[f"pending/{b}"], dtype=np.int64)
        block = np.asarray(payload[f"grad/{b}"], dtype=np.float64)[: len(rows)]
        if len(rows) < 2 or not np.isfinite(block).all() or not np.abs(block).sum() > 0:
            continue
        scores = label_leakage_scores(block)
        n = int(state.get("leak/n", 0))
        with (out / f"leak_{b}_{n:06d}.npz").open("wb") as f:
            np.savez(f, pos=rows, norm=scores["norm"], direction=scores["direction"], allow_pickle=False)
        state["leak/n"] = np.asarray(n + 1)


def read_scores(bundle_path: str | Path) -> pd.DataFrame:
    """A holder's scores from its local output (collected by the experimenter after the run)."""
    files = sorted(Path(out_dir(bundle_path)).glob("scores_*.parquet"))
    if not files:
        return pd.DataFrame(columns=["entity_id", "decision_ts", "window", "score"])
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


class LocalExchange:
    """Delivers each payload to the partner's :func:`handle` in this process, with in-memory states.

    For unit tests and debugging: no network and no Flower, but the same node code and the same
    message contents as the Flower apps."""

    def __init__(self, bundles: dict[str, str]) -> None:
        self.bundles = dict(bundles)
        self.states: dict[str, State] = {n: {} for n in bundles}

    def __call__(self, requests: dict[str, tuple[str, Payload]]) -> dict[str, Payload]:
        unknown = [n for n in requests if n not in self.bundles]
        if unknown:
            raise ValueError(f"requests: partner(s) {unknown}; allowed: {sorted(self.bundles)}")
        return {
            n: handle(self.bundles[n], action, payload, self.states[n]) for n, (action, payload) in requests.items()
        }
