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

MAX_OVER_PARTNERS = "max_over_partners"
"""Key of the DP ledger under SecAgg+: the replies are anonymous, so only the worst partner's ε is known."""

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
