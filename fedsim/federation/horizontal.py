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

Differential privacy: with record-level DP settings (:func:`fedsim.privacy.privacy_for`) each partner
trains every round with DP-SGD (:func:`fedsim.privacy.make_private_fit`; its entity is the unit of
privacy), keeps its accountant state in its own Flower ``context.state`` so ε accumulates over the
rounds, and reports its ledger (``dp_epsilon``, ``dp_sigma``, …) with its update. Not covered by ε: the
column moments and class-weight sums of step 1. Client-level DP (Flower's DP wrappers) is refused.

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
from typing import Any, Literal, Protocol, cast

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
from fedsim.privacy import PrivacyError, PrivacySettings, privacy_for
from fedsim.rows import RunContext, entity_days
from fedsim.training import TrainConfig, fit, get_weights, predict_scores, set_weights, weight_names

logger = logging.getLogger("fedsim.federation")

Engine = Literal["simulation", "deployment", "in_process"]
ENGINES: tuple[str, ...] = ("simulation", "deployment", "in_process")
"""``in_process`` runs the same rounds without Flower (a baseline for tests and benchmarks, not FL)."""
STATS, SCORE = "query.stats", "query.score"
MAX_OVER_PARTNERS = "max_over_partners"


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
    privacy: PrivacySettings | None = Field(
        None, description="record-level DP-SGD inside every partner (fedsim.privacy); None = no DP"
    )

    @classmethod
    def from_context(cls, ctx: RunContext) -> HorizontalSettings:
        """Settings from a run: ``ctx.options`` (the experiment's ``federation`` section) + ``ctx.training``."""
        o = ctx.options
        if ctx.model not in ("logistic", "mlp"):
            raise FedsimError(f"model = {ctx.model!r}: horizontal FL trains torch models only; allowed: logistic, mlp")
        privacy = privacy_for(ctx)
        if privacy is not None and privacy.client_level is not None:
            raise PrivacyError(
                "privacy.client_level: client-level DP (Flower's DP wrappers) is not wired into "
                "horizontal FL; allowed: record-level DP-SGD (epsilon / noise_multiplier) or none"
            )
        return cls.model_validate(
            {
                "rounds": o.get("rounds", 5),
                "local_epochs": o.get("local_epochs", 1),
                "strategy": o.get("strategy", "fedavg"),
                "proximal_mu": o.get("proximal_mu", 0.01),
                "secure_aggregation": o.get("secure_aggregation", False),
                "model": ctx.model,
                "seed": ctx.seed,
                "batch_size": ctx.training.batch_size,
                "learning_rate": ctx.training.learning_rate,
                "privacy": privacy if privacy is not None and privacy.record_level else None,
            }
        )

    @property
    def mu(self) -> float:
        """The proximal μ partners apply: ``proximal_mu`` under FedProx, 0 under FedAvg."""
        return self.proximal_mu if self.strategy == "fedprox" else 0.0

    def client_config(self) -> dict[str, Any]:
        """Training settings every train message carries (ConfigRecord keys)."""
        return {
            "model": self.model,
            "seed": self.seed,
            "local-epochs": self.local_epochs,
            "rounds": self.rounds,
            "batch-size": self.batch_size,
            "learning-rate": self.learning_rate,
            "proximal-mu": self.mu,
            "dp-settings": self.privacy.model_dump_json() if self.privacy is not None else "",
        }


@dataclass
class HorizontalOutcome:
    """What the ServerApp learned about one run (all per-partner values keyed by partner name).

    round_loss: train loss per round, averaged over the partners that replied, weighted by their
    ``num-examples`` (NaN for a round without replies). partner_loss: each partner's loss per round
    (NaN where it failed). dropouts: partner → rounds in which its ClientApp failed. n_examples:
    training rows per partner. pos_weight: global class balance Σw₋/Σw₊ (NaN if no positives).
    uninformative: no partner had a reported case in the training window, so nothing was trained and
    every row scores 0 (as the siloed regime does). rounds_seconds: wall time of the training rounds.
    dp: partner → its DP ledger after its last completed round (``dp_epsilon``, ``dp_sigma``, …; under
    SecAgg+ only ``"max over partners"``, since the server cannot tell the partners' replies apart).
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
    rounds_seconds: float = math.nan
    failure_reasons: dict[str, str] = field(default_factory=dict)
    dp: dict[str, dict[str, float]] = field(default_factory=dict)

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


@dataclass
class LocalRound:
    """What one partner's round produced: weights (get_weights order), num-examples (rows), the final
    epoch's train loss, and under DP the accountant state to keep and the ledger as ``dp_*`` metrics."""

    weights: list[np.ndarray]
    n_examples: int
    loss: float
    dp_state: dict[str, Any] | None = None
    dp_metrics: dict[str, float] = field(default_factory=dict)


def train_locally(
    data: PartnerData,
    arrays: Sequence[np.ndarray],
    config: Mapping[str, Any],
    *,
    dp_state: dict[str, Any] | None = None,
) -> LocalRound:
    """One round at one partner: global weights in, locally trained weights out (shared loop ``fit``).

    Rows are weighted by their subsampling weight times the global ``pos-weight`` for positives (the
    pooled regime's balanced class weight, identical to BCE's ``pos_weight`` for 0/1 labels). With
    ``dp-settings`` in ``config`` the round runs DP-SGD (:func:`fedsim.privacy.make_private_fit`, the
    partner entity as unit of privacy) and ``dp_state`` carries the accountant across rounds.
    """
    std = standardizer_from_lists(dict(config))
    X, y = std.transform(data.X), data.y.astype(np.float32)
    model = make_model(str(config["model"]), n_features=X.shape[1], seed=int(config["seed"]))
    set_weights(model, arrays)
    mu = float(config.get("proximal-mu", 0.0))
    cfg = TrainConfig.model_validate(
        {
            "epochs": int(config["local-epochs"]),
            "batch_size": int(config["batch-size"]),
            "learning_rate": float(config["learning-rate"]),
            "proximal_mu": mu,
            "class_weight": None,
            "seed": round_seed(int(config["seed"]), int(config["server-round"]), data.partner),
        }
    )
    weight = data.weight * np.where(data.y == 1, float(config["pos-weight"]), 1.0)
    reference = list(arrays) if mu > 0 else None
    if not config.get("dp-settings"):
        report = fit(model, X, y, config=cfg, sample_weight=weight, reference_params=reference)
        return LocalRound(get_weights(model), data.n_rows, float(report.final_loss))
    from fedsim.privacy import AccountantState, make_private_fit

    out = make_private_fit(
        model,
        X,
        y,
        privacy=PrivacySettings.model_validate_json(str(config["dp-settings"])),
        config=cfg,
        seed=round_seed(int(config["seed"]), 0, data.partner),
        groups=data.entity,
        sample_weight=weight,
        state=AccountantState.from_dict(dp_state) if dp_state else None,
        total_rounds=int(config["rounds"]),
        reference_params=reference,
    )
    return LocalRound(
        get_weights(model), data.n_rows, float(out.report.final_loss), out.state.to_dict(), out.ledger.as_metrics()
    )


def score_locally(data: PartnerData, arrays: Sequence[np.ndarray], config: Mapping[str, Any], out_dir: Path) -> int:
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
        rows = pd.DataFrame(
            {
                "partner": data.partner,
                "entity_id": frame["entity_id"].to_numpy(),
                "decision_ts": frame["decision_ts"].to_numpy(),
                "score": score,
            }
        )
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

    if RECORD_KEY_CONFIGS in message.content.config_records:
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


DP_STATE = "fedsim.dp"
"""Key of the partner's DP accountant state in its Flower ``context.state`` (kept between rounds)."""


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
    return result


def make_client_app(
    env: ClientEnv, *, capture_dir: str | Path | None = None, mods: Sequence[Callable[..., Any]] = ()
) -> Any:
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
    res = FitRes(
        Status(Code.OK, "ok"),
        ndarrays_to_parameters(done.weights),
        done.n_examples,
        {"train-loss": done.loss, **done.dp_metrics},
    )
    return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)


