"""`fedsim ui`: MLflow's UI on a tracking store, started light and opened on the experiments.

MLflow 3.17's ``mlflow ui`` starts 4 uvicorn workers plus a huey job runner (MLflow's GenAI jobs: judges,
trace roll-ups) with its own worker processes: 18 processes, ~4 GB and ~2 min to the first answer on 2 busy
cores (tech-notes.md). fedsim needs none of the jobs and one worker is enough for one researcher, so:

* ``--workers 1`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (no job runner);
* every fedsim experiment is tagged ``mlflow.experimentKind = custom_model_development``, the tag MLflow's
  UI reads to show an experiment's runs table (its classic ML view) instead of its GenAI views;
* the printed (and optionally opened) address is the most recent experiment's page, ``/#/experiments/<id>``.

No mlflow import here: the server is MLflow's own command line; the store is read through
:class:`fedsim.tracking.Tracker`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LIGHT_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}


def ui_command(uri: str, port: int, *, workers: int = 1) -> list[str]:
    """The ``mlflow ui`` command line of this venv, on 127.0.0.1 only."""
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    return [
        str(mlflow_bin),
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


@dataclass
class UiServer:
    """A running MLflow UI: its process (leader of its own process group), base and experiments address."""

    process: subprocess.Popen[bytes]
    base_url: str
    url: str
    started: float
    ready_s: float | None = None

    def pids(self) -> list[int]:
        """Every process of the server: the command and all its descendants (from /proc)."""
        return process_tree(self.process.pid)

    def rss_bytes(self) -> int:
        """Resident memory of all its processes together."""
        return sum(_rss(pid) for pid in self.pids())

    def wait_ready(self, timeout_s: float = 300.0) -> float:
        """Seconds from the start until the UI first answered HTTP 200; TimeoutError after ``timeout_s``."""
        deadline = self.started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow ui exited with code {self.process.returncode} before answering")
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        self.ready_s = time.monotonic() - self.started
                        return self.ready_s
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise TimeoutError(f"mlflow ui did not answer within {timeout_s:g} s")

    def stop(self) -> None:
        """End the server and every process it started: its process group, then any descendant that left it."""
        started = self.pids()[1:]
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in started:  # only pids seen as this server's descendants a moment ago
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def launch_ui(uri: str, port: int = 5000, *, workers: int = 1) -> UiServer:
    """Start MLflow's UI light (module notes) on the store ``uri`` and return at once; ``wait_ready`` waits.

    The fedsim experiments are tagged for MLflow's classic view first; ``url`` is the most recent one's page."""
    experiment = _prepare_experiments(uri)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/#/experiments/{experiment}" if experiment else base
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - our own venv's mlflow, arguments built above
        ui_command(uri, port, workers=workers), env={**os.environ, **LIGHT_ENV}, start_new_session=True
    )
    return UiServer(process=process, base_url=base, url=url, started=started)


def serve_ui(uri: str, port: int = 5000, *, open_browser: bool = False) -> None:
    """`fedsim ui`: start the UI, say where it is once it answers, keep it until Ctrl-C, then stop it."""
    server = launch_ui(uri, port)
    print(f"MLflow UI starting on {server.base_url} (store: {uri}); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        took = server.wait_ready()
        print(f"ready after {took:.0f} s: {server.url}", flush=True)
        if open_browser:
            import webbrowser

            webbrowser.open(server.url)
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _prepare_experiments(uri: str) -> str | None:
    """Tag every experiment that has runs for MLflow's classic view; the id of the most recently updated one."""
    from fedsim.tracking import CLASSIC_ML, EXPERIMENT_KIND_TAG, Tracker

    client = Tracker(uri).client
    latest = None
    for exp in client.search_experiments(order_by=["last_update_time DESC"]):
        if exp.name == "Default" and exp.experiment_id == "0":
            continue  # MLflow's own, empty unless someone logged outside fedsim
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML)
        latest = latest or exp.experiment_id
    return latest


def process_tree(root: int) -> list[int]:
    """``root`` and every live descendant, from /proc (Linux); [root] elsewhere."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
