"""What may cross a partner's boundary in horizontal FL, and a checker for captured messages.

Horizontal FL promises that only model updates (and a few aggregate numbers) leave a partner. The
checker turns that promise into rules a captured run (:func:`fedsim.federation.engine.capture_mod`)
must satisfy, message by message, in both directions:

1. the message type is one the horizontal apps use (``query.stats``, ``train``, ``query.score``);
2. every array is a model weight (its name is one of the model's state-dict keys) or one of the
   column-moment vectors (``moments/count|mean|m2``);
3. no array, list or scalar holds an identifier value (entity ids, salted hashes of phones, IBANs …);
4. no array axis and no list is as long as a partner's training or test row count (no per-row data);
5. no text value is an identifier written out in digits.

Under SecAgg+ one more rule (:func:`check_anonymous_replies`): a train reply carries nothing that tells
one partner from another in the clear — its ``num_examples`` is the constant
:data:`~fedsim.federation.horizontal.protocol.SECAGG_WEIGHT` and no loss or DP-ledger value travels beside
the masked vector (Bell et al. 2020: the server is to learn only the sum).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedsim.federation.engine import CapturedMessage

MESSAGE_TYPES = frozenset({"query.stats", "train", "query.score"})
MOMENT_ARRAYS = frozenset({"moments/count", "moments/mean", "moments/m2"})


@dataclass(frozen=True)
class BoundaryRules:
    """What the checker compares against.

    identifiers: every identifier value a partner holds (entity ids, key hashes), int64.
    row_counts: the row counts of every partner's training and test sets (counts).
    weight_names: the model's state-dict keys (the only arrays besides the moment vectors).
    """

    identifiers: np.ndarray
    row_counts: frozenset[int]
    weight_names: frozenset[str]

    def __post_init__(self) -> None:
        ids = np.unique(np.asarray(self.identifiers, dtype=np.int64))
        object.__setattr__(self, "identifiers", ids)
        object.__setattr__(self, "_as_float", ids.astype(np.float64))
        object.__setattr__(self, "_as_text", {str(int(v)) for v in ids})


def _numbers(value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return np.zeros(0)
    return arr[np.isfinite(arr)]


def _identifier_hits(value: Any, rules: BoundaryRules) -> int:
    nums = _numbers(value)
    return int(np.isin(nums, rules._as_float).sum()) if nums.size else 0  # type: ignore[attr-defined]


def check_message(msg: CapturedMessage, rules: BoundaryRules) -> list[str]:
    """Violations of the rules (module docstring) in one captured message; empty when it is clean."""
    where = f"{msg.direction} {msg.message_type} {msg.node_config}"
    out = []
    if msg.message_type not in MESSAGE_TYPES:
        out.append(f"{where}: message type {msg.message_type!r} is not one horizontal FL uses")
    for key, array in msg.arrays.items():
        arr = np.asarray(array)
        name = key.split("/", 1)[1] if "/" in key else key
        if key not in MOMENT_ARRAYS and not (key.startswith("arrays/") and name in rules.weight_names):
            out.append(f"{where}: array {key!r} is neither a model weight nor a column-moment vector")
        if rules.row_counts & set(arr.shape):
            out.append(f"{where}: array {key!r} has shape {arr.shape}, an axis as long as a partner's row count")
        if hits := _identifier_hits(arr, rules):
            out.append(f"{where}: array {key!r} holds {hits} identifier value(s)")
    for kind, values in (("metric", msg.metrics), ("config", msg.configs)):
        for key, value in values.items():
            out += _check_value(where, kind, key, value, rules)
    return out


def _check_value(where: str, kind: str, key: str, value: Any, rules: BoundaryRules) -> list[str]:
    out = []
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) in rules.row_counts:
        out.append(f"{where}: {kind} {key!r} is a list as long as a partner's row count ({len(value)})")
    texts = [v for v in items if isinstance(v, str)]
    if any(t.strip() in rules._as_text for t in texts):  # type: ignore[attr-defined]
        out.append(f"{where}: {kind} {key!r} spells out an identifier")
    numbers = [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]
    if hits := _identifier_hits(numbers, rules):
        out.append(f"{where}: {kind} {key!r} holds {hits} identifier value(s)")
    return out


def check_messages(messages: Iterable[CapturedMessage], rules: BoundaryRules) -> list[str]:
    """All violations in a captured run (empty: only model updates and aggregates crossed)."""
    return [v for msg in messages for v in check_message(msg, rules)]


def identifier_values(frames: Sequence[pd.DataFrame]) -> np.ndarray:
    """Every integer value of the given frames' columns (entity ids, key hashes) as one int64 array."""
    parts = []
    for frame in frames:
        for col in frame.columns:
            vals = frame[col].dropna().to_numpy()
            if vals.size and np.issubdtype(np.asarray(vals).dtype, np.number):
                parts.append(np.asarray(vals, dtype=np.int64))
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


SECAGG_COUNT_KEY = "fitres.num_examples/num_examples"
"""Where a SecAgg+ train reply (Flower's legacy FitRes layout) carries its example count in the clear."""
_PER_PARTNER_WORDS = ("loss", "dp_", "examples")


def check_anonymous_replies(messages: Iterable[CapturedMessage], *, constant: int) -> list[str]:
    """Violations of the SecAgg+ rule in a captured run: a clear count other than ``constant``, or a loss,
    DP-ledger or example-count value beside the masked vector, in any reply a partner sent."""
    out = []
    for msg in messages:
        if msg.direction != "from_partner" or msg.message_type != "train":
            continue
        where = f"{msg.direction} {msg.message_type} {msg.node_config}"
        for key, value in {**msg.metrics, **msg.configs}.items():
            if key == SECAGG_COUNT_KEY:
                if value != constant:
                    out.append(f"{where}: num_examples = {value!r} in the clear; allowed: the constant {constant}")
            elif any(word in key.split("/", 1)[-1] for word in _PER_PARTNER_WORDS):
                out.append(f"{where}: {key!r} travels in the clear beside the masked update")
    return out
