"""The horizontal message protocol's names and encodings, shared by the ClientApp and the ServerApp (no Flower).

Messages of one run: ``query.stats`` (column moments and class-weight sums), ``train`` × rounds
(Message API, or the legacy FitIns layout under SecAgg+), ``query.score`` (final weights; scores stay
with the partner).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

STATS, SCORE = "query.stats", "query.score"
"""Message types of the statistics step and the scoring step (``@app.query("stats")`` / ``("score")``)."""

LEDGER_FILE = "dp_ledger.json"
"""A partner's DP ledger after its last round (``dp_*`` → number), written in its own output directory next
to its scores: under SecAgg+ it does not travel to the server (whose replies must stay anonymous), and the
evaluator collects it from the partner as it collects the scores."""

SECAGG_WEIGHT = 1
"""``num_examples`` a partner puts in the clear under SecAgg+: its real count only scales the update inside
the masked vector (Flower's ``secaggplus_mod`` multiplies the update by n_k / max_weight before masking), so
the clear value is the same constant for every partner."""

SECAGG_EXTRA_ARRAYS = 1
"""Arrays appended to the model update under SecAgg+: ``[train loss]`` (0 under DP), so the server learns
only the n-weighted mean loss, out of the secure sum, never one partner's."""

DP_STATE = "fedsim.dp"
"""Key of the partner's DP accountant state in its Flower ``context.state`` (kept between rounds)."""

_JSON = "json:"


def to_legacy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Lists as JSON text: the legacy (SecAgg+) FitIns config carries scalars only."""
    return {k: _JSON + json.dumps(v) if isinstance(v, list) else v for k, v in config.items()}


def from_legacy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`to_legacy_config`."""
    return {
        k: json.loads(v[len(_JSON) :]) if isinstance(v, str) and v.startswith(_JSON) else v for k, v in config.items()
    }
