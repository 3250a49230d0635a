"""Shared Flower plumbing: offline hygiene, the simulation runner (Ray kept warm), message capture.

Only ``fedsim.federation`` imports Flower; every Flower import sits inside a function here so
importing this module costs nothing and the environment below is in place before Flower loads.

**Offline hygiene** (:func:`apply_offline_env`, run when ``fedsim.federation`` is imported): no
telemetry, no update check, no runtime ``uv sync`` of app dependencies (a SuperLink would otherwise
download gigabytes), and a private ``FLWR_HOME`` (:func:`default_flwr_home`) unless the caller set one.

**Ray start-up per grid cell.** Flower 1.42's Ray backend starts Ray (and a pool of actor processes
that each import torch and fedsim) for every ``run_simulation`` and calls ``ray.shutdown()`` at the
end (``RayBackend.terminate``), so a grid of N federated cells paid that start-up N times. The fix
chosen here: :func:`keep_ray_warm` swaps in :class:`PersistentRayBackend`, a ``RayBackend`` whose
``terminate`` keeps Ray and its idle actor pool, and whose ``build`` reuses that pool for the next
simulation of the same process. A grid pays Ray start-up once; every later cell reuses warm actors
(``ClientAppActor.run`` receives the ClientApp with each message, so one pool serves any app).
Measured on the demo grid (benchmarks/bench_federation.py): ≈ 26–30 s per cell before, ≈ 3–4 s per
cell after the first (which still pays Ray once, ≈ 30 s).
It relies on two Flower internals — the module attribute
``flwr.server.superlink.fleet.vce.backend.raybackend.RayBackend`` (looked up by ``start_vce`` at each
call) and ``BasicActorPool``'s ``pool`` / ``num_actors`` — so it is enabled only for the Flower
minor version it was written and tested against (:data:`TESTED_FLOWER`); any other version falls
back to Flower's own behaviour with a warning. Ray is shut down at interpreter exit.

**Which Ray.** By default every simulation starts a private Ray in this process (``ray.init(address="local")``:
said explicitly, because Ray's own default would join whatever cluster the last ``ray start`` on this machine
left in ``/tmp/ray/ray_current_cluster``). :func:`use_ray_cluster` (``fedsim run --ray-address``) or the
``RAY_ADDRESS`` environment variable points the simulation at an existing Ray cluster instead (``ray start
--head`` on one machine, ``ray start --address`` on the others): Flower's backend then connects to it and
places its ClientApp actors on the cluster's CPUs. Where it ran is recorded (:func:`where_simulations_run`,
the ``fl_engine_address`` param of a federated run) but never enters a config hash: the same cell gives the
same result wherever it runs.

**Message capture** (:func:`capture_mod`): a ClientApp mod that records every message crossing a
partner's boundary (in and out) to a directory, for the boundary tests (:mod:`fedsim.federation.boundary`).
Each message is one JSON file (scalars, lists, text; bytes as base64) plus one ``.npz`` of its arrays,
read back with ``allow_pickle=False``: a capture folder may come from another machine, and unpickling it
would run whatever code it holds.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

logger = logging.getLogger("fedsim.federation")

Engine = Literal["simulation", "deployment", "in_process"]
"""Where a federation's apps run — one vocabulary for every federated regime, its settings, params and logs.