_JSON = "json:"


def to_legacy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Lists as JSON text: the legacy (SecAgg+) FitIns config carries scalars only."""
    return {k: _JSON + json.dumps(v) if isinstance(v, list) else v for k, v in config.items()}


def from_legacy_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`to_legacy_config`."""
    return {
        k: json.loads(v[len(_JSON) :]) if isinstance(v, str) and v.startswith(_JSON) else v for k, v in config.items()
    }


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
    dp: dict[str, dict[str, float]] = field(default_factory=dict)

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
                ledger = {k: float(v) for k, v in metrics.items() if k.startswith("dp_")}
                if ledger:
                    self.dp[partner] = ledger
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
            raise FedsimError(
                f"horizontal: only {len(nodes)} of {expected} partners connected within {timeout_s:.0f} s"
            )
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
        moments.append(
            ColumnMoments(
                n_rows=int(metrics["n-rows"]),
                count=rec["count"].numpy(),
                mean=rec["mean"].numpy(),
                m2=rec["m2"].numpy(),
            )
        )
        positive += float(metrics["positive-weight"])
        negative += float(metrics["negative-weight"])
    first = sorted(columns)[0]
    for partner, cols in columns.items():
        if cols != columns[first]:
            raise FedsimError(
                f"horizontal: partner {partner} has feature columns {cols}, {first} has "
                f"{columns[first]}; allowed: partners of one kind with the same columns"
            )
    return partner_of, columns[first], combine_moments(moments), positive, negative


