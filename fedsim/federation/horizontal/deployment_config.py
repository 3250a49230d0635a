"""Horizontal FL on Flower's deployment engine: the run config, the SuperNode's data, the app directory.

The same ServerApp/ClientApp logic as the simulation engine (:mod:`.server_app`, :mod:`.client_app`);
only where settings and data come from differs. ``flwr run`` loads the module-level apps of
:mod:`.deployment_app`; everything they read is built here (no Flower in this module):

* **SuperNode** (one per partner) — node config ``partner="<name>" world-dir="<its partner directory>"``
  (made by :func:`fedsim.federation.partner_data.export_partner_world`: that partner's tables and the fraud
  reports it received, no truth, no seed, no config). The ClientApp reads nothing else: it builds the
  partner's rows there with the siloed recipe, keeps them in ``<out-dir>/<partner>/data`` (a fresh
  ClientApp process starts for every message), and writes its scores to ``<out-dir>/<partner>/``, on its own machine.
* **Run config** (the app's ``pyproject.toml``, :func:`run_config`) — every field of
  :class:`~.settings.HorizontalSettings` (DP settings included: a cross-machine run trains with the
  same privacy as a simulated one), the time windows (seconds since the world's start), the local
  training settings and ``out-dir``. No partner data.
* **ServerApp** — writes :class:`~.settings.HorizontalOutcome` to ``<out-dir>/server/outcome.json``
  (or the error to ``<out-dir>/server/error.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedsim.data import Split
from fedsim.federation.deployment import FlowerApp, Value, write_app_dir
from fedsim.federation.horizontal.settings import HorizontalSettings
from fedsim.federation.partner_data import PartnerData, build_partner_data, load_partner_context
from fedsim.privacy import PrivacySettings
from fedsim.rows import RunContext, TrainingSettings

APP = FlowerApp(
    name="fedsim-horizontal",
    components={
        "serverapp": "fedsim.federation.horizontal.deployment_app:server_app",
        "clientapp": "fedsim.federation.horizontal.deployment_app:client_app",
    },
)
"""The apps ``flwr run`` loads (module-level, configured by run config and node config)."""

NODE_KEYS = ("partner", "world-dir")
"""The only node-config keys a horizontal SuperNode needs."""

_NO_PRIVACY = ""


def settings_config(settings: HorizontalSettings) -> dict[str, Value]:
    """Every field of ``settings`` as a flat TOML value (``batch_size`` → ``batch-size``; DP settings as JSON).

    Field by field from the model itself, so a new setting cannot be left out of a deployed run.
    """
    out: dict[str, Value] = {}
    for name in HorizontalSettings.model_fields:
        value = getattr(settings, name)
        if name == "privacy":
            value = value.model_dump_json() if value is not None else _NO_PRIVACY
        out[name.replace("_", "-")] = value
    return out


def settings_from(rc: dict[str, Any]) -> HorizontalSettings:
    """Inverse of :func:`settings_config`: the federation's settings from a run config."""
    raw = {name: rc[name.replace("_", "-")] for name in HorizontalSettings.model_fields}
    raw["privacy"] = None if raw["privacy"] == _NO_PRIVACY else PrivacySettings.model_validate_json(str(raw["privacy"]))
    return HorizontalSettings.model_validate(raw)


def run_config(
    settings: HorizontalSettings,
    *,
    split: Split,
    training: TrainingSettings,
    out_dir: Path,
    num_partners: int,
    faults: dict[str, int] | None = None,
    capture_dir: Path | None = None,
) -> dict[str, Value]:
    """Everything the apps need that is not partner data, as flat TOML values."""
    second = split.second_test or (-1, -1)
    return {
        **settings_config(settings),
        "num-partners": num_partners,
        "train-start": split.train_start,
        "train-end": split.train_end,
        "test-start": split.test_start,
        "test-end": split.test_end,
        "second-test-start": second[0],
        "second-test-end": second[1],
        "epochs": training.epochs,
        "negative-rate": training.negative_rate,
        "out-dir": str(out_dir),
        "faults": ",".join(f"{p}:{r}" for p, r in sorted((faults or {}).items())),
        "capture-dir": str(capture_dir) if capture_dir else "",
    }


def write_app(ctx: RunContext, settings: HorizontalSettings, dest: Path, *, num_partners: int, out_dir: Path) -> Path:
    """A Flower app directory for ``flwr run`` across machines: the run config of ``ctx`` and ``settings``.

    Pass the settings the regime itself would use (:meth:`HorizontalSettings.from_context`), privacy
    included. ``out_dir``: where the server and each partner write their results (on their own machine).
    """
    config = run_config(settings, split=ctx.split, training=ctx.training, out_dir=out_dir, num_partners=num_partners)
    return write_app_dir(dest, app=APP, config=config)


def split_from(rc: dict[str, Any]) -> Split:
    second = (int(rc["second-test-start"]), int(rc["second-test-end"]))
    return Split(
        int(rc["train-start"]),
        int(rc["train-end"]),
        int(rc["test-start"]),
        int(rc["test-end"]),
        second if second[0] >= 0 else None,
    )


def faults_from(rc: dict[str, Any]) -> dict[str, int]:
    text = str(rc.get("faults", ""))
    return {p: int(r) for p, r in (item.split(":") for item in text.split(",") if item)}


@dataclass(frozen=True)
class DeploymentClientEnv:
    """Deployment engine: the partner and its directory come from the SuperNode's node config."""

    def partner(self, context: Any) -> str:
        return str(context.node_config["partner"])

    def out_dir(self, context: Any) -> Path:
        return Path(str(context.run_config["out-dir"])) / self.partner(context)

    def fault_round(self, context: Any) -> int | None:
        return faults_from(dict(context.run_config)).get(self.partner(context))

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