``simulation``: Flower's simulation engine (Ray, :func:`run_in_simulation`). ``deployment``: a real
SuperLink and one SuperNode process per partner (:mod:`fedsim.federation.deployment`). ``in_process``:
the same partner code called directly in this process, without Flower (tests, debugging, baselines)."""

ENGINES: tuple[str, ...] = get_args(Engine)

TESTED_FLOWER = "1.42."
"""Flower minor version whose internals :class:`PersistentRayBackend` relies on."""

OFFLINE_ENV: dict[str, str] = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",  # Ray's future default; silences its FutureWarning
}
"""Environment every Flower process of fedsim runs with (CI and studies are offline)."""


FLWR_HOME_MODE = 0o700
"""Permissions of a Flower home fedsim creates: its owner only (Flower keeps its CLI config and state there)."""


def default_flwr_home() -> Path:
    """A private per-user Flower home: ``$XDG_STATE_HOME/fedsim/flwr-home``, else ``~/.local/state/fedsim/flwr-home``.

    Why there: the XDG base-directory spec names ``$XDG_STATE_HOME`` (default ``~/.local/state``) for state
    that persists between runs but is not user data, and a path inside the user's home cannot be created
    first by another user, unlike a predictable name under the shared temp folder (the old default), where
    another user could pre-create the folder and read or plant Flower's config. Without a usable home
    directory (no ``$HOME``, or it is not writable) a fresh :func:`tempfile.mkdtemp` (mode 0700, random name)
    is used instead. The folder is created with mode 0700 (:func:`secure_flwr_home` checks it on every use).
    """
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    try:
        base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
        home = base / "fedsim" / "flwr-home"
        home.mkdir(parents=True, exist_ok=True, mode=FLWR_HOME_MODE)
    except (OSError, RuntimeError):  # RuntimeError: Path.home() cannot be resolved
        return Path(tempfile.mkdtemp(prefix="fedsim-flwr-home-"))
    return home


def secure_flwr_home(home: Path) -> Path:
    """Create ``home`` (mode 0700) or check an existing one: refuse a home of another user, repair a writable one.

    A Flower home that others can write lets them replace the CLI config (where ``flwr run`` connects) or the
    state, so one that is group- or world-writable is repaired (its group/other write bits removed, a warning
    logged); one owned by another user is refused with a :class:`~fedsim.errors.FedsimError`.
    """
    from fedsim.errors import FedsimError

    home.mkdir(parents=True, exist_ok=True, mode=FLWR_HOME_MODE)
    info = home.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise FedsimError(
            f"FLWR_HOME = {home}: owned by user id {info.st_uid}, not by you ({os.getuid()}); allowed: a folder "
            "you own (unset FLWR_HOME for the private default)"
        )
    writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable:
        home.chmod(stat.S_IMODE(info.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))
        logger.warning("FLWR_HOME = %s was writable by %s; removed that write permission", home, _who(writable))
    return home


def _who(bits: int) -> str:
    return " and ".join(w for w, b in (("its group", stat.S_IWGRP), ("every user", stat.S_IWOTH)) if bits & b)


def apply_offline_env(flwr_home: Path | None = None) -> Path:
    """Set :data:`OFFLINE_ENV` and FLWR_HOME in ``os.environ`` (before any Flower call); return FLWR_HOME.

    ``flwr_home`` overrides FLWR_HOME; otherwise an existing FLWR_HOME is kept, else
    :func:`default_flwr_home` is used. Either way the home is checked by :func:`secure_flwr_home`.
    """
    os.environ.update(OFFLINE_ENV)
    if flwr_home is not None:
        os.environ["FLWR_HOME"] = str(flwr_home)
    if not os.environ.get("FLWR_HOME"):
        os.environ["FLWR_HOME"] = str(default_flwr_home())
    return secure_flwr_home(Path(os.environ["FLWR_HOME"]))


def flower_version() -> str:
    from importlib.metadata import version

    return version("flwr")


# --------------------------------------------------------------------------------------------------
# Ray kept warm across simulations
# --------------------------------------------------------------------------------------------------
@dataclass
class WarmRayStats:
    """How often the persistent backend built a new actor pool or reused the warm one (this process)."""

    pools_built: int = 0
    pools_reused: int = 0
    installed: bool = False


RAY_STATS = WarmRayStats()
_PREFERENCE: dict[str, Any] = {"warm": True, "address": None}  # what run_in_simulation does unless told
_CONNECTED: dict[str, str | None] = {}  # "address": the Ray cluster this process's Ray is attached to (None: private)
_PERSISTENT: dict[str, Any] = {}  # "class": the backend class, "original": Flower's RayBackend, "pool": warm pool
_LOCK = threading.Lock()


def _persistent_backend_class() -> type:
    """Build (once) the RayBackend subclass that keeps Ray and its actor pool between simulations."""
    if "class" in _PERSISTENT:
        return _PERSISTENT["class"]
    from flwr.server.superlink.fleet.vce.backend import raybackend

    original = raybackend.RayBackend

    class PersistentRayBackend(original):  # type: ignore[misc, valid-type]
        """Flower's RayBackend, except that Ray and the idle actor pool outlive one simulation."""

        def build(self, app_fn: Callable[[], Any]) -> None:
            pool = _PERSISTENT.get("pool")
            if (
                pool is not None
                and pool.client_resources == self.client_resources
                and len(pool.pool) == pool.num_actors
                and _ray_initialized()
            ):
                self.pool, self.app_fn = pool, app_fn
                RAY_STATS.pools_reused += 1
                return
            if pool is not None:  # resources changed or an actor is missing: start a fresh pool
                _terminate_pool(pool)
            super().build(app_fn)
            _PERSISTENT["pool"] = self.pool
            RAY_STATS.pools_built += 1

        def terminate(self) -> None:
            # Deliberately no ray.shutdown(): the next simulation of this process reuses Ray + actors.
            self.app_fn = None  # type: ignore[assignment]

    _PERSISTENT.update({"class": PersistentRayBackend, "original": original})
    return PersistentRayBackend


