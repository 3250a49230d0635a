"""The federation layer: the only part of fedsim that imports Flower.

* :mod:`~fedsim.federation.engine` — offline hygiene, the simulation runner (Ray kept warm across the
  runs of a grid), message capture at the partner boundary; shared by every federated regime.
* :mod:`~fedsim.federation.deployment` — a real SuperLink + one SuperNode per partner on localhost,
  and the recipe for running the same apps across machines.
* :mod:`~fedsim.federation.horizontal` (+ ``horizontal_app`` for ``flwr run``) — FedAvg / FedProx
  (± SecAgg+) among partners of one kind; :mod:`~fedsim.federation.partner_data` and
  :mod:`~fedsim.federation.standardize` hold its Flower-free pieces; :mod:`~fedsim.federation.boundary`
  checks what crossed a partner's boundary.

Importing this package sets the offline environment (no telemetry, no update check, no runtime
dependency installation, FLWR_HOME under the temp dir unless set) before any Flower module loads.
Flower itself is imported lazily, inside the functions that use it.
"""

from fedsim.federation.engine import apply_offline_env

apply_offline_env()

__all__ = ["apply_offline_env"]
