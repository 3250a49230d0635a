"""MLflow adapter: one MLflow run per grid cell. The only module of fedsim that imports mlflow.

Where runs go: an explicit ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else an embedded
sqlite store ``sqlite:///<cwd>/mlflow.db``. For a sqlite store the artifacts sit next to the
database in ``mlartifacts/<experiment>/`` (MLflow's own default would be ``./mlruns`` in whatever
directory the process happens to run in).

mlflow is imported on first use (it costs ~3 s) and telemetry is switched off before that.

**The store is checked first** (:func:`check_store`, before any world is built): a sqlite store's folder
must be creatable and writable and its file a database fedsim can write to; a server must answer within
``FEDSIM_TRACKING_TIMEOUT`` seconds (default 2) per attempt, ``FEDSIM_TRACKING_RETRIES`` retries (default 2),
``FEDSIM_TRACKING_DEADLINE`` seconds in all (default 5);
then one MLflow call checks the schema (sqlite: creates or migrates it) — each problem is one line.
A brand-new sqlite store is created under an exclusive lock on ``<db>.lock``: two processes that open it
at the same moment would otherwise both run MLflow's migrations and one fails ("table runs already exists").

**Leases** (two ``fedsim run`` on one store): every run carries ``fedsim.owner`` (host, pid and the
process's start time) and ``fedsim.heartbeat`` (Unix time, refreshed every ``FEDSIM_HEARTBEAT_S`` s,
default 30, by a background thread while the run is open). An unfinished run is *live* — another process
is working on it, never to be deleted — while its owner process is alive (same host) or its heartbeat is
younger than 4 heartbeats (another host). A RUNNING run whose owner is gone is a crash and is redone.

Names and values, as MLflow accepts them (checked against mlflow 3.17):

* param / metric / tag **keys** may hold letters, digits, ``_ - . space : /``; fedsim replaces
  any other character (e.g. ``@``, ``+``, ``|``, ``=``) by ``_`` and refuses ``/``, ``:`` too
  (``/`` makes MLflow treat the key as a path, ``:`` is refused on Windows). Two keys that become
  equal after this are an error. Keys are at most 250 characters.
* **values** are free text: ``bank_1+telco`` or ``pooled|bank_1+telco|…`` are fine as param
  values, tag values and run names. Param values longer than 6000 characters are cut and end in
  ``…[sha256:<16 hex>]`` so distinct long values stay distinct.
* **metric values** are floats; NaN is kept (an undefined metric), ±inf is stored by MLflow as
  ±1.797e308.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from fedsim.errors import FedsimError
from fedsim.experiment import RunSpec, format_epsilon, format_number

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from fedsim.run_metrics import MetricLayout

CONFIG_HASH_TAG = "fedsim.config_hash"
SUPERSEDED_TAG = "fedsim.superseded"
OWNER_TAG = "fedsim.owner"
HEARTBEAT_TAG = "fedsim.heartbeat"
KIND_TAG = "fedsim.kind"
SUMMARY_KIND = "summary"
"""``fedsim.kind = summary``: the experiment's summary run (:mod:`fedsim.experiment_summary`), never a grid cell."""
METRICS_TABLE_TAG = "fedsim.metrics_table"
"""Set on a run whose full metric set is the tidy artifact it names (:mod:`fedsim.run_metrics`)."""
METRICS_TABLE_PATH = "metrics/metrics.parquet"
NOTE_TAG = "mlflow.note.content"
"""MLflow's description of an experiment or run (shown as its note in the UI)."""
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
CLASSIC_ML = "custom_model_development"
"""The experiment kind MLflow's UI shows as a runs table (its other kinds open GenAI views)."""
_MLFLOW_INF = 1.7976931348623157e308  # what MLflow's SQL store keeps for ±inf (sqlalchemy_store, log_metric)
MAX_PARAM_VALUE = 6000
MAX_KEY = 250
_BATCH = 100  # MLflow accepts at most 100 params+tags and 1000 metrics per log_batch
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.\- ]")


# Offline hygiene: set before mlflow is first imported (it is imported only inside this module).
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# A tracking server (http://...) makes MLflow print "View run ... at: URL" to stdout for every run it ends: the
# CLI's stdout is for its own output (the runs are listed by `fedsim runs` and `fedsim ui`).
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class TrackingError(FedsimError):
    """A tracking call that cannot be done as asked (bad key or metric, no active run, unknown
    experiment); a ValueError the CLI shows without a traceback."""


