"""The coordinator of split learning: brokers PSI, hands out initial weights, drives the batches,
averages models in the hybrid regime, and measures every message (no Flower here).

Topology: a star. Every partner — label holders (banks) and feature parties (telco, marketplace) —
is a node with only its own data; the coordinator (the Flower ServerApp) holds no data and relays
each message between them. It therefore sees what crosses the partner boundaries: PSI messages
(blinded, useless without a party's key), schedules (anchors + decision times), batch row positions,
embeddings, gradients, model arrays (hybrid) and counts — see :func:`leakage_register` in the regimes.

Protocol of one run (``exchange`` sends one message to each listed partner and returns the replies):

1. ``hello`` — each node reports its name, role and which key types it holds; gets the settings.
2. PSI: holder ``psi_start`` → party ``psi_answer`` → holder ``psi_finish`` → party ``schedule``
   (forward ECDH-PSI with the holder as client, then the reverse one; see :mod:`fedsim.alignment`).
3. Initial weights — one :func:`fedsim.models.make_split_net` per holder from the run's seed, cut
   into the holder's part (own bottom + top) and each party's bottom; they travel with the first
   ``begin`` / party ``step`` messages.
4. Per round and local epoch: holders ``begin`` (batch order), then per batch parties ``step`` (apply
   the last gradient, embed this batch) → holders ``step`` (loss, backward, gradient slices, next
   batch). Hybrid: after each round, holders send ``weights``, the coordinator FedAvg-s them and
   parties ``average`` their own copies.
5. Scoring: the same loop without gradients; holders keep their scores locally.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedsim.federation.aggregate import weighted_average_named
from fedsim.federation.vertical.data import Payload, Plan, module_arrays
from fedsim.federation.vertical.node import encode_plan
from fedsim.models import make_split_net

logger = logging.getLogger("fedsim.federation.vertical")
Exchange = Callable[[dict[str, tuple[str, Payload]]], dict[str, Payload]]


# ------------------------------------------------------------------------------------------------
# Message accounting
# ------------------------------------------------------------------------------------------------
def payload_bytes(value: Any) -> int:
    """Approximate wire size of one payload entry (bytes): array data, raw bytes, or text."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(str(value).encode())


@dataclass
class MessageLog:
    """Every message through the coordinator: (stage, direction, partner, action, entries).

    ``entries`` maps payload name → (type, dtype, shape, bytes). With ``keep_payloads`` the full
    payloads are kept too (boundary tests scan their values)."""

    keep_payloads: bool = False
    stage: str = "setup"
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, direction: str, partner: str, action: str, payload: Payload) -> None:
        entries = {
            k: (
                type(v).__name__,
                str(getattr(v, "dtype", "")),
                tuple(np.shape(v)) if isinstance(v, np.ndarray) else (),
                payload_bytes(v),
            )
            for k, v in payload.items()
        }
        rec: dict[str, Any] = {
            "stage": self.stage,
            "direction": direction,
            "partner": partner,
            "action": action,
            "entries": entries,
            "bytes": sum(e[3] for e in entries.values()),
        }
        if self.keep_payloads:
            rec["payload"] = dict(payload)
        self.records.append(rec)

    def total_bytes(self, stage: str | None = None) -> int:
        return sum(r["bytes"] for r in self.records if stage is None or r["stage"] == stage)


def logged(exchange: Exchange, log: MessageLog) -> Exchange:
    """Wrap an exchange so every request and reply is recorded in ``log``."""

    def send(requests: dict[str, tuple[str, Payload]]) -> dict[str, Payload]:
        for n, (action, payload) in requests.items():
            log.add("to", n, action, payload)
        replies = exchange(requests)
        for n, reply in replies.items():
            log.add("from", n, requests[n][0], reply)
        return replies

    return send


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------
@dataclass
class CoordinatorResult:
    step_metrics: dict[str, list[float]]
    metrics: dict[str, float]
    log: MessageLog