def _ray_initialized() -> bool:
    import ray

    return bool(ray.is_initialized())


def _terminate_pool(pool: Any) -> None:
    try:
        with quiet_flower():  # at exit, after the runs: Flower's "Terminated N actors" is its own DEBUG line
            pool.terminate_all_actors()
    except Exception:  # noqa: BLE001 - actors already gone with Ray
        logger.debug("could not terminate the warm Ray actor pool", exc_info=True)


def keep_ray_warm(enabled: bool = True) -> bool:
    """Install (or remove) :class:`PersistentRayBackend` for this process; returns whether it is active.

    The choice sticks: later :func:`run_in_simulation` calls without ``warm`` follow it.

    Active only on the tested Flower version (:data:`TESTED_FLOWER`); otherwise logs a warning and
    leaves Flower's backend (Ray restarts per simulation).
    """
    with _LOCK:
        from flwr.server.superlink.fleet.vce.backend import raybackend

        _PREFERENCE["warm"] = enabled
        if not enabled:
            if "original" in _PERSISTENT:
                setattr(raybackend, "RayBackend", _PERSISTENT["original"])  # noqa: B010 - a module attribute
            if RAY_STATS.installed:
                shutdown_ray()  # the next simulation starts (and stops) its own Ray, as Flower does
            RAY_STATS.installed = False
            return False
        if not flower_version().startswith(TESTED_FLOWER):
            logger.warning(
                "flwr %s: keeping Ray warm is tested on %sx only; Ray restarts per federated run",
                flower_version(),
                TESTED_FLOWER,
            )
            return False
        setattr(raybackend, "RayBackend", _persistent_backend_class())  # noqa: B010 - start_vce looks it up
        if not RAY_STATS.installed:
            atexit.register(shutdown_ray)
        RAY_STATS.installed = True
        return True


def shutdown_ray() -> None:
    """Stop the warm actor pool and Ray (also registered at interpreter exit)."""
    pool = _PERSISTENT.pop("pool", None)
    if pool is not None:
        _terminate_pool(pool)
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except ImportError:
        pass


# --------------------------------------------------------------------------------------------------
# Which Ray: a private one, or an existing cluster by address
# --------------------------------------------------------------------------------------------------
RAY_ADDRESS_ENV = "RAY_ADDRESS"
"""Environment variable naming the Ray cluster (Ray's own name for it; used unless :func:`use_ray_cluster` says)."""

LOCAL = "local"
"""Where a simulation runs without a cluster: a private Ray started (and stopped) by this process."""

_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-]+:[0-9]{1,5}$|^\[[0-9A-Fa-f:]+\]:[0-9]{1,5}$")
ADDRESS_ALLOWED = "host:port of a Ray cluster's head node (its GCS port, e.g. 10.0.0.5:6379), or 'local'"


def check_ray_address(address: str) -> str:
    """``address`` stripped if it looks like a Ray cluster address (:data:`ADDRESS_ALLOWED`); else FedsimError."""
    from fedsim.errors import FedsimError

    text = address.strip()
    if text == LOCAL or (_ADDRESS.match(text) and 0 < int(text.rsplit(":", 1)[1]) < 65536):
        return text
    raise FedsimError(f"Ray address = {address!r}: not an address; allowed: {ADDRESS_ALLOWED}")


def use_ray_cluster(address: str | None) -> str | None:
    """Run the later simulations of this process on the Ray cluster at ``address`` (``host:port``).

    ``None`` forgets the choice (back to ``$RAY_ADDRESS``, else a private Ray); ``"local"`` forces a private
    Ray even when ``$RAY_ADDRESS`` is set. The next simulation attaches to the cluster (a Ray already running
    in this process for another address is shut down first). Returns the checked address.
    """
    _PREFERENCE["address"] = None if address is None else check_ray_address(address)
    return _PREFERENCE["address"]


