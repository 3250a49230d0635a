"""Horizontal federated learning: partners of one kind train one model (FedAvg / FedProx) on Flower.

One ServerApp and one ClientApp (Flower Message API); each SuperNode is one partner. The run:

1. ``query.stats`` — each partner returns per-column moments of its training features (count, mean,
   M2; :mod:`fedsim.federation.standardize`), its row count, the summed weights of its positive and
   negative rows, and its partner name + column names. The server combines them into one global
   standardiser (exactly the pooled one) and one global class balance ``pos_weight = Σw₋ / Σw₊``
   (the "balanced" weight of the pooled regime). *Standardisation is federated, not local.*
2. ``train`` × rounds — FedAvg (McMahan et al. 2017, "Communication-efficient learning of deep
   networks from decentralized data") or FedProx (Li et al. 2020): the server sends the global
   weights plus the standardiser and training settings; each partner trains locally with the shared
   loop :func:`fedsim.training.fit` (FedProx: ``proximal_mu`` with the received weights as
   ``reference_params``) and returns weights, its ``num-examples`` and its train loss. The server
   averages weights by ``num-examples``. With ``secure_aggregation`` the rounds run through Flower's
   SecAgg+ workflow (legacy stack: ``LegacyContext`` + ``DefaultWorkflow(SecAggPlusWorkflow)``,
   ``secaggplus_mod`` on the client's train handler): the server only sees the masked sum.
3. ``query.score`` — the server sends the final weights; each partner scores its own test rows with
   them, *locally*, and writes entity-day scores (:func:`fedsim.regimes.base.entity_days`) to its own
   output directory. Scores never cross the Flower boundary; the testbed collects them from the
   partners' outputs afterwards, as an evaluator would.

What crosses a partner's boundary: model weights, the moment vectors above (length = columns), a few
scalar metrics (rows, summed weights, loss, rows scored), the partner name and feature column names.
No rows, labels, scores or identifiers (checked by tests/federation/test_horizontal_boundary.py).

Dropout: a partner whose ClientApp fails in a round is left out of that round's average; the run
completes with the rest and the outcome records who failed when (``dropouts``). If *every* partner
fails in a round, or one fails before training (statistics) or while scoring, the run stops with a
:class:`~fedsim.errors.FedsimError` naming the partner(s) and the round.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fedsim.errors import FedsimError
from fedsim.federation.engine import capture_mod, run_in_simulation
from fedsim.federation.partner_data import PartnerData, build_partner_data, partner_only
from fedsim.federation.standardize import (
    ColumnMoments,
    column_moments,
    combine_moments,
    standardizer_from_lists,
    standardizer_from_moments,
    standardizer_to_lists,
)
from fedsim.models import make_model
from fedsim.regimes.base import RunContext, entity_days
from fedsim.training import TrainConfig, fit, get_weights, predict_scores, set_weights, weight_names

logger = logging.getLogger("fedsim.federation")

Engine = Literal["simulation", "deployment"]
ENGINES: tuple[str, ...] = ("simulation", "deployment")
STATS, SCORE = "query.stats", "query.score"


class HorizontalSettings(BaseModel):
    """Settings of one horizontal federation. Frozen; validated when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(5, ge=1, le=1000, description="federated rounds (count)")
    local_epochs: int = Field(1, ge=1, le=100, description="local epochs per round at each partner (count)")
    strategy: Literal["fedavg", "fedprox"] = Field("fedavg", description="aggregation strategy")
    proximal_mu: float = Field(0.01, ge=0, le=100, description="FedProx μ; used only with strategy fedprox")
    secure_aggregation: bool = Field(False, description="SecAgg+ over the model updates")
    model: Literal["logistic", "mlp"] = Field("logistic", description="torch model family (fedsim.models)")
    seed: int = Field(0, ge=0, description="seeds the initial model and each partner's batch order")
    batch_size: int = Field(512, ge=1, description="rows per local batch (count)")
    learning_rate: float = Field(0.01, gt=0, le=10, description="local optimizer step size")
    round_timeout_s: float = Field(900.0, gt=0, description="seconds to wait for the partners' replies")

    @classmethod
    def from_context(cls, ctx: RunContext) -> HorizontalSettings:
        """Settings from a run: ``ctx.options`` (the experiment's ``federation`` section) + ``ctx.training``."""
        o = ctx.options
        if ctx.model not in ("logistic", "mlp"):
            raise FedsimError(f"model = {ctx.model!r}: horizontal FL trains torch models only; "
                              "allowed: logistic, mlp")
        return cls(rounds=o.get("rounds", 5), local_epochs=o.get("local_epochs", 1),
                   strategy=o.get("strategy", "fedavg"), proximal_mu=o.get("proximal_mu", 0.01),
                   secure_aggregation=o.get("secure_aggregation", False), model=ctx.model, seed=ctx.seed,
                   batch_size=ctx.training.batch_size, learning_rate=ctx.training.learning_rate)

    @property
    def mu(self) -> float:
        """The proximal μ partners apply: ``proximal_mu`` under FedProx, 0 under FedAvg."""
        return self.proximal_mu if self.strategy == "fedprox" else 0.0

    def client_config(self) -> dict[str, Any]:
        """Training settings every train message carries (ConfigRecord keys)."""
        return {"model": self.model, "seed": self.seed, "local-epochs": self.local_epochs,
                "batch-size": self.batch_size, "learning-rate": self.learning_rate, "proximal-mu": self.mu}


