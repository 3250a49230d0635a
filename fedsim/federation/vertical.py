"""Split learning on Flower: the ClientApp every partner runs, the coordinating ServerApp, and launchers.

The apps are thin (Flower's own layout: task code elsewhere, apps only unpack and pack messages):

* **ClientApp** — one ``@app.query("<action>")`` per protocol step; each unpacks the message,
  calls :func:`fedsim.federation.vertical_node.handle` with the partner's own bundle and its state
  from ``context.state``, and packs the reply. A node finds its bundle through its node config
  (``bundle = "<path>"`` on a SuperNode) or, in simulation, through its ``partition-id``.
* **ServerApp** — the coordinator (:func:`fedsim.federation.vertical_coordinator.run`) over a
  :class:`FlowerExchange`, which turns each step into Message-API query messages and waits for the
  replies. It holds no partner data.

Payloads travel as one ``RecordDict``: numpy arrays in the ArrayRecord ``"arrays"``, everything else
(PSI bytes, counts, flags, names) in the ConfigRecord ``"config"``. Party state in
``context.state`` is one ArrayRecord ``"vfl"``.

Engines (:func:`run_split_learning`): ``simulation`` (Flower's simulation engine,
:func:`fedsim.federation.engine.run_in_simulation`), ``deployment`` (a SuperLink and one SuperNode per
partner on this machine, :func:`run_deployment`; the module-level apps are in
:mod:`fedsim.federation.vertical_app`) and ``local`` (the same node code in-process, without Flower:
tests and debugging).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedsim.federation import vertical_coordinator as coordinator
from fedsim.federation.vertical_data import Payload, Plan, State
from fedsim.federation.vertical_node import HOLDER_ACTIONS, PARTY_ACTIONS, LocalExchange, handle

logger = logging.getLogger("fedsim.federation.vertical")
ACTIONS: tuple[str, ...] = tuple(sorted(set(HOLDER_ACTIONS) | set(PARTY_ACTIONS)))
STATE_RECORD = "vfl"
RESULT_FILE = "coordinator.json"
ERROR_FILE = "error.txt"
ENGINES = ("simulation", "deployment", "local")


# ------------------------------------------------------------------------------------------------
# Payload and state <-> Flower records
# ------------------------------------------------------------------------------------------------
def _c_order(v: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into shape (1,)
    return v if v.flags.c_contiguous else np.array(v, order="C")


def to_records(payload: Payload) -> Any:
    """Payload → ``RecordDict``: arrays into ArrayRecord ``arrays``, the rest into ConfigRecord ``config``."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    arrays, config = {}, {}
    for k, v in payload.items():
        if isinstance(v, np.ndarray):
            arrays[k] = Array(_c_order(v))
        elif isinstance(v, np.generic):
            config[k] = v.item()
        elif isinstance(v, bytes | str | bool | int | float):
            config[k] = v
        else:
            raise TypeError(f"payload[{k}]: {type(v).__name__}; allowed: numpy array, bytes, str, bool, int, float")
    return RecordDict({"arrays": ArrayRecord(array_dict=arrays), "config": ConfigRecord(config)})


def from_records(content: Any) -> Payload:
    out: Payload = {}
    if "arrays" in content.array_records:
        out.update({k: a.numpy() for k, a in content.array_records["arrays"].items()})
    if "config" in content.config_records:
        out.update(dict(content.config_records["config"].items()))
    return out


def load_state(context: Any) -> State:
    rec = context.state.array_records.get(STATE_RECORD)
    return {} if rec is None else {k: a.numpy() for k, a in rec.items()}


def save_state(context: Any, state: State) -> None:
    from flwr.app import Array, ArrayRecord

    context.state[STATE_RECORD] = ArrayRecord(array_dict={k: Array(_c_order(v)) for k, v in state.items()})


# ------------------------------------------------------------------------------------------------
# ClientApp
# ------------------------------------------------------------------------------------------------
def _bundle_of(context: Any, bundles: Sequence[str] | None) -> str:
    cfg = context.node_config
    if "bundle" in cfg:
        return str(cfg["bundle"])
    if bundles is None or "partition-id" not in cfg:
        raise ValueError(
            f"node_config: {dict(cfg)}; allowed: a 'bundle' path (deployment) or a partition-id "
            "with the simulation's bundle list"
        )
    return bundles[int(cfg["partition-id"])]


