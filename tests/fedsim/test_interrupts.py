"""Ctrl-C and SIGTERM during a real `fedsim run`: exit 130 within 10 s, one line, the run KILLED, no stray process.

Each test starts the real CLI in its own session on a tiny known-answer world, waits until the cell is really
running (a RUNNING run in the store, and for the Flower cell the Ray processes it started), sends the signal to
the `fedsim` process only (not its group, so Ray's processes must be ended by fedsim itself), then checks the
exit code, the time to exit, the run's status in the store and that every process the run started is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedsim.tracking import Tracker

FEDSIM = str(Path(sys.executable).with_name("fedsim"))
WORLD = {
    "preset": "known-answer",
    "seed": 3,
    "overrides": {"known_answer": {"entities": 1500, "days": 20, "placebo": False}},
}
BASE = {
    "world": WORLD,
    "split": {"train_days": 12, "gap_days": 0, "test_days": 8},
    "models": ["logistic"],
    "seeds": [0],
    "metrics": {"bootstrap": 20},
}
# Long enough that the signal lands mid-cell: many rounds / many epochs with no early stop.
FLOWER = {
    **BASE,
    "name": "interrupt_flower",
    "regimes": ["horizontal"],
    "coalitions": [["bank_1", "bank_2", "bank_3"]],
    "federation": {"rounds": 1000, "engine": "simulation"},
}
DEPLOYMENT = {**FLOWER, "name": "interrupt_deployment", "federation": {"rounds": 1000, "engine": "deployment"}}
CENTRAL = {
    **BASE,
    "name": "interrupt_central",
    "regimes": ["pooled"],
    "coalitions": [["bank_1", "bank_2", "bank_3", "telco", "marketplace"]],
    "training": {"max_epochs": 10000, "patience": 10000, "batch_size": 8},
}


def _descendants(root: int) -> set[int]:
    """Every live process whose parent chain reaches ``root`` or that shares its session."""
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z":  # a zombie is gone, only not yet reaped
            continue
        parents[int(entry.name)], sessions[int(entry.name)] = int(fields[1]), int(fields[3])
    found = {pid for pid, sid in sessions.items() if sid == root and pid != root}
    changed = True
    while changed:
        new = {pid for pid, ppid in parents.items() if (ppid == root or ppid in found) and pid not in found}
        found |= new
        changed = bool(new)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _flower_children(pid: int) -> set[int]:
    """Ray (simulation) or SuperLink/SuperNode (deployment) processes started by ``pid``."""
    return {child for child in _descendants(pid) if any(w in _cmdline(child) for w in ("ray", "flower-", "flwr"))}


def _running_run(uri: str, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        tracker = Tracker(uri, name)
        runs = tracker.client.search_runs([tracker.experiment_id])
    except MlflowException:
        return None
    running = [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    return running[0] if running else None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "sig"),
    [(FLOWER, signal.SIGINT), (DEPLOYMENT, signal.SIGTERM), (CENTRAL, signal.SIGINT), (CENTRAL, signal.SIGTERM)],
    ids=["flower-sigint", "deployment-sigterm", "central-sigint", "central-sigterm"],
)
def test_signal_mid_cell_kills_the_run_and_exits_130(tmp_path: Path, spec: dict[str, Any], sig: int) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    exp = tmp_path / "exp.yaml"
    if spec is DEPLOYMENT:  # the deployment engine exports partner folders: its world needs a world secret
        (tmp_path / "world.secret").write_bytes(os.urandom(32))
        spec = {**spec, "world": {**spec["world"], "secret_file": "world.secret"}}
    exp.write_text(yaml.safe_dump(spec))
    Tracker(uri, spec["name"]).client  # noqa: B018 - create the store first, so the poller never races the child
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [FEDSIM, "run", str(exp), "--tracking-uri", uri, "--quiet"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 400
            run_id = None
            while time.monotonic() < deadline and proc.poll() is None:
                run_id = run_id or _running_run(uri, spec["name"])
                ready = run_id is not None and (spec is CENTRAL or _flower_children(proc.pid))
                if ready:
                    break
                time.sleep(0.5)
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert run_id is not None, "the cell never started"
            time.sleep(3 if spec is CENTRAL else 8)  # well inside the cell: Flower rounds / training epochs
            children, ray = _descendants(proc.pid), _flower_children(proc.pid)
            kinds = sorted({" ".join(Path(w).name for w in _cmdline(pid).split()[:2]) for pid in ray})
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            sent = time.monotonic()
            os.kill(proc.pid, sig)
            code = proc.wait(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text(errors="replace")
    assert code == 130, text[-3000:]
    assert took <= 10, f"exit took {took:.1f} s"
    assert "interrupted" in text and "Traceback" not in text, text[-3000:]
    assert Tracker(uri, spec["name"]).client.get_run(run_id).info.status == "KILLED"
    names = {pid: _cmdline(pid)[:80] for pid in children}
    stray = _stray(children, wait_s=10 - took)  # gone by 10 s after the signal
    kind = signal.Signals(sig).name
    print(f"{spec['name']} {kind}: exit {code} in {took:.2f} s; {len(children)} children ({len(ray)} Ray/Flower)")
    print(f"  {kinds}; still alive at 10 s: {[names[p] for p in stray]}")
    assert not stray, f"processes of the run still alive: {[names[p] for p in stray]}"


def _stray(children: set[int], *, wait_s: float) -> set[int]:
    deadline = time.monotonic() + max(wait_s, 0.5)
    while True:
        alive = {pid for pid in children if _alive(pid)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