@dataclass
class HorizontalOutcome:
    """What the ServerApp learned about one run (all per-partner values keyed by partner name).

    round_loss: train loss per round, averaged over the partners that replied, weighted by their
    ``num-examples`` (NaN for a round without replies). partner_loss: each partner's loss per round
    (NaN where it failed). dropouts: partner → rounds in which its ClientApp failed. n_examples:
    training rows per partner. pos_weight: global class balance Σw₋/Σw₊ (NaN if no positives).
    uninformative: no partner had a reported case in the training window, so nothing was trained and
    every row scores 0 (as the siloed regime does).
    """

    partners: list[str]
    rounds: int
    round_loss: list[float]
    partner_loss: dict[str, list[float]]
    dropouts: dict[str, list[int]]
    n_examples: dict[str, int]
    n_features: int
    pos_weight: float
    uninformative: bool
    secure_aggregation: bool
    strategy: str
    failure_reasons: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), default=float))
        return path

    @classmethod
    def read(cls, path: Path) -> HorizontalOutcome:
        return cls(**json.loads(path.read_text()))


# --------------------------------------------------------------------------------------------------
# Client side: plain torch on the partner's own rows (no Flower in these three functions)
# --------------------------------------------------------------------------------------------------
def round_seed(seed: int, server_round: int, partner: str) -> int:
    """Batch-order seed of one partner in one round: stable across processes (crc32, not hash())."""
    return int(np.random.SeedSequence([seed, server_round, zlib.crc32(partner.encode())]).generate_state(1)[0])


def partner_summary(data: PartnerData) -> tuple[ColumnMoments, float, float]:
    """What a partner tells the server before training: column moments, Σw of positives, Σw of negatives."""
    positive = float(data.weight[data.y == 1].sum())
    return column_moments(data.X), positive, float(data.weight.sum()) - positive


def train_locally(data: PartnerData, arrays: Sequence[np.ndarray], config: Mapping[str, Any]
                  ) -> tuple[list[np.ndarray], int, float]:
    """One round at one partner: global weights in, locally trained weights out (shared loop ``fit``).

    Rows are weighted by their subsampling weight times the global ``pos-weight`` for positives (the
    pooled regime's balanced class weight, identical to BCE's ``pos_weight`` for 0/1 labels).
    Returns (weights in get_weights order, num-examples, final epoch's train loss).
    """
    std = standardizer_from_lists(dict(config))
    X = std.transform(data.X)
    model = make_model(str(config["model"]), n_features=X.shape[1], seed=int(config["seed"]))
    set_weights(model, arrays)
    mu = float(config.get("proximal-mu", 0.0))
    cfg = TrainConfig(epochs=int(config["local-epochs"]), batch_size=int(config["batch-size"]),
                      learning_rate=float(config["learning-rate"]), proximal_mu=mu, class_weight=None,
                      seed=round_seed(int(config["seed"]), int(config["server-round"]), data.partner))
    weight = data.weight * np.where(data.y == 1, float(config["pos-weight"]), 1.0)
    report = fit(model, X, data.y.astype(np.float32), config=cfg, sample_weight=weight,
                 reference_params=list(arrays) if mu > 0 else None)
    return get_weights(model), data.n_rows, float(report.final_loss)