def _capture_from_node_config(message: Any, context: Any, call_next: Any) -> Any:
    """Record every message in and out of this partner when its node config names a capture dir."""
    target = context.node_config.get("capture-dir")
    if not target:
        return call_next(message, context)
    from fedsim.federation.engine import capture_mod

    return capture_mod(str(target))(message, context, call_next)


def make_client_app(bundles: Sequence[str] | None = None, *, capture_dir: str | None = None) -> Any:
    """The partner's ClientApp: one query handler per protocol action.

    bundles: simulation only — bundle path per partition-id. capture_dir: record every message at this
    partner's boundary there (:func:`fedsim.federation.engine.capture_mod`); on a SuperNode the node
    config key ``capture-dir`` does the same.
    """
    from flwr.app import Message
    from flwr.clientapp import ClientApp

    from fedsim.federation.engine import capture_mod

    app = ClientApp()
    mods = [capture_mod(capture_dir)] if capture_dir else [_capture_from_node_config]
    paths = list(bundles) if bundles is not None else None

    def handler_for(action: str) -> Any:
        def handler(message: Message, context: Any) -> Message:
            state = load_state(context)
            reply = handle(_bundle_of(context, paths), action, from_records(message.content), state)
            save_state(context, state)
            return Message(to_records(reply), reply_to=message)

        handler.__name__ = f"vfl_{action}"
        return handler

    for action in ACTIONS:
        app.query(action, mods=mods)(handler_for(action))
    return app


# ------------------------------------------------------------------------------------------------
# ServerApp
# ------------------------------------------------------------------------------------------------
class FlowerExchange:
    """Sends one query message per partner through the Flower ``Grid`` and returns the replies by name.

    The first call must be the ``hello`` step: it goes to every connected node, and the replies tell
    which node is which partner (a node's name is its organisation, public within the federation)."""

    def __init__(self, grid: Any, *, n_nodes: int, timeout_s: float = 3600.0, connect_timeout_s: float = 300.0) -> None:
        self.grid, self.n_nodes, self.timeout_s = grid, n_nodes, timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.nodes: dict[str, int] = {}

    def _wait_for_nodes(self) -> list[int]:
        started = time.monotonic()
        while True:
            ids = list(self.grid.get_node_ids())
            if len(ids) >= self.n_nodes:
                return ids
            if time.monotonic() - started > self.connect_timeout_s:
                raise TimeoutError(f"{len(ids)} of {self.n_nodes} nodes connected after {self.connect_timeout_s:.0f} s")
            time.sleep(0.5)

    def _send(self, targets: list[tuple[int, str, Payload]]) -> dict[int, Payload]:
        from flwr.app import Message

        msgs = [
            Message(content=to_records(p), dst_node_id=node, message_type=f"query.{action}")
            for node, action, p in targets
        ]
        replies = list(self.grid.send_and_receive(msgs, timeout=self.timeout_s))
        if len(replies) != len(msgs):
            raise TimeoutError(f"{len(replies)} of {len(msgs)} replies to {targets[0][1]!r} within {self.timeout_s} s")
        out = {}
        for r in replies:
            node = r.metadata.src_node_id
            if r.has_error():
                name = next((n for n, i in self.nodes.items() if i == node), str(node))
                raise RuntimeError(f"partner {name} failed on {r.metadata.message_type}: {r.error.reason}")
            out[node] = from_records(r.content)
        return out

    def __call__(self, requests: dict[str, tuple[str, Payload]]) -> dict[str, Payload]:
        if not self.nodes:
            actions = {a for a, _ in requests.values()}
            if actions != {"hello"}:
                raise ValueError(f"first exchange: {sorted(actions)}; allowed: 'hello' (it maps nodes to partners)")
            payload = next(iter(requests.values()))[1]
            got = self._send([(node, "hello", payload) for node in self._wait_for_nodes()])
            self.nodes = {str(p["partner"]): node for node, p in got.items()}
            missing = [n for n in requests if n not in self.nodes]
            if missing:
                raise ValueError(f"partners {missing} have no node; connected: {sorted(self.nodes)}")
            return {n: got[self.nodes[n]] for n in requests}
        got = self._send([(self.nodes[n], action, p) for n, (action, p) in requests.items()])
        return {n: got[self.nodes[n]] for n in requests}


