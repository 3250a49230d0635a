"""The split-learning ClientApp every partner runs: one ``@app.query("<action>")`` per protocol step.

Thin, as in Flower's own layout: each handler unpacks the message, calls
:func:`fedsim.federation.vertical.node.handle` with the partner's own bundle and its state from
``context.state``, and packs the reply. A node finds its bundle through its node config
(``bundle = "<path>"`` on a SuperNode) or, in simulation, through its ``partition-id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fedsim.federation.engine import capture_mod
from fedsim.federation.vertical.node import HOLDER_ACTIONS, PARTY_ACTIONS, handle
from fedsim.federation.vertical.records import from_records, load_state, save_state, to_records

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp

ACTIONS: tuple[str, ...] = tuple(sorted(set(HOLDER_ACTIONS) | set(PARTY_ACTIONS)))


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
    return capture_mod(str(target))(message, context, call_next)


def make_client_app(bundles: Sequence[str] | None = None, *, capture_dir: str | None = None) -> ClientApp:
    """The partner's ClientApp: one query handler per protocol action.

    bundles: simulation only — bundle path per partition-id. capture_dir: record every message at this
    partner's boundary there (:func:`fedsim.federation.engine.capture_mod`); on a SuperNode the node
    config key ``capture-dir`` does the same.
    """
    from flwr.app import Message
    from flwr.clientapp import ClientApp
    from flwr.clientapp.typing import Mod

    app = ClientApp()
    mod = capture_mod(capture_dir) if capture_dir else _capture_from_node_config
    mods: list[Mod] = [mod]
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
