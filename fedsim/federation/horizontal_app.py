"""Horizontal FL apps for Flower's deployment engine: ``flwr run`` loads ``server_app`` and ``client_app`` here.

The same ServerApp/ClientApp logic as the simulation engine (:mod:`fedsim.federation.horizontal`);
only where settings and data come from differs:

* **SuperNode** (one per partner) — node config ``partner="<name>" world-dir="<its partner directory>"``
  (made by :func:`fedsim.federation.partner_data.export_partner_world`: that partner's tables and its
  own truth rows only). The ClientApp reads nothing else: it builds the partner's rows there with the
  siloed recipe, keeps them in ``<out-dir>/<partner>/data`` (a fresh ClientApp process starts for
  every message), and writes its scores to ``<out-dir>/<partner>/``, on its own machine.
* **Run config** (the app's ``pyproject.toml``, :func:`run_config`) — rounds, strategy, μ, SecAgg+,
  model, seed, local training settings, the time windows (seconds since the world's start) and
  ``out-dir``. No partner data.
* **ServerApp** — writes :class:`~fedsim.federation.horizontal.HorizontalOutcome` to
  ``<out-dir>/server/outcome.json`` (or the error to ``<out-dir>/server/error.txt``).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsim.data import Split
from fedsim.federation.engine import apply_offline_env, capture_mod
from fedsim.federation.horizontal import HorizontalSettings, make_client_app, run_server
from fedsim.federation.partner_data import PartnerData, build_partner_data, load_partner_context
from fedsim.privacy import PrivacySettings
from fedsim.rows import RunContext, TrainingSettings

apply_offline_env()

COMPONENTS = {
    "serverapp": "fedsim.federation.horizontal_app:server_app",
    "clientapp": "fedsim.federation.horizontal_app:client_app",
}
NODE_KEYS = ("partner", "world-dir")
"""The only node-config keys a horizontal SuperNode needs."""


def run_config(
    ctx: RunContext,
    settings: HorizontalSettings,
    *,
    out_dir: Path,
    num_partners: int,
    faults: dict[str, int] | None = None,
    capture_dir: Path | None = None,
) -> dict[str, Any]:
    """Everything the apps need that is not partner data, as flat TOML-able values."""
    sp = ctx.split
    second = sp.second_test or (-1, -1)
    return {
        "rounds": settings.rounds,
        "local-epochs": settings.local_epochs,
        "strategy": settings.strategy,
        "proximal-mu": settings.proximal_mu,
        "secure-aggregation": settings.secure_aggregation,
        "model": settings.model,
        "seed": settings.seed,
        "batch-size": settings.batch_size,
        "learning-rate": settings.learning_rate,
        "round-timeout-s": settings.round_timeout_s,
        "num-partners": num_partners,
        "train-start": sp.train_start,
        "train-end": sp.train_end,
        "test-start": sp.test_start,
        "test-end": sp.test_end,
        "second-test-start": second[0],
        "second-test-end": second[1],
        "epochs": ctx.training.epochs,
        "negative-rate": ctx.training.negative_rate,
        "out-dir": str(out_dir),
        "faults": ",".join(f"{p}:{r}" for p, r in sorted((faults or {}).items())),
        "capture-dir": str(capture_dir) if capture_dir else "",
        "dp-settings": settings.privacy.model_dump_json() if settings.privacy is not None else "",
    }


def settings_from(rc: dict[str, Any]) -> HorizontalSettings:
    """The federation's settings from the run config written by :func:`run_config`."""
    return HorizontalSettings.model_validate(
        {
            "rounds": int(rc["rounds"]),
            "local_epochs": int(rc["local-epochs"]),
            "strategy": str(rc["strategy"]),
            "proximal_mu": float(rc["proximal-mu"]),
            "secure_aggregation": bool(rc["secure-aggregation"]),
            "model": str(rc["model"]),
            "seed": int(rc["seed"]),
            "batch_size": int(rc["batch-size"]),
            "learning_rate": float(rc["learning-rate"]),
            "round_timeout_s": float(rc["round-timeout-s"]),
            "privacy": PrivacySettings.model_validate_json(str(rc["dp-settings"])) if rc.get("dp-settings") else None,
        }
    )


def split_from(rc: dict[str, Any]) -> Split:
    second = (int(rc["second-test-start"]), int(rc["second-test-end"]))
    return Split(
        int(rc["train-start"]),
        int(rc["train-end"]),
        int(rc["test-start"]),
        int(rc["test-end"]),
        second if second[0] >= 0 else None,
    )


def _faults(text: str) -> dict[str, int]:
    return {p: int(r) for p, r in (item.split(":") for item in text.split(",") if item)}


@dataclass(frozen=True)
class DeploymentClientEnv:
    """Deployment engine: the partner and its directory come from the SuperNode's node config."""

    def partner(self, context: Any) -> str:
        return str(context.node_config["partner"])

    def out_dir(self, context: Any) -> Path:
        return Path(str(context.run_config["out-dir"])) / self.partner(context)

    def fault_round(self, context: Any) -> int | None:
        return _faults(str(context.run_config.get("faults", ""))).get(self.partner(context))

    def data(self, context: Any) -> PartnerData:
        cache = self.out_dir(context) / "data"
        if (cache / "partner_data.json").is_file():
            return PartnerData.load(cache)
        rc, partner = context.run_config, self.partner(context)
        training = TrainingSettings(
            epochs=int(rc["epochs"]),
            batch_size=int(rc["batch-size"]),
            learning_rate=float(rc["learning-rate"]),
            negative_rate=float(rc["negative-rate"]),
        )
        ctx = load_partner_context(
            Path(str(context.node_config["world-dir"])),
            partner,
            split=split_from(rc),
            training=training,
            seed=int(rc["seed"]),
            model=str(rc["model"]),
        )
        data = build_partner_data(ctx, partner)
        data.save(cache)
        return data


def _capture_from_run_config(message: Any, context: Any, call_next: Any) -> Any:
    """Capture messages when the run config names a ``capture-dir`` (boundary tests)."""
    target = str(context.run_config.get("capture-dir", ""))
    if not target:
        return call_next(message, context)
    return capture_mod(target)(message, context, call_next)


client_app = make_client_app(DeploymentClientEnv(), mods=[_capture_from_run_config])


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


def _make_server_app() -> Any:
    from flwr.serverapp import ServerApp

    app = ServerApp()
    app.main()(_server_main)
    return app


server_app = _make_server_app()
__all__ = ["COMPONENTS", "NODE_KEYS", "DeploymentClientEnv", "client_app", "run_config", "server_app"]