def run_server(grid: Any, context: Any, settings: HorizontalSettings, *, expected: int) -> HorizontalOutcome:
    """The ServerApp's whole run (statistics → rounds → scoring); returns what it learned."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    timeout = settings.round_timeout_s
    nodes = _wait_for_nodes(grid, expected, timeout)[:expected]
    stats = _ask_all(grid, nodes, STATS, RecordDict({"config": ConfigRecord({})}), timeout)
    _require_all(stats, nodes, {}, "before round 1 (column statistics)")
    partner_of, _columns, moments, positive, negative = _collect_stats(stats)
    std, config = global_setup(settings, moments, positive=positive, negative=negative)
    uninformative, pos_weight = positive <= 0, float(config["pos-weight"])
    initial = make_model(settings.model, n_features=std.n_features_out_, seed=settings.seed)
    names, arrays = weight_names(initial), get_weights(initial)
    log = RoundLog(partner_of, settings.rounds)
    round_loss = [math.nan] * settings.rounds
    rounds_started = time.perf_counter()
    if uninformative:
        logger.warning(
            "horizontal: no reported fraud at %s in the training window; nothing to train, every row scores 0",
            ", ".join(sorted(partner_of.values())),
        )
    elif settings.secure_aggregation:
        arrays, round_loss = _secagg_rounds(
            grid, context, settings, config, arrays, log, max_weight=float(moments.n_rows)
        )
    else:
        arrays, round_loss = _message_api_rounds(grid, settings, config, names, arrays, log)
    rounds_seconds = time.perf_counter() - rounds_started
    final = ArrayRecord({k: Array(np.asarray(v)) for k, v in zip(names, arrays, strict=True)})
    score_config = ConfigRecord({**config, "constant": uninformative})
    scored = _ask_all(grid, nodes, SCORE, RecordDict({"arrays": final, "config": score_config}), timeout)
    _require_all(scored, nodes, partner_of, f"scoring after round {settings.rounds}")
    n_examples = {partner_of[n]: int(stats[n].content["metrics"]["n-rows"]) for n in nodes}
    return HorizontalOutcome(
        partners=sorted(partner_of.values()),
        rounds=settings.rounds,
        round_loss=round_loss,
        partner_loss=log.partner_loss,
        dropouts=log.dropouts,
        n_examples=n_examples,
        n_features=std.n_features_out_,
        pos_weight=pos_weight,
        uninformative=uninformative,
        secure_aggregation=settings.secure_aggregation,
        strategy=settings.strategy,
        rounds_seconds=rounds_seconds,
        failure_reasons=log.reasons,
        dp=log.dp,
    )


def global_setup(
    settings: HorizontalSettings, moments: ColumnMoments, *, positive: float, negative: float
) -> tuple[Any, dict[str, Any]]:
    """The global standardiser and the config every partner trains with (settings + scaling + class balance).

    ``pos-weight`` = Σw₋ / Σw₊ over all partners (NaN when no partner has a positive row).
    """
    std = standardizer_from_moments(moments)
    pos_weight = negative / positive if positive > 0 else math.nan
    return std, {**settings.client_config(), **standardizer_to_lists(std), "pos-weight": pos_weight}


def fedavg(updates: Sequence[Sequence[np.ndarray]], weights: Sequence[float]) -> list[np.ndarray]:
    """Federated averaging: Σ_k (n_k / Σ n) · w_k, tensor by tensor (McMahan et al. 2017, Algorithm 1).

    updates: one list of arrays per partner (same shapes, same order); weights: n_k (rows) per partner.
    """
    if not updates or len(updates) != len(weights):
        raise ValueError(
            f"updates: {len(updates)} partners, weights: {len(weights)}; allowed: one weight per "
            "partner, at least one partner"
        )
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"weights: sum {total}; allowed: a positive total")
    return [
        np.sum(
            [np.asarray(u[i], dtype=np.float64) * (w / total) for u, w in zip(updates, weights, strict=True)], axis=0
        )
        for i in range(len(updates[0]))
    ]


def run_in_process(
    datas: Sequence[PartnerData], settings: HorizontalSettings
) -> tuple[list[np.ndarray], HorizontalOutcome, dict[str, Any]]:
    """The same federation with no Flower at all: statistics, then rounds of local training + :func:`fedavg`.

    The ``in_process`` engine: a reference for tests (a Flower run must give the same model) and the
    benchmark's baseline (Flower's overhead = Flower run time ÷ this). Same maths, same order, same
    seeds as the ServerApp/ClientApp pair. Returns (final weights, outcome, partner config).
    """
    datas = sorted(datas, key=lambda d: d.partner)
    summaries = [partner_summary(d) for d in datas]
    positive, negative = sum(p for _, p, _ in summaries), sum(n for _, _, n in summaries)
    moments = combine_moments([m for m, _, _ in summaries])
    std, config = global_setup(settings, moments, positive=positive, negative=negative)
    arrays = get_weights(make_model(settings.model, n_features=std.n_features_out_, seed=settings.seed))
    log = RoundLog({i: d.partner for i, d in enumerate(datas)}, settings.rounds)
    round_loss = [math.nan] * settings.rounds
    states: dict[str, dict[str, Any] | None] = {d.partner: None for d in datas}
    started = time.perf_counter()
    for server_round in range(1, settings.rounds + 1 if positive > 0 else 1):
        results = [
            train_locally(d, arrays, {**config, "server-round": server_round}, dp_state=states[d.partner])
            for d in datas
        ]
        sizes = [r.n_examples for r in results]
        arrays = fedavg([r.weights for r in results], sizes)
        round_loss[server_round - 1] = sum(r.n_examples * r.loss for r in results) / sum(sizes)
        for d, r in zip(datas, results, strict=True):
            log.partner_loss[d.partner][server_round - 1] = r.loss
            states[d.partner] = r.dp_state
            if r.dp_metrics:
                log.dp[d.partner] = r.dp_metrics
    outcome = HorizontalOutcome(
        partners=[d.partner for d in datas],
        rounds=settings.rounds,
        round_loss=round_loss,
        partner_loss=log.partner_loss,
        dropouts={},
        n_examples={d.partner: d.n_rows for d in datas},
        n_features=std.n_features_out_,
        pos_weight=float(config["pos-weight"]),
        uninformative=positive <= 0,
        secure_aggregation=False,
        strategy=settings.strategy,
        rounds_seconds=time.perf_counter() - started,
        dp=log.dp,
    )
    return arrays, outcome, {**config, "constant": positive <= 0}


def _message_api_rounds(
    grid: Any,
    settings: HorizontalSettings,
    config: dict[str, Any],
    names: list[str],
    arrays: list[np.ndarray],
    log: RoundLog,
) -> tuple[list[np.ndarray], list[float]]:
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
    kwargs: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 0.0,
        "min_train_nodes": n,
        "min_evaluate_nodes": 0,
        "min_available_nodes": n,
    }
    if settings.strategy == "fedprox":
        kwargs["proximal_mu"] = settings.proximal_mu
    strategy = Recording(**kwargs)
    train_config = ConfigRecord(config)  # FedProx also sets "proximal-mu" itself (same value)
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord({k: Array(np.asarray(v)) for k, v in zip(names, arrays, strict=True)}),
        num_rounds=settings.rounds,
        timeout=settings.round_timeout_s,
        train_config=train_config,
    )
    losses = [
        float(result.train_metrics_clientapp.get(r, {}).get("train-loss", math.nan))
        for r in range(1, settings.rounds + 1)
    ]
    return result.arrays.to_numpy_ndarrays(), losses


def _secagg_rounds(
    grid: Any,
    context: Any,
    settings: HorizontalSettings,
    config: dict[str, Any],
    arrays: list[np.ndarray],
    log: RoundLog,
    *,
    max_weight: float,
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
        epsilons = [float(m["dp_epsilon"]) for _, m in results if "dp_epsilon" in m]
        if epsilons:  # the replies are anonymous under SecAgg+: keep the worst partner's ε, δ
            log.dp[MAX_OVER_PARTNERS] = {
                "dp_epsilon": max(epsilons),
                "dp_delta": max(float(m["dp_delta"]) for _, m in results),
            }
        return {"train-loss": sum(k * float(m["train-loss"]) for k, m in results) / total} if total else {}

    strategy = LegacyFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_evaluate_clients=0,
        min_available_clients=n,
        initial_parameters=ndarrays_to_parameters(arrays),
        fit_metrics_aggregation_fn=cast(Any, weighted_loss),
        on_fit_config_fn=lambda server_round: to_legacy_config({**config, "server-round": server_round}),
    )
    legacy = LegacyContext(
        context,
        config=ServerConfig(num_rounds=settings.rounds, round_timeout=settings.round_timeout_s),
        strategy=strategy,
    )
    # All partners hold shares; any 2/3 of them (at least 2) can unmask a dropped partner's pairwise masks.
    # max_weight = all rows, so each partner's weight ratio n_k / max_weight stays <= 1 (no overflow).
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=1.0,
            reconstruction_threshold=0.67,
            max_weight=max_weight,
            clipping_range=16.0,
            timeout=settings.round_timeout_s,
        )
    )
    workflow(grid, legacy)
    history = dict(legacy.history.metrics_distributed_fit.get("train-loss", []))
    losses = [float(history.get(r, math.nan)) for r in range(1, settings.rounds + 1)]
    missing = [r for r, loss in enumerate(losses, start=1) if math.isnan(loss)]
    if missing:
        # SecAgg+ halts a round when too few partners complete its stages; never go on silently.
        raise FedsimError(
            f"horizontal (SecAgg+): round(s) {missing} did not complete secure aggregation "
            f"among {', '.join(sorted(log.partner_of.values()))}; the partners' errors are in the log"
        )
    return legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays(), losses


def make_server_app(settings: HorizontalSettings, *, expected: int, sink: Callable[[HorizontalOutcome], None]) -> Any:
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


def run_horizontal(
    ctx: RunContext,
    members: Sequence[str],
    settings: HorizontalSettings,
    *,
    engine: Engine = "simulation",
    capture_dir: str | Path | None = None,
    faults: Mapping[str, int] | None = None,
    work_dir: str | Path | None = None,
) -> HorizontalRun:
    """Federate ``members`` (partners of one kind) with ``settings`` on ``engine``; collect their scores.

    Args:
        ctx: the run; each member's rows are built from ``partner_only(ctx, member)``.
        members: two or more partner names.
        settings: rounds, strategy, μ, secure aggregation, model, seed, local training settings.
        engine: ``"simulation"`` (Flower simulation engine, Ray kept warm), ``"deployment"`` (a local
            SuperLink and one SuperNode per member, :mod:`fedsim.federation.deployment`) or
            ``"in_process"`` (the same rounds without Flower: a baseline, not federated learning).
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
        elif engine == "in_process":
            outcome, prepare = _in_process(ctx, members, settings, work)
        else:
            from fedsim.federation.deployment import run_horizontal_deployment

            prepare_start = time.perf_counter()
            outcome = run_horizontal_deployment(
                ctx, members, settings, work=work, capture_dir=capture_dir, faults=faults or {}
            )
            prepare = time.perf_counter() - prepare_start  # building happens inside the SuperNodes
        scores = collect_scores(work / "out", members, "test")
        second = collect_scores(work / "out", members, "second_test") if ctx.split.second_test else None
        return HorizontalRun(
            scores=scores,
            second_scores=second,
            outcome=outcome,
            engine=engine,
            seconds=time.perf_counter() - started,
            prepare_seconds=prepare,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _simulate(
    ctx: RunContext,
    members: list[str],
    settings: HorizontalSettings,
    work: Path,
    capture_dir: str | Path | None,
    faults: Mapping[str, int],
) -> tuple[HorizontalOutcome, float]:
    t0 = time.perf_counter()
    for partner in members:  # each partner's rows from its own data only, one directory each
        build_partner_data(partner_only(ctx, partner), partner).save(work / "partners" / partner)
    prepare = time.perf_counter() - t0
    return simulate_saved(members, settings, work, capture_dir=capture_dir, faults=faults), prepare


def _in_process(
    ctx: RunContext, members: list[str], settings: HorizontalSettings, work: Path
) -> tuple[HorizontalOutcome, float]:
    t0 = time.perf_counter()
    datas = [build_partner_data(partner_only(ctx, partner), partner) for partner in members]
    prepare = time.perf_counter() - t0
    arrays, outcome, config = run_in_process(datas, settings)
    for d in datas:
        score_locally(d, arrays, config, work / "out" / d.partner)
    return outcome, prepare


def simulate_saved(
    members: Sequence[str],
    settings: HorizontalSettings,
    work: Path,
    *,
    capture_dir: str | Path | None = None,
    faults: Mapping[str, int] | None = None,
) -> HorizontalOutcome:
    """Run the federation on the simulation engine over rows saved in ``work/partners/<member>/``.

    Scores land in ``work/out/<member>/``. Lower level than :func:`run_horizontal` (used by the benchmark
    to federate any set of saved :class:`PartnerData`).
    """
    members = list(members)
    env = SimulationClientEnv(
        partners=tuple(members),
        data_root=str(work / "partners"),
        out_root=str(work / "out"),
        faults=tuple(sorted((faults or {}).items())),
    )
    box: dict[str, HorizontalOutcome] = {}
    server = make_server_app(settings, expected=len(members), sink=lambda o: box.__setitem__("outcome", o))
    run_in_simulation(server, make_client_app(env, capture_dir=capture_dir), num_nodes=len(members))
    if "outcome" not in box:
        raise FedsimError("horizontal: the simulation ended without a result from the ServerApp")
    return box["outcome"]


def collect_scores(out_root: Path, members: Sequence[str], window: str) -> pd.DataFrame:
    """Concatenate the members' ``scores_<window>.parquet`` files (each written by the partner itself)."""
    frames = []
    for partner in members:
        path = out_root / partner / f"scores_{window}.parquet"
        if not path.is_file():
            raise FedsimError(f"horizontal: partner {partner} wrote no {window} scores ({path} missing)")
        frames.append(pd.read_parquet(path))
    return pd.concat(frames, ignore_index=True)
