"""The horizontal ServerApp: statistics → rounds (FedAvg / FedProx, ± SecAgg+) → scoring.

1. ``query.stats`` — each partner returns per-column moments of its training features, its row count
   and the summed weights of its positive and negative rows; :func:`~.task.global_setup` turns them
   into one global standardiser (exactly the pooled one) and one class balance Σw₋/Σw₊.
2. ``train`` × rounds — Flower's FedAvg (McMahan et al. 2017) or FedProx (Li et al. 2020) strategy,
   which averages the partners' weights by ``num-examples``; with ``secure_aggregation`` the rounds
   run through Flower's SecAgg+ workflow (legacy stack; Bell et al. 2020), so the server only sees the
   unmasked sum of the n-weighted updates and of the losses, and no per-partner number in the clear.
3. ``query.score`` — the final weights go to every partner, which scores its own rows locally.

Dropout: a partner that fails in a round is left out of that round's average (:class:`RoundLog`);
if every partner fails in a round, or one fails before training or while scoring, the run stops with
a :class:`~fedsim.errors.FedsimError` naming the partner(s) and the round.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fedsim.errors import FedsimError
from fedsim.federation.horizontal.protocol import SCORE, SECAGG_EXTRA_ARRAYS, STATS, to_legacy_config
from fedsim.federation.horizontal.settings import HorizontalOutcome, HorizontalSettings
from fedsim.federation.horizontal.task import global_setup
from fedsim.federation.standardize import ColumnMoments, combine_moments
from fedsim.models import make_model
from fedsim.training import get_weights, weight_names

if TYPE_CHECKING:
    from flwr.serverapp import ServerApp

logger = logging.getLogger("fedsim.federation")


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
        seen, ok = set(), []
        for reply in replies:
            node = reply.metadata.src_node_id
            partner = self.partner_of.get(node, f"node {node}")
            seen.add(node)
            if reply.has_error():
                self._fail(partner, server_round, str(reply.error.reason))
                continue
            ok.append(partner)
            metrics = next(iter(reply.content.metric_records.values()))
            # NaN under DP: the partner keeps its exact loss (fedsim.federation.horizontal.task.LocalRound)
            self.partner_loss[partner][server_round - 1] = float(metrics.get("train-loss", math.nan))
            ledger = {k: float(v) for k, v in metrics.items() if k.startswith("dp_")}
            if ledger:
                self.dp[partner] = ledger
        for node in set(self.partner_of) - seen:
            self._fail(self.partner_of[node], server_round, "no reply before the round timeout")
        if not ok:
            detail = "; ".join(f"{p}: {self.reasons.get(p, '?')}" for p in sorted(self.partner_loss))
            raise FedsimError(f"horizontal: every partner failed in round {server_round} ({detail})")
        losses = ", ".join(f"{p} {self.partner_loss[p][server_round - 1]:.4f}" for p in sorted(ok))
        logger.info("federated round %d/%d done; train loss %s", server_round, self.rounds, losses)

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
        loss_released=settings.privacy is None,
    )


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
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg as LegacyFedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_PARAMS_RECORD

    n = len(log.partner_of)
    round_loss: dict[int, float] = {}

    class SecureFedAvg(LegacyFedAvg):
        """Flower's FedAvg on the unmasked sum; splits off the securely summed loss (SECAGG_EXTRA_ARRAYS).

        The sum SecAgg+ unmasks is already Σ n_k·θ_k / Σ n_k (weights inside the masked vectors), and every
        partner's clear ``num_examples`` is the same constant, so FedAvg's average of identical vectors is
        that sum; the appended loss slot is the n-weighted mean loss (0 under DP, where it is not sent).
        """

        def aggregate_fit(self, server_round: int, results: Any, failures: Any) -> Any:
            parameters, metrics = super().aggregate_fit(server_round, results, failures)
            if parameters is None:
                return parameters, metrics
            arrays = parameters_to_ndarrays(parameters)
            extra = arrays[-SECAGG_EXTRA_ARRAYS:]
            round_loss[server_round] = math.nan if settings.privacy is not None else float(extra[0][0])
            return ndarrays_to_parameters(arrays[:-SECAGG_EXTRA_ARRAYS]), metrics

    strategy = SecureFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_evaluate_clients=0,
        min_available_clients=n,
        initial_parameters=ndarrays_to_parameters(arrays),
        fit_metrics_aggregation_fn=lambda results: {},  # no per-partner metrics travel in the clear
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
    losses = [round_loss.get(r, math.nan) for r in range(1, settings.rounds + 1)]
    missing = [r for r in range(1, settings.rounds + 1) if r not in round_loss]
    if missing:
        # SecAgg+ halts a round when too few partners complete its stages; never go on silently.
        raise FedsimError(
            f"horizontal (SecAgg+): round(s) {missing} did not complete secure aggregation "
            f"among {', '.join(sorted(log.partner_of.values()))}; the partners' errors are in the log"
        )
    return legacy.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays(), losses


def make_server_app(
    settings: HorizontalSettings, *, expected: int, sink: Callable[[HorizontalOutcome], None]
) -> ServerApp:
    """The horizontal ServerApp; the outcome goes to ``sink`` (a closure in simulation, a file in deployment)."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        sink(run_server(grid, context, settings, expected=expected))

    return app
