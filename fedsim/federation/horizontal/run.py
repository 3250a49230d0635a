"""Running one horizontal federation for a regime: build each member's rows, pick the engine, collect scores.

Engines (:data:`fedsim.federation.engine.ENGINES`): ``simulation`` (Flower's simulation engine, Ray
kept warm), ``deployment`` (a local SuperLink and one SuperNode per member,
:func:`fedsim.federation.deployment.run_app`) and ``in_process`` (:func:`run_in_process`: the same rounds
and the same task code without Flower — a reference for tests and benchmarks, not federated learning).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError
from fedsim.federation.aggregate import weighted_average
from fedsim.federation.deployment import run_app
from fedsim.federation.engine import ENGINES, Engine, run_in_simulation
from fedsim.federation.horizontal.client_app import SimulationClientEnv, make_client_app
from fedsim.federation.horizontal.deployment_config import APP, run_config
from fedsim.federation.horizontal.server_app import RoundLog, make_server_app
from fedsim.federation.horizontal.settings import HorizontalOutcome, HorizontalSettings, read_ledgers
from fedsim.federation.horizontal.task import global_setup, partner_summary, score_locally, train_locally
from fedsim.federation.partner_data import PartnerData, build_partner_data, export_partner_world, partner_only
from fedsim.federation.standardize import combine_moments
from fedsim.models import make_model
from fedsim.rows import RunContext
from fedsim.training import get_weights


def run_in_process(
    datas: Sequence[PartnerData], settings: HorizontalSettings
) -> tuple[list[np.ndarray], HorizontalOutcome, dict[str, Any]]:
    """The same federation with no Flower at all: statistics, then rounds of local training + FedAvg
    (:func:`fedsim.federation.aggregate.weighted_average`).

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
        arrays = weighted_average([r.weights for r in results], sizes)
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
        loss_released=settings.privacy is None,
    )
    return arrays, outcome, {**config, "constant": positive <= 0}


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
            prepare_start = time.perf_counter()
            outcome = _deploy(ctx, members, settings, work=work, capture_dir=capture_dir, faults=faults or {})
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
    outcome = box["outcome"]
    if settings.secure_aggregation:  # the anonymous replies carried no ledger: each partner kept its own
        outcome.dp = read_ledgers(work / "out", members)
    return outcome


def collect_scores(out_root: Path, members: Sequence[str], window: str) -> pd.DataFrame:
    """Concatenate the members' ``scores_<window>.parquet`` files (each written by the partner itself)."""
    frames = []
    for partner in members:
        path = out_root / partner / f"scores_{window}.parquet"
        if not path.is_file():
            raise FedsimError(f"horizontal: partner {partner} wrote no {window} scores ({path} missing)")
        frames.append(pd.read_parquet(path))
    return pd.concat(frames, ignore_index=True)


def _deploy(
    ctx: RunContext,
    members: list[str],
    settings: HorizontalSettings,
    *,
    work: Path,
    capture_dir: str | Path | None,
    faults: Mapping[str, int],
) -> HorizontalOutcome:
    """One federation on a local SuperLink + SuperNodes; returns the outcome the ServerApp wrote.

    Each SuperNode gets a partner directory with only its partner's tables and the reports it received
    (:func:`~fedsim.federation.partner_data.export_partner_world`; refused for a world without a secret) and node config
    ``partner``/``world-dir``; the partners' scores land in ``work/out/<partner>/``.
    """
    nodes = {
        p: {"partner": p, "world-dir": str(export_partner_world(ctx.world, ctx.truth, p, work / "nodes" / p))}
        for p in members
    }
    out = work / "out"
    config = run_config(
        settings,
        split=ctx.split,
        training=ctx.training,
        out_dir=out,
        num_partners=len(members),
        faults=dict(faults),
        capture_dir=Path(capture_dir) if capture_dir else None,
    )
    try:
        run_app(
            APP,
            config=config,
            node_configs=nodes,
            work=work,
            timeout_s=settings.round_timeout_s * (settings.rounds + 2),
        )
    except FedsimError as err:
        raise FedsimError(f"horizontal (deployment): {_server_error(out) or err}") from err
    error = _server_error(out)
    if error:
        raise FedsimError(f"horizontal (deployment): {error}")
    if not (out / "server" / "outcome.json").is_file():
        raise FedsimError(f"horizontal (deployment): the ServerApp wrote no outcome; logs in {work / 'flower'}")
    outcome = HorizontalOutcome.read(out / "server" / "outcome.json")
    if settings.secure_aggregation:  # as in simulation: each partner kept its own ledger beside its scores
        outcome.dp = read_ledgers(out, members)
    return outcome


def _server_error(out: Path) -> str | None:
    path = out / "server" / "error.txt"
    return path.read_text().split("\n\n")[0] if path.is_file() else None
