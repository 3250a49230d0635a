"""Out of one machine, on existing engines: a small grid run by the real CLI against a Ray cluster started with
``ray start --head`` and an MLflow tracking server started with ``mlflow server`` (both real, on free ports here).

What must hold: the federated cell's ClientApp actors ran on that cluster (its job table lists the ``fedsim run``
process as a driver and the ``ClientAppActor`` actors under that job), the run says so (``fl_engine_address``),
every cell of the grid reached the server with its metrics and artifacts (stored in the server's artifact root,
nothing in the working folder), and a second ``fedsim run`` on the same server, without the cluster, redoes
nothing (the address is not part of a cell's config hash).

The cluster and the server are stopped through the processes this test started (each in its own session:
``ray start --block`` stops its Ray processes on SIGTERM, and the session's group is killed after it). Not
``ray stop``: that stops every Ray of this user on the machine, other runs' included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("flower")]  # `make cluster-test` (~3 min)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BANKS = ("bank_1", "bank_2", "bank_3")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(
    ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 300.0
) -> None:
    # generous: on a free machine both are ready in ~10 s; a loaded one (other jobs at normal priority) is slower
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if ready():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout_s:g} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process we started, then SIGKILL to whatever is left of its session (its group id = its pid)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def ray_cluster() -> Iterator[str]:
    """``ray start --head`` (2 CPUs, no dashboard, a private temp dir, free ports); yields its ``host:port``."""
    temp = Path(tempfile.mkdtemp(prefix="fsray-"))  # short: Ray's socket paths must stay under ~107 characters
    port = free_port()
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2"]
    cmd += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    cmd += [f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
    cmd += ["--object-store-memory=100000000"]
    log = temp / "ray-start.log"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait(lambda: "Ray runtime started" in log.read_text(errors="replace") and _listens(port), "ray", proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """``mlflow server`` on a free port, a sqlite backend and an artifact root in ``folder``; yields its URI."""
    folder.mkdir(parents=True)
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "art")]
    log = folder / "server.log"
    # no job runner (MLflow 3 starts several worker processes for GenAI jobs fedsim does not use)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    uri = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:  # noqa: S310 - our own server
                return bool(answer.status == 200)
        except OSError:
            return False

    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait(healthy, "mlflow server", proc, log)
        yield uri
    finally:
        _stop(proc)


def _grid(folder: Path) -> Path:
    """Two cells: status quo and one horizontal federation of three banks (known-answer world, 1,200 people)."""
    from tests.federation.horizontal_worlds import SPLIT, world_spec

    spec = {
        "name": "cluster-grid",
        "world": world_spec(entities=1200),
        "split": SPLIT,
        "regimes": ["status_quo", "horizontal"],
        "coalitions": [list(BANKS)],
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "negative_rate": 0.2},
        "federation": {"rounds": 2},
        "metrics": {"bootstrap": 20},
        "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["horizontal", "status_quo"], "min_seeds": 1},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _fedsim_run(grid: Path, uri: str, address: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process (the Ray driver), this tree's code first on its path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":")}
    env.pop("RAY_ADDRESS", None)
    cmd = [str(BIN / "fedsim"), "run", str(grid), "--tracking-uri", uri, "--ray-address", address, "--quiet"]
    return subprocess.run(cmd, cwd=grid.parent, env=env, capture_output=True, text=True, timeout=600, check=False)


_CLUSTER_VIEW = """
import json, sys, ray
from ray._private import state
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
jobs = [{"id": j["JobID"], "pid": j.get("DriverPid"), "entrypoint": j.get("Entrypoint", "")} for j in state.jobs()]
actors = [{"cls": a["ActorClassName"], "job": a["JobID"]} for a in state.actors().values()]
print(json.dumps({"jobs": jobs, "actors": actors}))
"""


def _cluster_view(address: str) -> dict[str, list[dict[str, object]]]:
    """The cluster's own job and actor tables (GCS), read by a separate driver."""
    out = subprocess.run(
        [sys.executable, "-c", _CLUSTER_VIEW, address], capture_output=True, text=True, timeout=120, check=True
    )
    view: dict[str, list[dict[str, object]]] = json.loads(out.stdout.strip().splitlines()[-1])
    return view


def test_a_grid_runs_on_a_ray_cluster_into_an_mlflow_server(tmp_path: Path) -> None:
    import mlflow

    grid = _grid(tmp_path / "work")
    with ray_cluster() as address, mlflow_server(tmp_path / "server") as uri:
        first = _fedsim_run(grid, uri, address)
        assert first.returncode == 0, first.stderr[-3000:]
        view = _cluster_view(address)
        second = _fedsim_run(grid, uri, "local")  # where a cell runs is not part of its config hash
        assert second.returncode == 0, second.stderr[-3000:]
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name("cluster-grid")
        assert experiment is not None
        runs = [r for r in client.search_runs([experiment.experiment_id]) if "regime" in r.data.params]
        by_regime = {r.data.params["regime"]: r for r in runs}
        horizontal = by_regime["horizontal"]
        listed = {a.path for a in client.list_artifacts(horizontal.info.run_id)}
        scores_dir = client.download_artifacts(horizontal.info.run_id, "scores", str(tmp_path / "dl"))
    # the federated cell ran on the cluster: the `fedsim run` driver is one of its jobs, Flower's actors under it
    fedsim_jobs = [j["id"] for j in view["jobs"] if "fedsim run" in str(j["entrypoint"])]
    assert len(fedsim_jobs) == 1, view["jobs"]
    actors = [a for a in view["actors"] if a["job"] == fedsim_jobs[0]]
    assert actors and {a["cls"] for a in actors} == {"ClientAppActor"}, view["actors"]
    assert horizontal.data.params["fl_engine"] == "simulation"
    assert horizontal.data.params["fl_engine_address"] == address
    assert "fl_engine_address" not in by_regime["status_quo"].data.params
    # every cell reached the server, finished, with its metrics and artifacts (stored by the server, not here)
    assert sorted(by_regime) == ["horizontal", "status_quo"] and len(runs) == 2
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.params["config_hash"] for r in runs}) == 2
    assert all(0.0 <= r.data.metrics["ap"] <= 1.0 for r in runs)
    cases = {r.data.metrics["n_cases"] for r in runs}  # one test window, one world: the same cases in both cells
    assert len(cases) == 1 and cases.pop() > 0
    assert {"scores", "metrics", "config"} <= listed
    scores = pd.read_parquet(Path(scores_dir) / "scores.parquet")
    assert set(scores["partner"]) == set(BANKS) and scores["score"].between(0, 1).all()
    stored = list((tmp_path / "server" / "art").rglob("scores.parquet"))
    assert len(stored) == 2, stored
    assert not (grid.parent / "mlflow.db").exists() and not (grid.parent / "mlartifacts").exists()
    # resume: the second run (a private Ray this time) found both cells finished and redid nothing
    assert "0 run(s) executed, 2 reused" in " ".join(second.stderr.split()), second.stderr[-2000:]
