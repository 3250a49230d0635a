"""What may cross a partner's boundary in split learning (vertical / hybrid), and a checker.

The promise of the split-learning apps, as rules a captured run
(:func:`fedsim.federation.engine.capture_mod`, both directions at every partner) must satisfy:

1. the message type is one of the protocol's queries (``query.<action>``, :data:`ACTIONS`);
2. every entry belongs to a declared channel (:data:`CHANNELS`): PSI messages, embeddings, gradients,
   model arrays, the schedule (anchors + decision times), batch row positions, counts (under DP also
   the holder's Poisson rate ``dp_q/<party>``), settings;
3. embeddings, gradients and model arrays are float arrays; anchors and row positions are integer
   positions below ``position_limit`` (never identifiers); PSI messages are bytes;
4. no value anywhere is an identifier (entity id, salted key hash) — anchors, row positions and
   decision times are exempt from the entity-id comparison (small integers that may coincide with an
   id by chance) but not from the key-hash one;
5. no float array carries raw feature values of any partner (``raw_values``: any exact float64
   match, or a majority of a float32 array's non-zero entries), and no PSI message contains a
   plaintext key element.

Decision times are a declared, registered leak (see the leakage register in
:mod:`fedsim.regimes.vertical`); the checker only makes sure they are the only raw values that travel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedsim.federation.engine import CapturedMessage

ACTIONS = frozenset(
    {
        "hello",
        "psi_start",
        "psi_answer",
        "psi_finish",
        "schedule",
        "begin",
        "step",
        "weights",
        "set_weights",
        "average",
    }
)
CHANNELS: dict[str, str] = {
    "psi": r"psi_(request|setup|response|rev_request|rev_setup|rev_response)/\w+",
    "embedding": r"emb/\w+",
    "gradient": r"grad/\w+",
    "model": r"model/[\w./]+",
    "schedule": r"schedule_(anchor|ts)/\w+",
    "batch": r"rows/\w+",
    "count": r"(width|schedule_train|unmatched_train|matched|weight|dp_q)/\w+"
    r"|width|train_rows|loss|rows|done|train|phase|reset_optimizer",
    "settings": r"plan|parties|holders|keys/\w+|keys|partner|block|role",
}
_COMPILED = {name: re.compile(rf"^(?:{pattern})$") for name, pattern in CHANNELS.items()}
_POSITIONS = ("schedule", "batch")


def channel_of(name: str) -> str | None:
    """The declared channel of a payload entry name, or None if it is not part of the protocol."""
    return next((c for c, rx in _COMPILED.items() if rx.match(name)), None)


@dataclass
class VerticalBoundaryRules:
    """entity_ids / key_hashes: every identifier any partner holds (int64); raw_values: raw feature
    values (float) that must never travel; key_elements: plaintext PSI elements ("phone_hash:…");
    position_limit: an upper bound on any anchor or row position (e.g. the largest schedule length)."""

    entity_ids: np.ndarray
    key_hashes: np.ndarray
    raw_values: np.ndarray
    key_elements: list[str]
    position_limit: int
    _ids: np.ndarray = field(init=False, repr=False)
    _hashes: np.ndarray = field(init=False, repr=False)
    _raw64: np.ndarray = field(init=False, repr=False)
    _raw32: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ids = np.unique(np.asarray(self.entity_ids, dtype=np.int64))
        self._hashes = np.unique(np.asarray(self.key_hashes, dtype=np.int64))
        raw = np.asarray(self.raw_values, dtype=np.float64)
        raw = raw[np.isfinite(raw) & (raw != 0)]
        self._raw64 = np.unique(raw)
        self._raw32 = np.unique(raw.astype(np.float32))  # a raw value sent as float32 would be rounded


def _name(key: str) -> str:
    return key.split("/", 1)[1] if key.startswith(("arrays/", "config/")) else key


def check_message(msg: CapturedMessage, rules: VerticalBoundaryRules) -> list[str]:
    """Violations of the rules (module docstring) in one captured message; empty when clean."""
    where = f"{msg.direction} {msg.message_type} {msg.node_config}"
    out: list[str] = []
    if msg.error is not None:
        return out
    if msg.message_type.removeprefix("query.") not in ACTIONS or not msg.message_type.startswith("query."):
        out.append(f"{where}: message type {msg.message_type!r} is not a split-learning query")
    for key, value in {**msg.arrays, **msg.configs, **msg.metrics}.items():
        out += [f"{where}: {v}" for v in check_entry(_name(key), value, rules)]
    return out


def check_entry(name: str, value: Any, rules: VerticalBoundaryRules) -> list[str]:
    channel = channel_of(name)
    if channel is None:
        return [f"{name!r} belongs to no declared channel"]
    out = []
    if channel == "psi":
        if not isinstance(value, bytes | bytearray):
            return [f"{name!r} is {type(value).__name__}, not a PSI message (bytes)"]
        hits = [e for e in rules.key_elements if e.encode() in value]
        if hits:
            out.append(f"{name!r} contains plaintext key element(s) {hits[:2]}")
        return out
    arr = np.asarray(value)
    if isinstance(value, str):
        digits = re.findall(r"\d{5,}", value)
        if digits and np.isin(np.asarray(digits, dtype=np.float64), rules._hashes.astype(np.float64)).any():
            out.append(f"{name!r} spells out a key hash")
        return out
    if channel in ("embedding", "gradient", "model") and arr.dtype.kind != "f":
        out.append(f"{name!r} has dtype {arr.dtype}; allowed: float")
    positions = channel in _POSITIONS and name.startswith(("schedule_anchor", "rows"))
    if positions and not _is_positions(arr, rules.position_limit):
        out.append(f"{name!r} is not a position array (int in [0, {rules.position_limit}))")
    nums = arr.astype(np.float64, copy=False).ravel() if arr.dtype.kind in "iufb" else np.zeros(0)
    if nums.size and arr.dtype.kind in "iu" and np.isin(arr.ravel().astype(np.int64), rules._hashes).any():
        out.append(f"{name!r} holds a key hash")
    if nums.size and channel not in _POSITIONS and np.isin(nums, rules._ids.astype(np.float64)).any():
        out.append(f"{name!r} holds an entity id")
    if nums.size and arr.dtype.kind == "f" and _looks_raw(arr, rules):
        out.append(f"{name!r} holds raw feature value(s)")
    return out


def _is_positions(arr: np.ndarray, limit: int) -> bool:
    return arr.dtype.kind in "iu" and (arr.size == 0 or (int(arr.min()) >= 0 and int(arr.max()) < limit))


def _looks_raw(arr: np.ndarray, rules: VerticalBoundaryRules) -> bool:
    """Raw feature values in a float array: any exact float64 match, or — for float32, where chance
    coincidences with tens of thousands of rounded raw values do happen — most non-zero entries."""
    if arr.dtype == np.float64:
        return bool(np.isin(arr.ravel(), rules._raw64).any())
    vals = arr.ravel().astype(np.float32)
    vals = vals[vals != 0]
    return vals.size > 0 and float(np.isin(vals, rules._raw32).mean()) > 0.5


def check_messages(messages: Iterable[CapturedMessage], rules: VerticalBoundaryRules) -> list[str]:
    """All violations in a captured run (empty: only the declared channels crossed)."""
    return [v for msg in messages for v in check_message(msg, rules)]


def channels_seen(messages: Iterable[CapturedMessage]) -> set[str]:
    """The channels that actually carried something in a captured run."""
    return {
        c
        for msg in messages
        for key in (*msg.arrays, *msg.configs, *msg.metrics)
        if (c := channel_of(_name(key))) is not None
    }
