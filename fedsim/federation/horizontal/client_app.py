"""The horizontal ClientApp: unpack a message, call the partner's task (:mod:`.task`), pack the reply.

Three handlers: ``query.stats`` (:func:`~.task.partner_summary`), ``train`` (:func:`~.task.train_locally`;
Message API, or Flower's legacy FitIns/FitRes layout when the round runs SecAgg+, through
``secaggplus_mod`` on the train handler only) and ``query.score`` (:func:`~.task.score_locally`).
Under SecAgg+ a train reply carries nothing per partner in the clear (Bonawitz et al. 2017, "Practical
secure aggregation for privacy-preserving machine learning", CCS; Bell et al. 2020, "Secure single-server
aggregation with (poly)logarithmic overhead", CCS — SecAgg+): the loss is summed securely with the update,
the example count is a constant, and the DP ledger is written to the partner's own output directory.
Where the partner's rows come from differs per engine (:class:`ClientEnv`): the simulation engine
reads them from the partner's own directory, a SuperNode builds them from its own partner directory
(:mod:`.deployment_config`). Under DP the accountant state stays in the partner's ``context.state``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from fedsim.errors import FedsimError
from fedsim.federation.engine import capture_mod
from fedsim.federation.horizontal.protocol import DP_STATE, LEDGER_FILE, SECAGG_WEIGHT, from_legacy_config
from fedsim.federation.horizontal.task import LocalRound, partner_summary, score_locally, train_locally
from fedsim.federation.partner_data import PartnerData

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp


class ClientEnv(Protocol):
    """Where a ClientApp finds its partner, its rows and its output directory (engine-specific)."""

    def partner(self, context: Any) -> str: ...

    def data(self, context: Any) -> PartnerData: ...

    def out_dir(self, context: Any) -> Path: ...

    def fault_round(self, context: Any) -> int | None: ...


class PartnerFault(RuntimeError):
    """A failure injected on purpose (dropout tests): the partner's ClientApp raises from a given round on."""


_DATA_CACHE: dict[str, dict[str, PartnerData]] = {}


def load_partner_data(directory: Path) -> PartnerData:
    """Read a partner's saved rows once per process and run (an actor serves several partners of a run).

    Only the current run's directory is kept: a new run's first read drops the previous run's rows.
    """
    root, partner = str(directory.parent), directory.name
    if root not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[root] = {}
    if partner not in _DATA_CACHE[root]:
        _DATA_CACHE[root][partner] = PartnerData.load(directory)
    return _DATA_CACHE[root][partner]


@dataclass(frozen=True)
class SimulationClientEnv:
    """Simulation engine: node ``partition-id`` i is partner ``partners[i]``; rows from its own directory."""

    partners: tuple[str, ...]
    data_root: str
    out_root: str
    faults: tuple[tuple[str, int], ...] = ()

    def partner(self, context: Any) -> str:
        return self.partners[int(context.node_config["partition-id"])]

    def data(self, context: Any) -> PartnerData:
        return load_partner_data(Path(self.data_root) / self.partner(context))

    def out_dir(self, context: Any) -> Path:
        return Path(self.out_root) / self.partner(context)

    def fault_round(self, context: Any) -> int | None:
        return dict(self.faults).get(self.partner(context))


def _limit_threads() -> None:
    # Each ClientApp runs in its own actor / process on a small machine: one torch thread each.
    import torch

    torch.set_num_threads(1)


def _optional_secagg_mod(message: Any, context: Any, call_next: Callable[[Any, Any], Any]) -> Any:
    """SecAgg+ client protocol for train messages that carry its stage config; pass-through otherwise."""
    from flwr.client.mod import secaggplus_mod
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

    if RECORD_KEY_CONFIGS not in message.content.config_records:
        return call_next(message, context)
    reply = secaggplus_mod(message, context, call_next)
    if not reply.has_error() and "fitres.num_examples" in reply.content.metric_records:
        # The real count already weighted the masked update; the clear copy would single the partner out.
        reply.content.metric_records["fitres.num_examples"]["num_examples"] = SECAGG_WEIGHT
    return reply


