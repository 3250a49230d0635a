"""The federation layer: the only part of fedsim that imports Flower.

Cut the way Flower's own apps are:

* :mod:`~fedsim.federation.horizontal` — partners of one kind train one model (FedAvg / FedProx, ± SecAgg+,
  ± DP-SGD): ``task`` (plain torch), ``client_app``, ``server_app``, ``run`` (engine dispatch) and the
  deployment app.
* :mod:`~fedsim.federation.vertical` — split learning and its hybrid: ``label_holder``, ``party``,
  ``coordinator``, their apps and ``run``.
* Shared beside them: :mod:`~fedsim.federation.aggregate` (the one weighted aggregation, FedAvg),
  :mod:`~fedsim.federation.engine` (the engine vocabulary, offline hygiene, the simulation runner with
  Ray kept warm, message capture), :mod:`~fedsim.federation.deployment` (a real SuperLink + SuperNodes
  for any app), :mod:`~fedsim.federation.partner_data` (a partner's own rows),
  :mod:`~fedsim.federation.standardize` (federated standardisation) and
  :mod:`~fedsim.federation.boundary` (what crossed a partner's boundary).

Importing this package sets the offline environment (no telemetry, no update check, no runtime
dependency installation, a private per-user FLWR_HOME (0700) unless set) before any Flower module loads.
Flower itself is imported lazily, inside the functions that use it.
"""

from fedsim.federation.engine import apply_offline_env

apply_offline_env()

__all__ = ["apply_offline_env"]