def _mlflow_client(tracking_uri: str) -> MlflowClient:
    """A client whose store is initialised: a new sqlite store is created (migrated) under a file lock."""
    from mlflow import MlflowClient

    db = _sqlite_path(tracking_uri)
    with _store_lock(tracking_uri):
        fresh = db is not None and not db.exists()
        try:
            client = MlflowClient(tracking_uri=tracking_uri)
            client.search_experiments(max_results=1)  # creates / migrates a sqlite store now, inside the lock
        except BaseException:
            if fresh and db is not None:  # a full disk mid-migration leaves a store that stays broken: remove it
                for leftover in (db, db.with_name(db.name + "-journal"), db.with_name(db.name + "-wal")):
                    leftover.unlink(missing_ok=True)
            raise
    return client


def _sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri.endswith(":memory:"):
        return None
    return Path(tracking_uri[len(prefix) :].split("?", 1)[0])


@contextmanager
def _store_lock(tracking_uri: str, suffix: str = ".lock") -> Iterator[None]:
    """Exclusive lock on ``<db><suffix>`` for a sqlite store (no-op elsewhere, or where fcntl is missing)."""
    db = _sqlite_path(tracking_uri)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, as before
        db = None
    if db is None:
        yield
        return
    with open(db.with_name(db.name + suffix), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        raise TrackingError(f"${name} = {os.environ[name]!r}: allowed: a number") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_store(tracking_uri: str | None = None) -> str:
    """Check the tracking store before any work: reachable, writable, a schema MLflow can use.

    Returns the resolved URI; raises :class:`TrackingError` with one line otherwise. Bounded: a server is
    tried ``1 + $FEDSIM_TRACKING_RETRIES`` times with ``$FEDSIM_TRACKING_TIMEOUT`` s each (defaults 2 and 2 s).
    """
    uri = resolve_tracking_uri(tracking_uri)
    db = _sqlite_path(uri)
    if db is not None:
        _check_sqlite(uri, db)
    elif uri.startswith(("http://", "https://")):
        _probe_server(uri)
    try:
        # A server: MLflow's own retries off for this one call (the probe already waited); the schema check.
        env = {} if "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in os.environ else {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        with _environ(env):
            _mlflow_client(uri)
    except TrackingError:
        raise
    except Exception as err:  # noqa: BLE001 - MlflowException, sqlalchemy, OSError: one line whatever it is
        raise TrackingError(f"tracking store {uri}: {_first_line(err)}") from None
    return uri


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_sqlite(uri: str, db: Path) -> None:
    import sqlite3

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(db.parent, os.W_OK):
            raise PermissionError(13, "folder not writable")
        with open(db.with_name(db.name + ".lock"), "a"):
            pass
    except OSError as err:
        raise TrackingError(
            f"tracking store {uri}: cannot write in {str(db.parent)!r} ({err.strerror or err})"
        ) from None
    if not db.exists():
        return
    try:
        con = sqlite3.connect(db, timeout=_env_number("FEDSIM_TRACKING_TIMEOUT", 2.0) * 5)
        try:
            con.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file or a non-database
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            con.rollback()
        finally:
            con.close()
    except sqlite3.Error as err:
        raise TrackingError(f"tracking store {uri}: {str(db)!r} cannot be written as a database ({err})") from None


def _probe_server(uri: str) -> None:
    """Any HTTP answer counts as reachable (auth and schema are MLflow's call next); refused or silent: retry.

    Bounded three ways: ``$FEDSIM_TRACKING_TIMEOUT`` s per try (2), ``$FEDSIM_TRACKING_RETRIES`` retries (2)
    and ``$FEDSIM_TRACKING_DEADLINE`` s in all (5), whichever ends first.
    """
    timeout = _env_number("FEDSIM_TRACKING_TIMEOUT", 2.0)
    retries = int(_env_number("FEDSIM_TRACKING_RETRIES", 2))
    budget = _env_number("FEDSIM_TRACKING_DEADLINE", 5.0)
    deadline = time.monotonic() + budget
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1"
    reason, tries = "", 0
    while True:
        tries += 1
        try:
            with urllib.request.urlopen(url, timeout=max(0.1, min(timeout, deadline - time.monotonic()))):  # noqa: S310
                return
        except urllib.error.HTTPError:
            return  # the server answered
        except (OSError, ValueError) as err:
            reason = str(getattr(err, "reason", err))
        pause = 0.5 * 2 ** (tries - 1)
        if tries > retries or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    raise TrackingError(
        f"tracking server {uri} is not reachable ({reason}; {tries} tries in at most {budget:g} s); "
        "start it, or pass another --tracking-uri"
    )


# ------------------------------------------------------------------------------------------------
# Leases: who is working on a run
# ------------------------------------------------------------------------------------------------
def _process_start(pid: int) -> str:
    """Start time of ``pid`` in clock ticks since boot ('' where /proc is missing): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_id() -> str:
    """``host|pid|start`` of this process."""
    return f"{socket.gethostname()}|{os.getpid()}|{_process_start(os.getpid())}"


def _owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host; None for another host (only its heartbeat can tell)."""
    host, _, rest = owner.partition("|")
    pid_text, _, start = rest.partition("|")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    return not start or _process_start(pid) in ("", start)


def heartbeat_seconds() -> float:
    return _env_number("FEDSIM_HEARTBEAT_S", 30.0)


@dataclass(frozen=True)
class Lease:
    """One stored run of a cell: id, MLflow status, start time (ms) and whether a process still works on it."""

    run_id: str
    status: str
    start_time: int
    live: bool


def _is_live(status: str, tags: Mapping[str, str], now: float) -> bool:
    if status not in ("RUNNING", "SCHEDULED") or OWNER_TAG not in tags:
        return False  # ended, or left by a fedsim without leases: a crash
    alive = _owner_alive(tags[OWNER_TAG])
    if alive is not None:
        return alive
    try:
        return now - float(tags.get(HEARTBEAT_TAG, "0")) < 4 * heartbeat_seconds()
    except ValueError:
        return False


class _Heartbeat:
    """Refreshes ``fedsim.heartbeat`` of one run every few seconds from a daemon thread."""

    def __init__(self, client: MlflowClient, run_id: str, every_s: float) -> None:
        self._client, self._run_id, self._every = client, run_id, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"fedsim-heartbeat-{run_id[:8]}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._client.set_tag(self._run_id, HEARTBEAT_TAG, f"{time.time():.3f}")
            except Exception:  # noqa: BLE001, S112 - a missed beat only ages the lease; the next one retries
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The store to use: explicit URI, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<cwd>/mlflow.db``."""
    if tracking_uri:
        return tracking_uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _artifact_root(tracking_uri: str) -> Path | None:
    """``<db folder>/mlartifacts`` for a sqlite file store; None (server decides) otherwise."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri.endswith(":memory:"):
        return None
    return Path(tracking_uri[len(prefix) :]).parent / "mlartifacts"


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """Commit of the fedsim source tree (``git rev-parse HEAD``), '+dirty' if files changed; 'unknown'."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if changed else (head or "unknown")


def sanitize_key(key: str) -> str:
    """A key MLflow accepts: characters outside ``[A-Za-z0-9_.- ]`` become ``_``; at most 250 chars."""
    # Leading dots would read as a relative path ('..x'), which MLflow refuses.
    clean = _BAD_KEY_CHARS.sub("_", str(key)).strip().lstrip(".")
    if not clean:
        raise TrackingError(f"key {key!r}: needs at least one letter or digit")
    if len(clean) > MAX_KEY:
        raise TrackingError(f"key {key[:40]!r}…: {len(clean)} characters; allowed: at most {MAX_KEY}")
    return clean


def param_value(value: Any) -> str:
    """Param value as text: floats in shortest exact form (1.0 → '1', inf → 'inf'), sequences joined
    by ',', cut at 6000 chars."""
    if isinstance(value, float):
        text = format_number(value)
    elif isinstance(value, list | tuple):
        text = ",".join(param_value(v) for v in value)
    else:
        text = str(value)
    if len(text) <= MAX_PARAM_VALUE:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    tail = f"…[sha256:{digest}]"
    return text[: MAX_PARAM_VALUE - len(tail)] + tail


def _sanitized(mapping: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in mapping.items():
        clean = sanitize_key(key)
        if clean in out:
            raise TrackingError(f"keys {origin[clean]!r} and {key!r} both become {clean!r}; rename one")
        out[clean], origin[clean] = value, key
    return out


def _dump_json(settings: BaseModel | None) -> dict[str, Any] | None:
    """An optional settings block as JSON-ready values; ``None`` (block absent) stays ``None``."""
    return None if settings is None else settings.model_dump(mode="json")


def cell_params(cell: RunSpec) -> dict[str, str]:
    """The params every run carries: its cell and the experiment's shared settings, flattened."""
    core = {
        "regime": cell.regime,
        "coalition": "+".join(cell.coalition),
        "model": cell.model,
        "seed": str(cell.seed),
        "epsilon": format_epsilon(cell.epsilon),
        "config_hash": cell.config_hash,
        "git_commit": git_commit(),
    }
    shared = _flatten(
        {
            "world": {
                **cell.world.model_dump(mode="json", exclude={"overrides", "secret_file"}),
                "digest": cell.world_digest,
                "secret": cell.result_fields().get("world_secret"),  # the fingerprint, never the secret or its path
                "overrides": cell.world.overrides,
            },
            "split": cell.split.model_dump(mode="json"),
            "training": cell.training.model_dump(mode="json"),
            "metrics": cell.metrics.model_dump(mode="python"),
            "privacy": _dump_json(getattr(cell, "privacy", None)),
            "federation": _dump_json(getattr(cell, "federation", None)),
        }
    )
    return {**core, **{k: param_value(v) for k, v in shared.items() if v is not None}}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, prefix=f"{name}."))
        else:
            out[name] = value
    return out