def probe_ray_cluster(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, naming the address, if nothing listens at a ``host:port`` Ray address (one TCP connect).

    Ray's own ``ray.init`` would wait a minute before giving up, after the world and the first cells were built.
    ``local`` is not probed."""
    import socket

    from fedsim.errors import FedsimError

    text = check_ray_address(address)
    if text == LOCAL:
        return
    host, port = text.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return
    except OSError as err:
        raise FedsimError(
            f"Ray address = {text}: no Ray cluster answers there ({err.strerror or err}); start one with "
            f"`ray start --head --port {port}` on that machine, or pass another --ray-address / RAY_ADDRESS"
        ) from None


def ray_address() -> str | None:
    """The Ray cluster simulations attach to: :func:`use_ray_cluster`'s, else ``$RAY_ADDRESS``; None = private Ray."""
    chosen = _PREFERENCE["address"]
    if chosen is None:
        env = os.environ.get(RAY_ADDRESS_ENV, "").strip()
        chosen = check_ray_address(env) if env else None
    return None if chosen == LOCAL else chosen


def where_simulations_run() -> str:
    """Where the next simulation runs, as logged (``fl_engine_address``): the cluster's address, or ``local``."""
    return ray_address() or LOCAL


def engine_address_param(engine: str) -> dict[str, str]:
    """``{"fl_engine_address": <cluster address or local>}`` for a run on the simulation engine, else ``{}``.

    A run's param, not a setting: it says where the cell ran and is never part of its config hash."""
    return {"fl_engine_address": where_simulations_run()} if engine == "simulation" else {}


def _ray_init_args(address: str | None, verbose: bool) -> dict[str, Any]:
    """``ray.init`` keywords: attach to ``address``, or start a private Ray (never an unnamed cluster)."""
    args: dict[str, Any] = {"log_to_driver": verbose, "logging_level": "WARNING"}
    if address is None:
        return {"address": LOCAL, "include_dashboard": False, **args}
    return {"address": address, **args}


def _attach(address: str | None) -> None:
    """Shut down a Ray this process started or joined for another address before the next simulation."""
    if "address" in _CONNECTED and _CONNECTED["address"] != address and _ray_initialized():
        shutdown_ray()
    _CONNECTED["address"] = address


# --------------------------------------------------------------------------------------------------
# Running a ServerApp/ClientApp pair on the simulation engine
# --------------------------------------------------------------------------------------------------
_EXPECTED_NOTES = ("run_simulation` function is deprecated", "Federated evaluation will be skipped")


class _DropDeprecation(logging.Filter):
    """Drops Flower warnings about choices made on purpose (deprecated runner, no federated evaluation)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(note in record.getMessage() for note in _EXPECTED_NOTES)


@contextmanager
def quiet_flower(verbose: bool = False) -> Iterator[None]:
    """Flower logs at WARNING (not INFO) for the duration, without its run_simulation deprecation note."""
    flwr_logger = logging.getLogger("flwr")
    old, drop = flwr_logger.level, _DropDeprecation()
    if not verbose:
        flwr_logger.setLevel(logging.WARNING)
    flwr_logger.addFilter(drop)
    try:
        yield
    finally:
        flwr_logger.setLevel(old)
        flwr_logger.removeFilter(drop)


def run_in_simulation(
    server_app: Any,
    client_app: Any,
    *,
    num_nodes: int,
    cpus_per_client: float = 1.0,
    warm: bool | None = None,
    verbose: bool = False,
) -> float:
    """Run ``server_app`` with ``num_nodes`` SuperNodes of ``client_app`` on Flower's simulation engine (Ray).

    Args:
        server_app, client_app: a Flower ``ServerApp`` / ``ClientApp`` (built by the caller; results
            come back through objects the server app closes over).
        num_nodes: virtual SuperNodes (count); node ``partition-id`` = 0 … num_nodes − 1.
        cpus_per_client: Ray CPUs per ClientApp actor; actors = cores / this.
        warm: keep Ray and its actors for the next run of this process (:func:`keep_ray_warm`);
            None (default): the process-wide choice, warm unless ``keep_ray_warm(False)`` was called.
        verbose: Flower's INFO logs and actor output on the console.

    Ray: a private one, or the cluster of :func:`ray_address` (``fedsim run --ray-address``, ``$RAY_ADDRESS``).

    Returns the wall time in seconds.
    """
    if num_nodes < 1:
        raise ValueError(f"num_nodes: {num_nodes}; allowed: an integer >= 1")
    apply_offline_env()
    from flwr.simulation import run_simulation

    wanted = _PREFERENCE["warm"] if warm is None else warm
    if wanted != RAY_STATS.installed:
        keep_ray_warm(wanted)
    address = ray_address()
    _attach(address)
    backend_config: Any = {
        "client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
        "init_args": _ray_init_args(address, verbose),
    }
    started = time.perf_counter()
    with quiet_flower(verbose):
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_nodes,
            backend_config=backend_config,
            verbose_logging=verbose,
        )
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------
# Message capture at the partner boundary
# --------------------------------------------------------------------------------------------------
@dataclass
class CapturedMessage:
    """One message as it crossed a partner's boundary.

    direction: ``"to_partner"`` (server → client) or ``"from_partner"`` (client → server).
    node_config: the receiving SuperNode's node config (partition-id, or partner name in deployment).
    arrays: ``"<record>/<key>"`` → array. metrics / configs: ``"<record>/<key>"`` → value.
    """

    direction: str
    message_type: str
    node_config: dict[str, Any]
    arrays: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _summarise(message: Any, direction: str, context: Any) -> CapturedMessage:
    out = CapturedMessage(
        direction=direction, message_type=str(message.metadata.message_type), node_config=dict(context.node_config)
    )
    if message.has_error():
        out.error = str(message.error.reason)
        return out
    content = message.content
    for name, record in content.array_records.items():
        for key, array in record.items():
            out.arrays[f"{name}/{key}"] = array.numpy()
    for name, record in content.metric_records.items():
        out.metrics.update({f"{name}/{k}": v for k, v in record.items()})
    for name, record in content.config_records.items():
        out.configs.update({f"{name}/{k}": v for k, v in record.items()})
    return out


_BYTES = "$bytes"  # JSON marker of a bytes value (SecAgg+ stages carry keys and ciphertexts as bytes)


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {_BYTES: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_BYTES}:
            return base64.b64decode(value[_BYTES])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def write_captured(summary: CapturedMessage, directory: str | Path) -> Path:
    """Write one message as ``<stem>.npz`` (its arrays), then ``<stem>.json`` (the rest; what readers list).

    The JSON file appears last (renamed from a temporary name), so a reader never sees a message without
    its arrays. Returns the JSON file's path.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    stem = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    keys = sorted(summary.arrays)
    with open(target / f"{stem}.npz", "wb") as fh:
        np.savez(fh, *(np.asarray(summary.arrays[k]) for k in keys), allow_pickle=False)
    meta = {
        "direction": summary.direction,
        "message_type": summary.message_type,
        "node_config": _to_json(summary.node_config),
        "array_keys": keys,
        "metrics": _to_json(summary.metrics),
        "configs": _to_json(summary.configs),
        "error": summary.error,
    }
    tmp = target / f".{stem}.json.tmp"
    tmp.write_text(json.dumps(meta))
    return tmp.replace(target / f"{stem}.json")


def load_captured(path: str | Path) -> CapturedMessage:
    """One message written by :func:`write_captured` (``path``: its JSON file). Nothing is unpickled."""
    meta = json.loads(Path(path).read_text())
    with np.load(Path(path).with_suffix(".npz"), allow_pickle=False) as npz:
        arrays = {k: npz[f"arr_{i}"] for i, k in enumerate(meta["array_keys"])}
    return CapturedMessage(
        direction=str(meta["direction"]),
        message_type=str(meta["message_type"]),
        node_config=_from_json(meta["node_config"]),
        arrays=arrays,
        metrics=_from_json(meta["metrics"]),
        configs=_from_json(meta["configs"]),
        error=meta["error"],
    )


def capture_mod(directory: str | Path) -> Callable[..., Any]:
    """A ClientApp mod that writes a :class:`CapturedMessage` for every message in and out of the client
    (:func:`write_captured`: JSON + npz).

    Works in any process that can write to ``directory`` (Ray actors, SuperNode ClientApp processes).
    """
    target = str(directory)

    def mod(message: Any, context: Any, call_next: Callable[[Any, Any], Any]) -> Any:
        write_captured(_summarise(message, "to_partner", context), target)
        reply = call_next(message, context)
        write_captured(_summarise(reply, "from_partner", context), target)
        return reply

    return mod


def read_capture(directory: str | Path) -> list[CapturedMessage]:
    """Every message captured in ``directory``, in capture order (JSON + npz; nothing is unpickled)."""
    return [load_captured(path) for path in sorted(Path(directory).glob("*.json"))]