def _local_round(env: ClientEnv, context: Any, arrays: list[np.ndarray], config: dict[str, Any]) -> LocalRound:
    partner, server_round = env.partner(context), int(config["server-round"])
    fault = env.fault_round(context)
    if fault is not None and server_round >= fault:
        raise PartnerFault(f"partner {partner}: injected failure in round {server_round}")
    _limit_threads()
    saved = context.state.config_records.get(DP_STATE)
    try:
        result = train_locally(
            env.data(context), arrays, config, dp_state=json.loads(str(saved["state"])) if saved is not None else None
        )
    except Exception as err:
        raise FedsimError(
            f"partner {partner}, round {server_round}: local training failed: {type(err).__name__}: {err}"
        ) from err
    if result.dp_state is not None:
        from flwr.app import ConfigRecord

        context.state.config_records[DP_STATE] = ConfigRecord({"state": json.dumps(result.dp_state)})
        out = env.out_dir(context)
        out.mkdir(parents=True, exist_ok=True)
        (out / LEDGER_FILE).write_text(json.dumps(result.dp_metrics))
    return result


def make_client_app(
    env: ClientEnv, *, capture_dir: str | Path | None = None, mods: Sequence[Callable[..., Any]] = ()
) -> ClientApp:
    """The horizontal ClientApp: ``query.stats``, ``train`` (Message API or SecAgg+ legacy), ``query.score``.

    capture_dir: record every message in and out (:func:`~fedsim.federation.engine.capture_mod`).
    mods: further app-wide Flower mods (e.g. the deployment app's run-config-driven capture).
    """
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp(mods=([capture_mod(capture_dir)] if capture_dir else []) + list(mods))

    @app.query("stats")
    def stats(msg: Message, context: Any) -> Message:
        data = env.data(context)
        m, positive, negative = partner_summary(data)
        return Message(
            RecordDict(
                {
                    "moments": ArrayRecord({"count": Array(m.count), "mean": Array(m.mean), "m2": Array(m.m2)}),
                    "metrics": MetricRecord(
                        {"n-rows": data.n_rows, "positive-weight": positive, "negative-weight": negative}
                    ),
                    "identity": ConfigRecord({"partner": data.partner, "columns": list(data.columns)}),
                }
            ),
            reply_to=msg,
        )

    @app.train(mods=[_optional_secagg_mod])
    def train(msg: Message, context: Any) -> Message:
        if "fitins.parameters" in msg.content.array_records:  # SecAgg+ runs on the legacy record layout
            return _legacy_train(env, msg, context)
        record = cast(Any, msg.content["arrays"])
        names = list(record.keys())
        done = _local_round(env, context, record.to_numpy_ndarrays(), dict(msg.content["config"]))
        return Message(
            RecordDict(
                {
                    "arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in zip(names, done.weights, strict=True)}),
                    "metrics": MetricRecord(
                        {"train-loss": done.loss, "num-examples": done.n_examples, **done.dp_metrics}
                    ),
                }
            ),
            reply_to=msg,
        )

    @app.query("score")
    def score(msg: Message, context: Any) -> Message:
        _limit_threads()
        arrays = cast(Any, msg.content["arrays"]).to_numpy_ndarrays()
        written = score_locally(env.data(context), arrays, dict(msg.content["config"]), env.out_dir(context))
        return Message(RecordDict({"metrics": MetricRecord({"rows-scored": written})}), reply_to=msg)

    return app


def _legacy_train(env: ClientEnv, msg: Any, context: Any) -> Any:
    """Train handler in the legacy FitIns/FitRes record layout that Flower's SecAgg+ workflow speaks."""
    import flwr.compat.common.recorddict_compat as compat
    from flwr.app import Message
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    config = from_legacy_config(dict(fitins.config))
    done = _local_round(env, context, parameters_to_ndarrays(fitins.parameters), config)
    # Nothing per partner in the clear: the loss rides inside the secure sum (SECAGG_EXTRA_ARRAYS), the DP
    # ledger stays in the partner's output directory (LEDGER_FILE), the count is replaced after masking.
    loss = np.asarray([0.0 if math.isnan(done.loss) else done.loss], dtype=np.float32)
    res = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters([*done.weights, loss]), done.n_examples, {})
    return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)