def run(plan: Plan, exchange: Exchange, *, log: MessageLog | None = None) -> CoordinatorResult:
    """Run one split-learning federation described by ``plan`` over ``exchange``."""
    log = log or MessageLog(keep_payloads=plan.capture)
    send = logged(exchange, log)
    metrics: dict[str, float] = {}
    steps: dict[str, list[float]] = {}
    keys = _hello(plan, send)
    widths = _align(plan, send, keys, metrics)
    train_rows = {b: metrics[f"train_rows.{b}"] for b in plan.holders}
    # The initial weights ride on the first pass's messages, and each pass's last gradients on the
    # next pass's first party message: on the deployment engine every exchange costs a process start.
    begin_extra, carry = _initial_weights(plan, widths)
    for r in range(plan.rounds):
        log.stage = f"round_{r + 1}"
        t0 = time.perf_counter()
        losses: dict[str, tuple[float, int]] = {}
        for e in range(plan.local_epochs):
            losses, carry = _pass(
                plan,
                send,
                phase="train",
                reset=plan.mode == "hybrid" and e == 0,
                begin_extra=begin_extra,
                carry=carry,
            )
            begin_extra = {}
        if plan.mode == "hybrid":
            _average(plan, send, train_rows, carry)
            carry = {}
        _record_round(steps, losses, seconds=time.perf_counter() - t0, sent=log.total_bytes(log.stage))
        logger.info(
            "%s round %d/%d: train loss %.4f (%.1f s)",
            plan.mode,
            r + 1,
            plan.rounds,
            steps["train_loss"][-1],
            steps["round_seconds"][-1],
        )
    log.stage = "scoring"
    _pass(plan, send, phase="score", reset=False, begin_extra=begin_extra, carry=carry)
    metrics["messages"] = float(len(log.records))
    metrics["boundary_mbytes"] = log.total_bytes() / 1e6
    if plan.capture and plan.out_dir:
        # what crossed, without the payload values (those are in the capture folders, JSON + npz)
        records = [{k: v for k, v in r.items() if k != "payload"} for r in log.records]
        (Path(plan.out_dir) / "messages.json").write_text(json.dumps(records, default=str))
    return CoordinatorResult(steps, metrics, log)


def _hello(plan: Plan, send: Exchange) -> dict[str, str]:
    everyone = (*plan.holders, *plan.parties)
    replies = send({n: ("hello", {"plan": encode_plan(plan)}) for n in everyone})
    for n in everyone:
        want = "holder" if n in plan.holders else "party"
        if replies[n]["role"] != want or replies[n]["partner"] != n:
            raise ValueError(
                f"node {n}: answered as {replies[n]['partner']} ({replies[n]['role']}); allowed: {n} as {want}"
            )
    return {n: str(replies[n]["keys"]) for n in everyone}


def _align(plan: Plan, send: Exchange, keys: dict[str, str], metrics: dict[str, float]) -> dict[str, list[int]]:
    """PSI between every holder and every party; returns per holder the input widths [own, parties…]."""
    hs, ps = ",".join(plan.holders), ",".join(plan.parties)
    r1 = send({b: ("psi_start", {"parties": ps, **{f"keys/{p}": keys[p] for p in plan.parties}}) for b in plan.holders})
    r2 = send(
        {
            p: (
                "psi_answer",
                {
                    "holders": hs,
                    **{f"keys/{b}": keys[b] for b in plan.holders},
                    **{f"psi_request/{b}": r1[b][f"psi_request/{p}"] for b in plan.holders},
                },
            )
            for p in plan.parties
        }
    )
    r3 = send(
        {
            b: (
                "psi_finish",
                {
                    "parties": ps,
                    **{f"keys/{p}": keys[p] for p in plan.parties},
                    **{
                        f"{k}/{p}": r2[p][f"{k}/{b}"]
                        for p in plan.parties
                        for k in ("psi_setup", "psi_response", "psi_rev_request")
                    },
                },
            )
            for b in plan.holders
        }
    )
    sched = (
        "psi_rev_setup",
        "psi_rev_response",
        "schedule_anchor",
        "schedule_ts",
        "schedule_train",
        "unmatched_train",
    )
    r4 = send(
        {
            p: (
                "schedule",
                {
                    "holders": hs,
                    **{f"keys/{b}": keys[b] for b in plan.holders},
                    **{f"{k}/{b}": r3[b][f"{k}/{p}"] for b in plan.holders for k in sched},
                    **{f"dp_q/{b}": r3[b][f"dp_q/{p}"] for b in plan.holders if f"dp_q/{p}" in r3[b]},
                },
            )
            for p in plan.parties
        }
    )
    widths = {}
    for b in plan.holders:
        metrics[f"train_rows.{b}"] = float(r3[b]["train_rows"])
        for p in plan.parties:
            metrics[f"psi_matched.{b}.{p}"] = float(r3[b][f"matched/{p}"])
            metrics[f"schedule_rows.{b}.{p}"] = float(len(r3[b][f"schedule_anchor/{p}"]))
        widths[b] = [int(r3[b]["width"])] + [int(r4[p][f"width/{b}"]) for p in plan.parties]
    return widths