def score_locally(data: PartnerData, arrays: Sequence[np.ndarray], config: Mapping[str, Any],
                  out_dir: Path) -> int:
    """Score the partner's own test rows with the global model; write entity-day scores to ``out_dir``.

    Files: ``scores_<window>.parquet`` (partner, entity_id, day, decision_ts, score). Returns the
    number of entity-day rows written.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    model = None
    if not config.get("constant", False):
        std = standardizer_from_lists(dict(config))
        model = make_model(str(config["model"]), n_features=std.n_features_out_, seed=int(config["seed"]))
        set_weights(model, arrays)
    written = 0
    for window, frame in data.tests.items():
        if model is None or frame.empty:
            score = np.zeros(len(frame))
        else:
            score = predict_scores(model, std.transform(frame[data.columns].to_numpy(np.float64)))
        rows = pd.DataFrame({"partner": data.partner, "entity_id": frame["entity_id"].to_numpy(),
                             "decision_ts": frame["decision_ts"].to_numpy(), "score": score})
        days = entity_days(rows)
        days.to_parquet(out_dir / f"scores_{window}.parquet", index=False)
        written += len(days)
    return written


# --------------------------------------------------------------------------------------------------
# ClientApp
# --------------------------------------------------------------------------------------------------
class ClientEnv(Protocol):
    """Where a ClientApp finds its partner, its rows and its output directory (engine-specific)."""

    def partner(self, context: Any) -> str: ...

    def data(self, context: Any) -> PartnerData: ...

    def out_dir(self, context: Any) -> Path: ...

    def fault_round(self, context: Any) -> int | None: ...


class PartnerFault(RuntimeError):
    """A failure injected on purpose (dropout tests): the partner's ClientApp raises from a given round on."""


_DATA_CACHE: dict[str, PartnerData] = {}


def load_partner_data(directory: Path) -> PartnerData:
    """Read a partner's saved rows, keeping only the most recent directory per process in memory."""
    key = str(directory)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one run at a time per actor: never hold an old run's rows
        _DATA_CACHE[key] = PartnerData.load(directory)
    return _DATA_CACHE[key]


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

    if RECORD_KEY_CONFIGS in message.content.config_records:
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


def _local_round(env: ClientEnv, context: Any, arrays: list[np.ndarray], config: dict[str, Any]
                 ) -> tuple[list[np.ndarray], int, float]:
    partner, server_round = env.partner(context), int(config["server-round"])
    fault = env.fault_round(context)
    if fault is not None and server_round >= fault:
        raise PartnerFault(f"partner {partner}: injected failure in round {server_round}")
    _limit_threads()
    try:
        return train_locally(env.data(context), arrays, config)
    except Exception as err:
        raise FedsimError(f"partner {partner}, round {server_round}: local training failed: "
                          f"{type(err).__name__}: {err}") from err


