"""Module-level horizontal apps for ``flwr run`` (deployment engine): ``server_app`` and ``client_app``.

Flower loads ``fedsim.federation.horizontal.deployment_app:server_app`` / ``:client_app`` (see
:data:`.deployment_config.APP`); both read their settings from configs instead of closures
(:mod:`.deployment_config`). Importing this module loads Flower; nothing in fedsim imports it.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsim.federation.engine import apply_offline_env, capture_mod
from fedsim.federation.horizontal.client_app import make_client_app
from fedsim.federation.horizontal.deployment_config import DeploymentClientEnv, settings_from
from fedsim.federation.horizontal.server_app import run_server

if TYPE_CHECKING:
    from flwr.serverapp import ServerApp

apply_offline_env()


def _capture_from_run_config(message: Any, context: Any, call_next: Any) -> Any:
    """Capture messages when the run config names a ``capture-dir`` (boundary tests)."""
    target = str(context.run_config.get("capture-dir", ""))
    if not target:
        return call_next(message, context)
    return capture_mod(target)(message, context, call_next)


def _server_main(grid: Any, context: Any) -> None:
    rc = dict(context.run_config)
    out = Path(str(rc["out-dir"])) / "server"
    out.mkdir(parents=True, exist_ok=True)
    try:
        outcome = run_server(grid, context, settings_from(rc), expected=int(rc["num-partners"]))
    except Exception as err:
        (out / "error.txt").write_text(f"{type(err).__name__}: {err}\n\n{traceback.format_exc()}")
        raise
    outcome.write(out / "outcome.json")


def _make_server_app() -> ServerApp:
    from flwr.serverapp import ServerApp

    app = ServerApp()
    app.main()(_server_main)
    return app


client_app = make_client_app(DeploymentClientEnv(), mods=[_capture_from_run_config])
server_app = _make_server_app()
