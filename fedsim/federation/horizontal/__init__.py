"""Horizontal federated learning: partners of one kind train one model (FedAvg / FedProx, ± SecAgg+, ± DP-SGD).

Cut the way Flower's own apps are:

* :mod:`.task` — the partner's plain-torch work (summary statistics, one local round, scoring); no Flower.
* :mod:`.client_app` / :mod:`.server_app` — the ClientApp (unpack → task → pack) and the ServerApp
  (statistics → rounds → scoring); :mod:`.protocol` holds the message names both use.
* :mod:`.settings` — :class:`HorizontalSettings` in, :class:`HorizontalOutcome` out.
* :mod:`.run` — :func:`run_horizontal`: one federation for a regime on any engine.
* :mod:`.deployment_config` / :mod:`.deployment_app` — the same apps for ``flwr run`` across machines.

What crosses a partner's boundary: model weights, per-column moments (length = columns), a few scalar
metrics (rows, summed weights, loss, rows scored), the partner name and feature column names. No rows,
labels, scores or identifiers (checked by tests/federation/test_horizontal_boundary.py).

Differential privacy: with record-level DP settings (:func:`fedsim.privacy.privacy_for`) each partner
trains every round with DP-SGD (:func:`fedsim.privacy.make_private_fit`; its entity is the unit of
privacy), keeps its accountant state in its own Flower ``context.state`` so ε accumulates over the
rounds, and reports its ledger (``dp_epsilon``, ``dp_sigma``, …) with its update. Not covered by ε: the
column moments and class-weight sums of the statistics step.
"""

from fedsim.federation.horizontal.deployment_config import write_app
from fedsim.federation.horizontal.run import HorizontalRun, run_horizontal, run_in_process, simulate_saved
from fedsim.federation.horizontal.settings import HorizontalOutcome, HorizontalSettings

__all__ = [
    "HorizontalOutcome",
    "HorizontalRun",
    "HorizontalSettings",
    "run_horizontal",
    "run_in_process",
    "simulate_saved",
    "write_app",
]
