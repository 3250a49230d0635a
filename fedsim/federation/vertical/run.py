"""Running one split-learning federation on an engine (:data:`fedsim.federation.engine.ENGINES`).

``simulation`` (Flower's simulation engine, :func:`fedsim.federation.engine.run_in_simulation`),
``deployment`` (a SuperLink and one SuperNode per partner on this machine, :func:`run_deployment`;
``flwr run`` loads the module-level apps of :mod:`.deployment_app`) and ``in_process`` (the same node
code called in this process through :class:`~.node.LocalExchange`, without Flower: tests and debugging).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsim.federation.deployment import FlowerApp, Value, run_app
from fedsim.federation.engine import ENGINES, Engine, run_in_simulation
from fedsim.federation.vertical import coordinator
from fedsim.federation.vertical.client_app import make_client_app
from fedsim.federation.vertical.data import Plan
from fedsim.federation.vertical.node import LocalExchange
from fedsim.federation.vertical.server_app import ERROR_FILE, RESULT_FILE, make_server_app, write_result

logger = logging.getLogger("fedsim.federation.vertical")


@dataclass
class SplitRun:
    """What a run hands back: per-round curves, run metrics, wall time (s) and engine."""

    step_metrics: dict[str, list[float]]
    metrics: dict[str, float]
    seconds: float
    engine: str


def run_split_learning(
    plan: Plan,
    bundles: dict[str, str],
    *,
    engine: Engine = "simulation",
    capture_dir: str | None = None,
    deployment: dict[str, Any] | None = None,
) -> SplitRun:
    """Run one split-learning federation.

    Args:
        plan: the coordinator's settings; ``plan.out_dir`` receives ``coordinator.json``.
        bundles: partner name → its bundle path (holders and parties of the plan).
        engine: ``simulation`` (Flower + Ray), ``deployment`` (SuperLink + SuperNodes on this machine,
            :func:`run_deployment`) or ``in_process`` (same node code, no Flower).
        capture_dir: record every message at every partner's boundary there (Flower engines).
        deployment: extra keyword arguments for the deployment launcher.
    """
    need = set(plan.holders) | set(plan.parties)
    if set(bundles) != need:
        raise ValueError(f"bundles: {sorted(bundles)}; allowed: exactly the plan's partners {sorted(need)}")
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r}; allowed: one of {ENGINES}")
    started = time.perf_counter()
    if engine == "in_process":
        res = coordinator.run(plan, LocalExchange(bundles))
        write_result(plan, res)
    elif engine == "simulation":
        names = list(bundles)
        run_in_simulation(
            make_server_app(plan),
            make_client_app([bundles[n] for n in names], capture_dir=capture_dir),
            num_nodes=len(names),
        )
    else:
        run_deployment(plan, bundles, capture_dir=capture_dir, **(deployment or {}))
    error = Path(plan.out_dir) / ERROR_FILE
    if error.is_file():
        raise RuntimeError(f"split learning ({engine}): {error.read_text().splitlines()[0]}")
    out = json.loads((Path(plan.out_dir) / RESULT_FILE).read_text())
    seconds = time.perf_counter() - started
    logger.info(
        "split learning (%s, %s): %d holder(s), %d part(ies), %d rounds in %.1f s",
        plan.mode,
        engine,
        len(plan.holders),
        len(plan.parties),
        plan.rounds,
        seconds,
    )
    return SplitRun(out["step_metrics"], out["metrics"], seconds, engine)


APP = FlowerApp(
    name="fedsim-vertical",
    components={
        "serverapp": "fedsim.federation.vertical.deployment_app:server_app",
        "clientapp": "fedsim.federation.vertical.deployment_app:client_app",
    },
)
"""The apps ``flwr run`` loads on the deployment engine (module-level, configured by run/node config)."""


def run_deployment(
    plan: Plan,
    bundles: dict[str, str],
    *,
    capture_dir: str | None = None,
    work_dir: str | Path | None = None,
    timeout_s: float = 1800.0,
) -> None:
    """Run the federation on Flower's deployment engine (:func:`fedsim.federation.deployment.run_app`): a
    SuperLink and one SuperNode per partner on this machine, then ``flwr run``.

    Each SuperNode's node config names only its own bundle (``bundle``) and, optionally, where to record
    its boundary traffic (``capture-dir``); the ServerApp reads the plan file named by run config ``plan``.
    """
    work = Path(work_dir) if work_dir is not None else Path(plan.out_dir) / "deployment"
    work.mkdir(parents=True, exist_ok=True)
    plan_path = plan.write(work / "plan.json")
    nodes: dict[str, dict[str, Value]] = {
        n: {"bundle": str(Path(path).resolve()), **({"capture-dir": str(capture_dir)} if capture_dir else {})}
        for n, path in bundles.items()
    }
    run_app(APP, config={"plan": str(plan_path)}, node_configs=nodes, work=work, timeout_s=timeout_s)