def _initial_weights(plan: Plan, widths: dict[str, list[int]]) -> tuple[dict[str, Payload], dict[str, Payload]]:
    """One seeded SplitNet per holder, cut into the holder's part (own bottom + top) and each party's
    bottom; returns (holder → payload, party → payload)."""
    if plan.mode == "hybrid" and len({tuple(w) for w in widths.values()}) > 1:
        raise ValueError(
            f"input widths per holder {widths}: hybrid averages the models, so allowed: the "
            "same widths for every holder (same feature schema)"
        )
    holders: dict[str, Payload] = {}
    parties: dict[str, Payload] = {p: {} for p in plan.parties}
    for b in plan.holders:
        net = make_split_net(widths[b], embedding_dim=plan.embedding_dim, hidden=plan.hidden, seed=plan.seed)
        holders[b] = {**module_arrays(net.bottoms[0], "model/own."), **module_arrays(net.top, "model/top.")}
        for i, p in enumerate(plan.parties, start=1):
            parties[p].update(module_arrays(net.bottoms[i], f"model/{b}/"))
    return holders, parties


def _pass(
    plan: Plan,
    send: Exchange,
    *,
    phase: str,
    reset: bool,
    begin_extra: dict[str, Payload],
    carry: dict[str, Payload],
) -> tuple[dict[str, tuple[float, int]], dict[str, Payload]]:
    """One pass of every holder over its rows, batch by batch, all holders side by side.

    ``begin_extra``/``carry``: entries added to the holders' ``begin`` and to the parties' first
    ``step`` message. Returns per holder (epoch loss, rows) of a training pass, and the gradients
    still to deliver to each party (they travel with the next message to that party)."""
    train = phase == "train"
    replies = send(
        {b: ("begin", {"phase": phase, "reset_optimizer": reset, **begin_extra.get(b, {})}) for b in plan.holders}
    )
    active = [b for b in plan.holders if not replies[b]["done"]]
    pending: dict[str, Payload] = {p: dict(carry.get(p, {})) for p in plan.parties}
    losses: dict[str, tuple[float, int]] = {}
    first = True
    while active:
        emb = send(
            {
                p: (
                    "step",
                    {
                        "train": train,
                        "reset_optimizer": reset and first,
                        **pending[p],
                        **{f"rows/{b}": replies[b][f"rows/{p}"] for b in active},
                    },
                )
                for p in plan.parties
            }
        )
        first = False
        pending = {p: {} for p in plan.parties}
        out = send({b: ("step", {f"emb/{p}": emb[p][f"emb/{b}"] for p in plan.parties}) for b in active})
        for b in active:
            if train:
                for p in plan.parties:
                    pending[p][f"grad/{b}"] = out[b][f"grad/{p}"]
            if out[b]["done"] and train:
                losses[b] = (float(out[b]["loss"]), int(out[b]["rows"]))
            replies[b] = out[b]
        active = [b for b in active if not out[b]["done"]]
    return losses, {p: pl for p, pl in pending.items() if pl}


def _average(plan: Plan, send: Exchange, train_rows: dict[str, float], carry: dict[str, Payload]) -> None:
    """Hybrid: FedAvg of the holders' models here (:func:`fedsim.federation.aggregate.weighted_average_named`);
    each party applies its last gradients, then averages its own per-holder bottoms with the same weights."""
    got = send({b: ("weights", {}) for b in plan.holders})
    mean = weighted_average_named([got[b] for b in plan.holders], [train_rows[b] for b in plan.holders])
    weights = {f"weight/{b}": train_rows[b] for b in plan.holders}
    send(
        {
            **{b: ("set_weights", mean) for b in plan.holders},
            **{p: ("average", {**weights, **carry.get(p, {})}) for p in plan.parties},
        }
    )


def _record_round(
    steps: dict[str, list[float]], losses: dict[str, tuple[float, int]], *, seconds: float, sent: int
) -> None:
    for b, (loss, _) in losses.items():
        steps.setdefault(f"train_loss.{b}", []).append(loss)
    total = sum(n for _, n in losses.values())
    mean = sum(loss * n for loss, n in losses.values()) / total if total else float("nan")
    steps.setdefault("train_loss", []).append(mean)
    steps.setdefault("round_seconds", []).append(seconds)
    steps.setdefault("boundary_mbytes", []).append(sent / 1e6)
