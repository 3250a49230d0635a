"""Split-learning payloads and party state ↔ Flower records (shared by the ClientApp and the ServerApp).

A payload travels as one ``RecordDict``: numpy arrays in the ArrayRecord ``"arrays"``, everything else
(PSI bytes, counts, flags, names) in the ConfigRecord ``"config"``. A party's state in its
``context.state`` is one ArrayRecord ``"vfl"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedsim.federation.vertical.data import Payload, State

STATE_RECORD = "vfl"


def _c_order(v: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into shape (1,)
    return v if v.flags.c_contiguous else np.array(v, order="C")


def to_records(payload: Payload) -> Any:
    """Payload → ``RecordDict``: arrays into ArrayRecord ``arrays``, the rest into ConfigRecord ``config``."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    arrays, config = {}, {}
    for k, v in payload.items():
        if isinstance(v, np.ndarray):
            arrays[k] = Array(_c_order(v))
        elif isinstance(v, np.generic):
            config[k] = v.item()
        elif isinstance(v, bytes | str | bool | int | float):
            config[k] = v
        else:
            raise TypeError(f"payload[{k}]: {type(v).__name__}; allowed: numpy array, bytes, str, bool, int, float")
    return RecordDict({"arrays": ArrayRecord(array_dict=arrays), "config": ConfigRecord(config)})


def from_records(content: Any) -> Payload:
    out: Payload = {}
    if "arrays" in content.array_records:
        out.update({k: a.numpy() for k, a in content.array_records["arrays"].items()})
    if "config" in content.config_records:
        out.update(dict(content.config_records["config"].items()))
    return out


def load_state(context: Any) -> State:
    rec = context.state.array_records.get(STATE_RECORD)
    return {} if rec is None else {k: a.numpy() for k, a in rec.items()}


def save_state(context: Any, state: State) -> None:
    from flwr.app import Array, ArrayRecord

    context.state[STATE_RECORD] = ArrayRecord(array_dict={k: Array(_c_order(v)) for k, v in state.items()})
