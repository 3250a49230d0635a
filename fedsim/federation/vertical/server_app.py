"""The split-learning ServerApp: the coordinator (:func:`fedsim.federation.vertical.coordinator.run`) over a
:class:`FlowerExchange`, which turns each protocol step into Message-API query messages and waits for the
replies. It holds no partner data; its result goes to ``coordinator.json`` in the plan's ``out_dir``.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsim.federation.vertical import coordinator
from fedsim.federation.vertical.data import Payload, Plan
from fedsim.federation.vertical.records import from_records, to_records

if TYPE_CHECKING:
    from flwr.serverapp import ServerApp

RESULT_FILE = "coordinator.json"
ERROR_FILE = "error.txt"


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


def make_server_app(plan: Plan | None = None) -> ServerApp:
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