def make_client_app(env: ClientEnv, *, capture_dir: str | Path | None = None,
                    mods: Sequence[Callable[..., Any]] = ()) -> Any:
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
        return Message(RecordDict({
            "moments": ArrayRecord({"count": Array(m.count), "mean": Array(m.mean), "m2": Array(m.m2)}),
            "metrics": MetricRecord({"n-rows": data.n_rows, "positive-weight": positive,
                                     "negative-weight": negative}),
            "identity": ConfigRecord({"partner": data.partner, "columns": list(data.columns)}),
        }), reply_to=msg)

    @app.train(mods=[_optional_secagg_mod])
    def train(msg: Message, context: Any) -> Message:
        if "fitins.parameters" in msg.content.array_records:  # SecAgg+ runs on the legacy record layout
            return _legacy_train(env, msg, context)
        record = msg.content["arrays"]
        names = list(record.keys())
        new, n, loss = _local_round(env, context, record.to_numpy_ndarrays(), dict(msg.content["config"]))
        return Message(RecordDict({
            "arrays": ArrayRecord({k: Array(np.asarray(v)) for k, v in zip(names, new, strict=True)}),
            "metrics": MetricRecord({"train-loss": loss, "num-examples": n}),
        }), reply_to=msg)

    @app.query("score")
    def score(msg: Message, context: Any) -> Message:
        _limit_threads()
        arrays = msg.content["arrays"].to_numpy_ndarrays()
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
    new, n, loss = _local_round(env, context, parameters_to_ndarrays(fitins.parameters), config)
    res = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(new), n, {"train-loss": loss})
    return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)


_JSON = "json:"


def to_legacy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Lists as JSON text: the legacy (SecAgg+) FitIns config carries scalars only."""
    return {k: _JSON + json.dumps(v) if isinstance(v, list) else v for k, v in config.items()}


def from_legacy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`to_legacy_config`."""
    return {k: json.loads(v[len(_JSON):]) if isinstance(v, str) and v.startswith(_JSON) else v
            for k, v in config.items()}