def _number(key: str, value: Any) -> float:
    # numpy scalars count as numbers; bools and text do not.
    if isinstance(value, bool) or not hasattr(value, "__float__") or isinstance(value, str):
        raise TrackingError(f"metric {key!r} = {value!r}: allowed: a number (float; NaN = undefined)")
    return float(value)


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Check ``name`` / ``name_lo`` / ``name_hi`` metrics: numbers, CI bounds with their estimate."""
    values = {key: _number(key, value) for key, value in metrics.items()}
    for key in values:
        base, _, bound = key.rpartition("_")
        if bound in ("lo", "hi") and base not in values:
            raise TrackingError(f"metric {key!r}: a CI bound needs its estimate {base!r} in the same call")
        if bound == "lo" and f"{base}_hi" in values:
            lo, hi = values[key], values[f"{base}_hi"]
            if not (math.isnan(lo) or math.isnan(hi)) and lo > hi:
                raise TrackingError(f"metric {base!r}: CI bounds reversed ({key} = {lo} > {base}_hi = {hi})")
    return values


class Tracker:
    """One MLflow experiment in one store; logs to one active run at a time.

    tracking_uri: MLflow tracking URI (see :func:`resolve_tracking_uri`). experiment_name: the
    experiment (created on first use, restored if it was deleted).
    """

    def __init__(self, tracking_uri: str | None = None, experiment_name: str = "default") -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._active: str | None = None
        self._tables: dict[str, dict[str, float]] = {}

    # -- store ------------------------------------------------------------------------------
    @property
    def client(self) -> MlflowClient:
        """The MLflow client (mlflow is imported here, on first use)."""
        if self._client is None:
            self._client = _mlflow_client(self.tracking_uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        """Id of this tracker's experiment; created or restored on first use."""
        if self._experiment_id is None:
            self._experiment_id = self._ensure_experiment(self.experiment_name)
        return self._experiment_id

    def _ensure_experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is None:
            root = _artifact_root(self.tracking_uri)
            location = (root / name).resolve().as_uri() if root else None
            return self.client.create_experiment(name, artifact_location=location)
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    def describe_experiment(self, text: str | None) -> None:
        """Show ``text`` (the experiment file's ``description``) as the experiment's note in the MLflow UI, and
        mark the experiment as classic model development so the UI opens its runs table, not its GenAI views."""
        wanted = {EXPERIMENT_KIND_TAG: CLASSIC_ML, **({NOTE_TAG: text.strip()} if text and text.strip() else {})}
        # MLflow's tag upsert is not atomic: two `fedsim run` starting together would both insert (UNIQUE fails).
        with _store_lock(self.tracking_uri, ".experiment.lock"):
            have = self.client.get_experiment(self.experiment_id).tags
            for key, value in wanted.items():
                if have.get(key) != value:
                    self.client.set_experiment_tag(self.experiment_id, key, value)

    @property
    def active_run_id(self) -> str:
        """Id of the run opened by :meth:`start_run`; TrackingError outside one."""
        if self._active is None:
            raise TrackingError("no active run: log inside `with tracker.start_run(cell, ...):`")
        return self._active

    # -- finding and removing runs ----------------------------------------------------------
    def find_runs(self, config_hash: str) -> list[tuple[str, str]]:
        """(run_id, status) of every non-deleted run with this config hash, newest first.

        status is MLflow's: RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
        """
        return [(lease.run_id, lease.status) for lease in self.run_leases(config_hash)]

    def run_leases(self, config_hash: str) -> list[Lease]:
        """Every non-deleted run with this config hash, newest first, with whether it is live (module notes)."""
        from mlflow.entities import ViewType

        if not re.fullmatch(r"[0-9a-f]{64}", config_hash):
            raise TrackingError(f"config_hash {config_hash!r}: allowed: 64 lowercase hex digits (sha256)")
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{CONFIG_HASH_TAG}` = '{config_hash}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
        )
        now = time.time()
        return [
            Lease(r.info.run_id, r.info.status, int(r.info.start_time or 0), _is_live(r.info.status, r.data.tags, now))
            for r in runs
        ]

    def holds_lease(self, config_hash: str, run_id: str) -> bool:
        """Whether ``run_id`` is the one run that should do its cell: no other run finished it, and among the
        live runs it started first (ties by run id) — two processes that both opened a run agree on one."""
        leases = self.run_leases(config_hash)
        if any(lease.status == "FINISHED" and lease.run_id != run_id for lease in leases):
            return False
        live = [lease for lease in leases if lease.live or lease.run_id == run_id]
        return min(live, key=lambda lease: (lease.start_time, lease.run_id)).run_id == run_id

    def delete_run(self, run_id: str) -> None:
        """Mark a run superseded (and KILLED if it never ended), then delete it (MLflow soft delete)."""
        run = self.client.get_run(run_id)
        self.client.set_tag(run_id, SUPERSEDED_TAG, "true")
        if run.info.status in ("RUNNING", "SCHEDULED"):
            self.client.set_terminated(run_id, status="KILLED")
        self.client.delete_run(run_id)

    # -- one run ----------------------------------------------------------------------------
    @contextmanager
    def start_run(
        self,
        cell: RunSpec,
        *,
        world_hash: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
    ) -> Iterator[str]:
        """Open an MLflow run for a grid cell; yields its run id.

        Logs the cell's params (regime, coalition, model, seed, epsilon, config hash, git commit,
        shared settings) and ``world_hash`` when given. ``run_name``: the name in MLflow's table (default
        :attr:`RunSpec.run_name`; the grid passes a short one, :func:`fedsim.experiment.grid.short_run_names`).
        Ends FINISHED, or FAILED if the block raises (KILLED on Ctrl-C); the exception propagates.
        """
        if self._active is not None:
            raise TrackingError(f"run {self._active} is still active; runs do not nest here")
        run_tags = {
            CONFIG_HASH_TAG: cell.config_hash,
            OWNER_TAG: owner_id(),
            HEARTBEAT_TAG: f"{time.time():.3f}",
            **_sanitized(dict(tags or {})),
        }
        run = self.client.create_run(
            self.experiment_id, run_name=run_name or cell.run_name, tags={k: str(v) for k, v in run_tags.items()}
        )
        self._active = run.info.run_id
        beat = _Heartbeat(self.client, run.info.run_id, heartbeat_seconds())
        try:
            params: dict[str, Any] = cell_params(cell)
            if world_hash is not None:
                params["world_hash"] = world_hash
            self.log_params(params)
            yield run.info.run_id
        except BaseException as err:
            beat.stop()
            status = "FAILED" if isinstance(err, Exception) else "KILLED"
            self.client.set_terminated(run.info.run_id, status=status)
            raise
        else:
            beat.stop()
            self.client.set_terminated(run.info.run_id, status="FINISHED")
        finally:
            beat.stop()
            self._active = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params of the active run (values become text; see the module notes on limits)."""
        from mlflow.entities import Param

        items = [Param(k, param_value(v)) for k, v in _sanitized(params).items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.active_run_id, params=items[start : start + _BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set tags on the active run."""
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in _sanitized(tags).items()]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(self.active_run_id, tags=items[start : start + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int = 0, layout: MetricLayout | None = None) -> None:
        """Log final metrics of the active run: ``name`` with optional ``name_lo`` / ``name_hi`` (95% CI).

        With a ``layout`` only its headline names become MLflow metrics and every metric goes to the tidy
        artifact :data:`METRICS_TABLE_PATH` (:mod:`fedsim.run_metrics`); :meth:`runs_table` merges it back."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = check_metrics(_sanitized(metrics))
        if layout is not None:
            self._log_metric_table(values, layout)
            values = {k: values[k] for k in layout.headline if k in values}
        items = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(items), 10 * _BATCH):
            self.client.log_batch(self.active_run_id, metrics=items[start : start + 10 * _BATCH])

    def _log_metric_table(self, values: Mapping[str, float], layout: MetricLayout) -> None:
        from fedsim.run_metrics import metric_table

        folder, file = METRICS_TABLE_PATH.rsplit("/", 1)
        with tempfile.TemporaryDirectory(prefix="fedsim-metrics-") as tmp:
            metric_table(values, layout).to_parquet(Path(tmp) / file, index=False)
            self.client.log_artifact(self.active_run_id, str(Path(tmp) / file), artifact_path=folder)
        # The tag after the file: a run tagged so always has its table.
        self.client.set_tag(self.active_run_id, METRICS_TABLE_TAG, METRICS_TABLE_PATH)

    def log_step_metrics(self, name: str, values: Sequence[float]) -> None:
        """Log a per-round curve: ``values[i]`` at step ``i`` (e.g. loss per federated round)."""
        from mlflow.entities import Metric

        key = sanitize_key(name)
        now = int(time.time() * 1000)
        items = [Metric(key, _number(f"{key}[{step}]", v), now, step) for step, v in enumerate(values)]
        for start in range(0, len(items), 10 * _BATCH):
            self.client.log_batch(self.active_run_id, metrics=items[start : start + 10 * _BATCH])

    def log_artifact(self, path: str | Path, *, name: str | None = None) -> None:
        """Store a local file or folder with the active run, under the artifact folder ``name`` if given."""
        local = Path(path)
        folder = sanitize_key(name) if name else None
        if local.is_dir():
            self.client.log_artifacts(self.active_run_id, str(local), artifact_path=folder)
        elif local.is_file():
            self.client.log_artifact(self.active_run_id, str(local), artifact_path=folder)
        else:
            raise TrackingError(f"artifact {name or local.name!r}: no such file or folder {local}")

    # -- the experiment's summary run ------------------------------------------------------
    @contextmanager
    def summary_lock(self) -> Iterator[None]:
        """Held while one process writes the summary run (sqlite: ``<db>.summary.lock``; elsewhere no lock), so two
        ``fedsim run`` finishing together write one summary, not two."""
        with _store_lock(self.tracking_uri, ".summary.lock"):
            yield

    def summary_written_since(self, since_ms: int) -> str | None:
        """The id of a finished summary run started at or after ``since_ms`` (Unix ms), else None."""
        for info in self._summary_infos():
            if info.status == "FINISHED" and int(info.start_time or 0) >= since_ms:
                return str(info.run_id)
        return None

    def summary_runs(self) -> list[str]:
        """Ids of the experiment's finished summary runs (``fedsim.kind = summary``), newest first; normally one."""
        return [info.run_id for info in self._summary_infos() if info.status == "FINISHED"]

    def _summary_infos(self) -> list[Any]:
        from mlflow.entities import ViewType

        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = '{SUMMARY_KIND}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
        )
        return [r.info for r in runs]

    @contextmanager
    def summary_run(self, note: str) -> Iterator[str]:
        """Open a new summary run of the experiment (run name ``summary · <experiment>``, ``note`` as its
        description); the log methods write to it inside the block. When the block ends without error the run
        is FINISHED and replaces the summary runs before it (deleted only then: there is always one to read);
        on an error it is removed and the earlier one stays.

        Two processes may write one at the same time (two ``fedsim run`` on one store): a run still being
        written is never deleted; the one that finishes last keeps the newer of the two and removes the other."""
        if self._active is not None:
            raise TrackingError(f"run {self._active} is still active; runs do not nest here")
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"summary · {self.experiment_name}",
            tags={KIND_TAG: SUMMARY_KIND, NOTE_TAG: note},
        )
        run_id = run.info.run_id
        self._active = run_id
        try:
            yield run_id
        except BaseException:
            self.client.set_terminated(run_id, status="FAILED")
            self.client.delete_run(run_id)
            raise
        finally:
            self._active = None
        self.client.set_terminated(run_id, status="FINISHED")
        self._keep_newest_summary(run_id, int(run.info.start_time or 0))

    def _keep_newest_summary(self, mine: str, started: int) -> None:
        others = [info for info in self._summary_infos() if info.run_id != mine]
        for info in others:
            if info.status == "FINISHED" and (info.start_time or 0, info.run_id) > (started, mine):
                self.client.delete_run(mine)  # a newer summary is already complete: it stays, this one goes
                return
        for info in others:
            if info.status != "RUNNING":  # finished older ones, and failed leftovers
                self.client.delete_run(info.run_id)

    def finished_config_hashes(self) -> set[str]:
        """Config hashes of the experiment's FINISHED grid runs (one query): which cells are done."""
        return {r.data.tags.get(CONFIG_HASH_TAG, "") for r in self._finished_runs(self.experiment_id)} - {""}

    def attach_files(self, run_id: str, paths: Sequence[str | Path], *, folder: str) -> None:
        """Add local files or folders to a run's artifacts under ``folder`` (e.g. reports to the summary run)."""
        for path in paths:
            local = Path(path)
            if local.is_dir():
                self.client.log_artifacts(run_id, str(local), artifact_path=f"{folder}/{local.name}")
            elif local.is_file():
                self.client.log_artifact(run_id, str(local), artifact_path=folder)
            else:
                raise TrackingError(f"attach {str(local)!r}: no such file or folder")

    # -- reading back -----------------------------------------------------------------------
    def download_artifact(self, run_id: str, path: str, dst_dir: str | Path) -> Path:
        """Copy one stored artifact of ``run_id`` (``path`` as logged, e.g. ``scores/scores.parquet``) into
        ``dst_dir`` and return the local path, so readers of artifacts need not import mlflow themselves."""
        Path(dst_dir).mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(dst_dir)))

    def runs_table(self, experiment_name: str | None = None) -> pd.DataFrame:
        """One row per FINISHED grid run: run_id, run_name, start_time, then params, then metrics.

        A metric whose name equals a param's gets the column ``metrics.<name>``. Default
        experiment: this tracker's. A run logged with a metric layout (headline metrics + the tidy artifact)
        gives the same row as one that logged every metric flat: its artifact is merged back
        (:meth:`_tabled_metrics`). The experiment's summary run is not a grid run and is left out.
        """
        import pandas as pd

        exp_id = self._existing_experiment_id(experiment_name or self.experiment_name)
        rows = [_row(run, self._tabled_metrics(run)) for run in self._finished_runs(exp_id)]
        if not rows:
            return pd.DataFrame(columns=["run_id", "run_name", "start_time"])
        return pd.DataFrame(rows).sort_values("start_time", kind="stable").reset_index(drop=True)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """Every final metric of one run, as the runs table has them: the top-level (headline) metrics and, for a
        run logged with a metric layout, the tidy artifact's; a run logged flat gives its MLflow metrics."""
        run = self.client.get_run(run_id)
        return {**run.data.metrics, **self._tabled_metrics(run)}

    def _existing_experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage == "deleted":
            known = [e.name for e in self.client.search_experiments()]
            raise TrackingError(f"experiment {name!r}: not in {self.tracking_uri}; known: {', '.join(known)}")
        return found.experiment_id

    def _tabled_metrics(self, run: Any) -> dict[str, float]:
        """The full metric set of a run logged with a layout ({} for a run that logged every metric flat).

        A finished run's artifacts never change, so each table is read once: kept in memory by run id and on
        disk in :func:`metrics_cache_dir`. ±inf reads as MLflow's SQL store gives it for a flat metric (±max
        float), so both ways of logging give identical rows."""
        path = run.data.tags.get(METRICS_TABLE_TAG)
        if not path:
            return {}
        run_id = run.info.run_id
        if run_id not in self._tables:
            import pandas as pd

            from fedsim.run_metrics import flat_metrics

            cached = metrics_cache_dir() / f"{run_id}.parquet"
            if not cached.is_file():
                try:
                    local = self.download_artifact(run_id, path, Path(tempfile.mkdtemp(dir=metrics_cache_dir())))
                except Exception as err:  # noqa: BLE001 - MlflowException or OSError: name the run, one line
                    raise TrackingError(f"run {run_id}: its metric table {path!r} cannot be read ({err})") from None
                os.replace(local, cached)  # atomic: a reader never sees half a file
                shutil.rmtree(local.parent, ignore_errors=True)
            flat = flat_metrics(pd.read_parquet(cached))
            self._tables[run_id] = {k: math.copysign(_MLFLOW_INF, v) if math.isinf(v) else v for k, v in flat.items()}
        return self._tables[run_id]

    def _finished_runs(self, experiment_id: str) -> Iterator[Any]:
        """Every FINISHED grid run of the experiment (not its summary run)."""
        from mlflow.entities import ViewType

        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string="attributes.status = 'FINISHED'",
                run_view_type=ViewType.ACTIVE_ONLY,
                page_token=token,
            )
            yield from (r for r in page if r.data.tags.get(KIND_TAG) != SUMMARY_KIND)
            token = page.token
            if not token:
                return


def metrics_cache_dir() -> Path:
    """Where finished runs' metric tables are cached (``$FEDSIM_METRICS_CACHE``, else a folder per user in the temp
    folder). Keyed by run id, which MLflow never reuses, so one cache serves every store."""
    user = getattr(os, "getuid", lambda: "user")()
    path = Path(os.environ.get("FEDSIM_METRICS_CACHE") or Path(tempfile.gettempdir()) / f"fedsim-metrics-cache-{user}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _row(run: Any, tabled: Mapping[str, float]) -> dict[str, Any]:
    """A run's row: its params, then every metric (flat ones and those of its metric table), by name."""
    import pandas as pd

    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "start_time": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
    }
    row.update(sorted(run.data.params.items()))
    for key, value in sorted({**tabled, **run.data.metrics}.items()):
        row[f"metrics.{key}" if key in row else key] = value
    return row


@dataclass(frozen=True)
class RunTime:
    """One finished run's wall time as MLflow recorded it (start and end of the tracked run), with its params."""

    experiment: str
    run_id: str
    start_ms: int
    end_ms: int
    params: Mapping[str, str]

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000.0


def finished_cells(tracking_uri: str | None, experiment_name: str) -> dict[str, str]:
    """Config hash → world hash ('' if not logged) of the experiment's FINISHED grid runs, read only: neither a
    missing sqlite store nor a missing experiment is created (nothing finished: empty). `fedsim run --dry-run`
    estimates only the rest."""
    uri = resolve_tracking_uri(tracking_uri)
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        return {}
    client = _mlflow_client(uri)
    found = client.get_experiment_by_name(experiment_name)
    if found is None or found.lifecycle_stage == "deleted":
        return {}
    tracker = Tracker(uri, experiment_name)
    tracker._client = client
    runs = tracker._finished_runs(found.experiment_id)
    done = {r.data.tags.get(CONFIG_HASH_TAG, ""): r.data.params.get("world_hash", "") for r in runs}
    done.pop("", None)
    return done


def finished_run_times(tracking_uri: str | None = None) -> list[RunTime]:
    """Every FINISHED run of every experiment in the store, with its start/end time and params.

    Read only: a sqlite store that does not exist yet is not created (no runs: an empty list), so
    `fedsim run --dry-run` leaves no file behind. Used by :mod:`fedsim.experiment.cost`."""
    from mlflow.entities import ViewType

    uri = resolve_tracking_uri(tracking_uri)
    db = _sqlite_path(uri)
    if db is not None and not db.is_file():
        return []
    client = _mlflow_client(uri)
    out: list[RunTime] = []
    for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
        tracker = Tracker(uri, experiment.name)
        tracker._client = client  # one client for the whole read
        for run in tracker._finished_runs(experiment.experiment_id):
            if run.info.end_time is None or run.info.start_time is None:
                continue
            out.append(
                RunTime(
                    experiment.name,
                    run.info.run_id,
                    int(run.info.start_time),
                    int(run.info.end_time),
                    dict(run.data.params),
                )
            )
    return out