def write_result(plan: Plan, result: coordinator.CoordinatorResult) -> None:
    if plan.out_dir:
        Path(plan.out_dir).mkdir(parents=True, exist_ok=True)
        (Path(plan.out_dir) / RESULT_FILE).write_text(
            json.dumps({"step_metrics": result.step_metrics, "metrics": result.metrics})
        )


def make_server_app(plan: Plan | None = None) -> Any:
    """The coordinator's ServerApp. Without ``plan`` it reads the plan file named by run config ``plan``."""
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Any, context: Any) -> None:
        p = plan if plan is not None else Plan.read(str(context.run_config["plan"]))
        try:
            result = coordinator.run(p, FlowerExchange(grid, n_nodes=len(p.holders) + len(p.parties)))
        except Exception as err:
            # The launcher reads this: a ServerApp failure must not look like an empty run.
            if p.out_dir:
                (Path(p.out_dir) / ERROR_FILE).write_text(f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}")
            raise
        write_result(p, result)

    return app


# ------------------------------------------------------------------------------------------------
# Launchers
# ------------------------------------------------------------------------------------------------
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
    engine: str = "simulation",
    capture_dir: str | None = None,
    deployment: dict[str, Any] | None = None,
) -> SplitRun:
    """Run one split-learning federation.

    Args:
        plan: the coordinator's settings; ``plan.out_dir`` receives ``coordinator.json``.
        bundles: partner name → its bundle path (holders and parties of the plan).
        engine: ``simulation`` (Flower + Ray), ``deployment`` (SuperLink + SuperNodes on this machine,
            :func:`run_deployment`) or ``local`` (same node code, no Flower).
        capture_dir: record every message at every partner's boundary there (Flower engines).
        deployment: extra keyword arguments for the deployment launcher.
    """
    need = set(plan.holders) | set(plan.parties)
    if set(bundles) != need:
        raise ValueError(f"bundles: {sorted(bundles)}; allowed: exactly the plan's partners {sorted(need)}")
    if engine not in ENGINES:
        raise ValueError(f"engine: {engine!r}; allowed: one of {ENGINES}")
    started = time.perf_counter()
    if engine == "local":
        res = coordinator.run(plan, LocalExchange(bundles))
        write_result(plan, res)
    elif engine == "simulation":
        from fedsim.federation.engine import run_in_simulation

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


COMPONENTS = {
    "serverapp": "fedsim.federation.vertical_app:server_app",
    "clientapp": "fedsim.federation.vertical_app:client_app",
}
"""The apps ``flwr run`` loads on the deployment engine (module-level, configured by run/node config)."""


def run_deployment(
    plan: Plan,
    bundles: dict[str, str],
    *,
    capture_dir: str | None = None,
    work_dir: str | Path | None = None,
    timeout_s: float = 1800.0,
) -> None:
    """Run the federation on Flower's deployment engine: a SuperLink and one SuperNode per partner on this
    machine (:class:`fedsim.federation.deployment.LocalDeployment`), then ``flwr run``.

    Each SuperNode's node config names only its own bundle (``bundle``) and, optionally, where to record
    its boundary traffic (``capture-dir``); the ServerApp reads the plan file named by run config ``plan``.
    """
    from fedsim.federation.deployment import LocalDeployment, write_app_dir

    work = Path(work_dir) if work_dir is not None else Path(plan.out_dir) / "deployment"
    work.mkdir(parents=True, exist_ok=True)
    plan_path = plan.write(work / "plan.json")
    nodes = {
        n: {"bundle": str(Path(path).resolve()), **({"capture-dir": str(capture_dir)} if capture_dir else {})}
        for n, path in bundles.items()
    }
    app = write_app_dir(work / "app", name="fedsim-vertical", components=COMPONENTS, config={"plan": str(plan_path)})
    with LocalDeployment(nodes, work / "flower") as deployment:
        deployment.run(app, timeout_s=timeout_s)