# --------------------------------------------------------------------------------------------------
# ServerApp
# --------------------------------------------------------------------------------------------------
@dataclass
class RoundLog:
    """Per-round bookkeeping on the server: who replied, who failed and why, per-partner losses."""

    partner_of: dict[int, str]
    rounds: int
    partner_loss: dict[str, list[float]] = field(default_factory=dict)
    dropouts: dict[str, list[int]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.partner_loss = {p: [math.nan] * self.rounds for p in self.partner_of.values()}

    def record(self, server_round: int, replies: list[Any]) -> None:
        """Note each reply of a train round; raise if no partner succeeded."""
        seen = set()
        for reply in replies:
            node = reply.metadata.src_node_id
            partner = self.partner_of.get(node, f"node {node}")
            seen.add(node)
            if reply.has_error():
                self._fail(partner, server_round, str(reply.error.reason))
            else:
                metrics = next(iter(reply.content.metric_records.values()))
                self.partner_loss[partner][server_round - 1] = float(metrics["train-loss"])
        for node in set(self.partner_of) - seen:
            self._fail(self.partner_of[node], server_round, "no reply before the round timeout")
        ok = [p for p in self.partner_loss if not math.isnan(self.partner_loss[p][server_round - 1])]
        if not ok:
            detail = "; ".join(f"{p}: {self.reasons.get(p, '?')}" for p in sorted(self.partner_loss))
            raise FedsimError(f"horizontal: every partner failed in round {server_round} ({detail})")

    def _fail(self, partner: str, server_round: int, reason: str) -> None:
        self.dropouts.setdefault(partner, []).append(server_round)
        self.reasons[partner] = reason.strip().splitlines()[-1][:500] if reason.strip() else "unknown error"
        logger.warning("horizontal: partner %s failed in round %d: %s", partner, server_round, self.reasons[partner])


def _wait_for_nodes(grid: Any, expected: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected:
            return nodes
        if time.monotonic() > deadline:
            raise FedsimError(f"horizontal: only {len(nodes)} of {expected} partners connected within "
                              f"{timeout_s:.0f} s")
        time.sleep(0.2)


def _ask_all(grid: Any, nodes: list[int], message_type: str, content: Any, timeout_s: float) -> dict[int, Any]:
    from flwr.app import Message

    messages = [Message(content=content, message_type=message_type, dst_node_id=n) for n in nodes]
    return {r.metadata.src_node_id: r for r in grid.send_and_receive(messages, timeout=timeout_s)}


def _require_all(replies: dict[int, Any], nodes: list[int], partner_of: Mapping[int, str], stage: str) -> None:
    problems = []
    for node in nodes:
        who = partner_of.get(node, f"node {node}")
        if node not in replies:
            problems.append(f"{who}: no reply")
        elif replies[node].has_error():
            problems.append(f"{who}: {str(replies[node].error.reason).strip().splitlines()[-1][:500]}")
    if problems:
        raise FedsimError(f"horizontal: failed {stage}: " + "; ".join(problems))


def _collect_stats(replies: dict[int, Any]) -> tuple[dict[int, str], list[str], ColumnMoments, float, float]:
    partner_of, columns, moments = {}, {}, []
    positive = negative = 0.0
    for node, reply in replies.items():
        ident, metrics, rec = reply.content["identity"], reply.content["metrics"], reply.content["moments"]
        partner_of[node] = str(ident["partner"])
        columns[partner_of[node]] = list(ident["columns"])
        moments.append(ColumnMoments(n_rows=int(metrics["n-rows"]), count=rec["count"].numpy(),
                                     mean=rec["mean"].numpy(), m2=rec["m2"].numpy()))
        positive += float(metrics["positive-weight"])
        negative += float(metrics["negative-weight"])
    first = sorted(columns)[0]
    for partner, cols in columns.items():
        if cols != columns[first]:
            raise FedsimError(f"horizontal: partner {partner} has feature columns {cols}, {first} has "
                              f"{columns[first]}; allowed: partners of one kind with the same columns")
    return partner_of, columns[first], combine_moments(moments), positive, negative


def run_server(grid: Any, context: Any, settings: HorizontalSettings, *, expected: int) -> HorizontalOutcome:
    """The ServerApp's whole run (statistics → rounds → scoring); returns what it learned."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    timeout = settings.round_timeout_s
    nodes = _wait_for_nodes(grid, expected, timeout)[:expected]
    stats = _ask_all(grid, nodes, STATS, RecordDict({"config": ConfigRecord({})}), timeout)
    _require_all(stats, nodes, {}, "before round 1 (column statistics)")
    partner_of, _columns, moments, positive, negative = _collect_stats(stats)
    std = standardizer_from_moments(moments)
    uninformative = positive <= 0
    pos_weight = negative / positive if positive > 0 else math.nan
    config = {**settings.client_config(), **standardizer_to_lists(std), "pos-weight": pos_weight}
    initial = make_model(settings.model, n_features=std.n_features_out_, seed=settings.seed)
    names, arrays = weight_names(initial), get_weights(initial)
    log = RoundLog(partner_of, settings.rounds)
    round_loss = [math.nan] * settings.rounds
    if uninformative:
        logger.warning("horizontal: no reported fraud at %s in the training window; nothing to train, "
                       "every row scores 0", ", ".join(sorted(partner_of.values())))
    elif settings.secure_aggregation:
        arrays, round_loss = _secagg_rounds(grid, context, settings, config, arrays, log,
                                            max_weight=float(moments.n_rows))
    else:
        arrays, round_loss = _message_api_rounds(grid, settings, config, names, arrays, log)
    final = ArrayRecord({k: Array(np.asarray(v)) for k, v in zip(names, arrays, strict=True)})
    score_config = ConfigRecord({**config, "constant": uninformative})
    scored = _ask_all(grid, nodes, SCORE, RecordDict({"arrays": final, "config": score_config}), timeout)
    _require_all(scored, nodes, partner_of, f"scoring after round {settings.rounds}")
    n_examples = {partner_of[n]: int(stats[n].content["metrics"]["n-rows"]) for n in nodes}
    return HorizontalOutcome(partners=sorted(partner_of.values()), rounds=settings.rounds, round_loss=round_loss,
                             partner_loss=log.partner_loss, dropouts=log.dropouts, n_examples=n_examples,
                             n_features=std.n_features_out_, pos_weight=pos_weight, uninformative=uninformative,
                             secure_aggregation=settings.secure_aggregation, strategy=settings.strategy,
                             failure_reasons=log.reasons)


def _message_api_rounds(grid: Any, settings: HorizontalSettings, config: dict[str, Any], names: list[str],
                        arrays: list[np.ndarray], log: RoundLog) -> tuple[list[np.ndarray], list[float]]:
    from flwr.app import Array, ArrayRecord, ConfigRecord
    from flwr.serverapp.strategy import FedAvg, FedProx

    base = FedProx if settings.strategy == "fedprox" else FedAvg

    class Recording(base):  # type: ignore[misc, valid-type]
        """The Flower strategy, plus per-round bookkeeping of replies and failures."""

        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            # A fixed order (by partner) makes the float sums, hence the run, reproducible.
            replies = sorted(replies, key=lambda r: log.partner_of.get(r.metadata.src_node_id, ""))
            log.record(server_round, replies)
            return super().aggregate_train(server_round, replies)

    n = len(log.partner_of)
    kwargs: dict[str, Any] = {"fraction_train": 1.0, "fraction_evaluate": 0.0, "min_train_nodes": n,
                              "min_evaluate_nodes": 0, "min_available_nodes": n}
    if settings.strategy == "fedprox":
        kwargs["proximal_mu"] = settings.proximal_mu
    strategy = Recording(**kwargs)
    train_config = ConfigRecord(config)  # FedProx also sets "proximal-mu" itself (same value)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(
        {k: Array(np.asarray(v)) for k, v in zip(names, arrays, strict=True)}), num_rounds=settings.rounds,
        timeout=settings.round_timeout_s, train_config=train_config)
    losses = [float(result.train_metrics_clientapp.get(r, {}).get("train-loss", math.nan))
              for r in range(1, settings.rounds + 1)]
    return result.arrays.to_numpy_ndarrays(), losses


def _secagg_rounds(grid: Any, context: Any, settings: HorizontalSettings, config: dict[str, Any],
                   arrays: list[np.ndarray], log: RoundLog, *, max_weight: float
                   ) -> tuple[list[np.ndarray], list[float]]:
    """Rounds through Flower's SecAgg+ workflow (legacy stack); FedProx = FedAvg + the client's μ term."""
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    n = len(log.partner_of)

    def weighted_loss(results: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
        total = sum(k for k, _ in results)
        return {"train-loss": sum(k * float(m["train-loss"]) for k, m in results) / total} if total else {}

    strategy = LegacyFedAvg(
        fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n, min_evaluate_clients=0, min_available_clients=n,
        initial_parameters=ndarrays_to_parameters(arrays), fit_metrics_aggregation_fn=weighted_loss,
        on_fit_config_fn=lambda server_round: to_legacy_config({**config, "server-round": server_round}))
    legacy = LegacyContext(context, config=ServerConfig(num_rounds=settings.rounds,
                                                        round_timeout=settings.round_timeout_s), strategy=strategy)
    # All partners hold shares; any 2/3 of them (at least 2) can unmask a dropped partner's pairwise masks.
    # max_weight = all rows, so each partner's weight ratio n_k / max_weight stays <= 1 (no overflow).
    workflow = DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(
        num_shares=1.0, reconstruction_threshold=0.67, max_weight=max_weight, clipping_range=16.0,
        timeout=settings.round_timeout_s))
    workflow(grid, legacy)
    history = dict(legacy.history.metrics_distributed_fit.get("train-loss", []))
    losses = [float(history.get(r, math.nan)) for r in range(1, settings.rounds + 1)]
    missing = [r for r, loss in enumerate(losses, start=1) if math.isnan(loss)]
    if missing:
        # SecAgg+ halts a round when too few partners complete its stages; never go on silently.
        raise FedsimError(f"horizontal (SecAgg+): round(s) {missing} did not complete secure aggregation "
                          f"among {', '.join(sorted(log.partner_of.values()))}; the partners' errors are in the log")
    return legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays(), losses


def make_server_app(settings: HorizontalSettings, *, expected: int,
                    sink: Callable[[HorizontalOutcome], None]) -> Any:
    """The horizontal ServerApp; the outcome goes to ``sink`` (a closure in simulation, a file in deployment)."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        sink(run_server(grid, context, settings, expected=expected))

    return app


# --------------------------------------------------------------------------------------------------
# Running one federation for a regime
# --------------------------------------------------------------------------------------------------
@dataclass
class HorizontalRun:
    """Scores of every member (entity-days, as the other regimes return them) plus the run's outcome."""

    scores: pd.DataFrame
    second_scores: pd.DataFrame | None
    outcome: HorizontalOutcome
    engine: str
    seconds: float
    prepare_seconds: float


def run_horizontal(ctx: RunContext, members: Sequence[str], settings: HorizontalSettings, *,
                   engine: Engine = "simulation", capture_dir: str | Path | None = None,
                   faults: Mapping[str, int] | None = None, work_dir: str | Path | None = None) -> HorizontalRun:
    """Federate ``members`` (partners of one kind) with ``settings`` on ``engine``; collect their scores.

    Args:
        ctx: the run; each member's rows are built from ``partner_only(ctx, member)``.
        members: two or more partner names.
        settings: rounds, strategy, μ, secure aggregation, model, seed, local training settings.
        engine: ``"simulation"`` (Flower simulation engine, Ray kept warm) or ``"deployment"`` (a local
            SuperLink and one SuperNode per member, :mod:`fedsim.federation.deployment`).
        capture_dir: if set, every message in and out of each ClientApp is recorded there.
        faults: partner → round from which its ClientApp raises (dropout tests only).
        work_dir: parent of the run's scratch directory (default: the system temp dir); removed after.
    """
    members = sorted(dict.fromkeys(members))
    if len(members) < 2:
        raise FedsimError(f"members = {members}: horizontal FL needs at least two partners of one kind")
    if engine not in ENGINES:
        raise FedsimError(f"federation.engine = {engine!r}: allowed: {', '.join(ENGINES)}")
    unknown = sorted(set(faults or {}) - set(members))
    if unknown:
        raise FedsimError(f"faults: partners {unknown} are not members; allowed: {', '.join(members)}")
    work = Path(tempfile.mkdtemp(prefix="fedsim-horizontal-", dir=work_dir))
    started = time.perf_counter()
    try:
        if engine == "simulation":
            outcome, prepare = _simulate(ctx, members, settings, work, capture_dir, faults or {})
        else:
            from fedsim.federation.deployment import run_horizontal_deployment

            prepare_start = time.perf_counter()
            outcome = run_horizontal_deployment(ctx, members, settings, work=work, capture_dir=capture_dir,
                                                faults=faults or {})
            prepare = time.perf_counter() - prepare_start  # building happens inside the SuperNodes
        scores = collect_scores(work / "out", members, "test")
        second = collect_scores(work / "out", members, "second_test") if ctx.split.second_test else None
        return HorizontalRun(scores=scores, second_scores=second, outcome=outcome, engine=engine,
                             seconds=time.perf_counter() - started, prepare_seconds=prepare)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _simulate(ctx: RunContext, members: list[str], settings: HorizontalSettings, work: Path,
              capture_dir: str | Path | None, faults: Mapping[str, int]) -> tuple[HorizontalOutcome, float]:
    t0 = time.perf_counter()
    for partner in members:  # each partner's rows from its own data only, one directory each
        build_partner_data(partner_only(ctx, partner), partner).save(work / "partners" / partner)
    prepare = time.perf_counter() - t0
    env = SimulationClientEnv(partners=tuple(members), data_root=str(work / "partners"),
                              out_root=str(work / "out"), faults=tuple(sorted(faults.items())))
    box: dict[str, HorizontalOutcome] = {}
    server = make_server_app(settings, expected=len(members), sink=lambda o: box.__setitem__("outcome", o))
    run_in_simulation(server, make_client_app(env, capture_dir=capture_dir), num_nodes=len(members))
    if "outcome" not in box:
        raise FedsimError("horizontal: the simulation ended without a result from the ServerApp")
    return box["outcome"], prepare


def collect_scores(out_root: Path, members: Sequence[str], window: str) -> pd.DataFrame:
    """Concatenate the members' ``scores_<window>.parquet`` files (each written by the partner itself)."""
    frames = []
    for partner in members:
        path = out_root / partner / f"scores_{window}.parquet"
        if not path.is_file():
            raise FedsimError(f"horizontal: partner {partner} wrote no {window} scores ({path} missing)")
        frames.append(pd.read_parquet(path))
    return pd.concat(frames, ignore_index=True)
