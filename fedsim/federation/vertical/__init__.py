"""Split learning (vertical FL) and its hybrid with FedAvg among label holders, on Flower.

Cut the way Flower's vertical example is:

* :mod:`.label_holder` — the label holder's plain-torch side: own bottom model, top model, loss, the
  gradient slice each party gets back (no Flower).
* :mod:`.party` — a feature party's plain-torch side: bottom models answering with embeddings.
* :mod:`.coordinator` — the protocol the ServerApp drives (PSI, batches, hybrid averaging), with
  message accounting; :mod:`.node` routes one message to the holder or party code.
* :mod:`.client_app` / :mod:`.server_app` — the thin Flower apps (:mod:`.records` packs payloads);
  :mod:`.deployment_app` — the same apps for ``flwr run``.
* :mod:`.data` — the bundles each partner holds and the run :class:`~.data.Plan`.
* :mod:`.run` — :func:`run_split_learning` on any engine; :mod:`.boundary` — what may cross a boundary.
* :mod:`.split_dp` — DP: label DP by randomized response at the holder, DP-SGD (per-entity clipping,
  Poisson batches) on each party's bottom model; :func:`.node.record_leakage` — the label-leakage
  attacks each party runs on the gradients it receives (scored by the regime in every run).
"""

from fedsim.federation.vertical.data import HolderData, PartyData, Plan, out_dir, write_bundle
from fedsim.federation.vertical.node import LocalExchange, read_scores
from fedsim.federation.vertical.run import SplitRun, run_split_learning

__all__ = [
    "HolderData",
    "LocalExchange",
    "PartyData",
    "Plan",
    "SplitRun",
    "out_dir",
    "read_scores",
    "run_split_learning",
    "write_bundle",
]
