"""The tracking store through the real CLI: checked before any work, created once under a lock, shared safely.

* an unreachable or silent server, an unwritable sqlite path and a file that is no database fail in < 10 s
  with one line, and no world is built;
* processes that create a brand-new sqlite store at the same moment all succeed (MLflow's migrations would
  otherwise race: "table runs already exists", "duplicate column name");
* two ``fedsim run`` of one experiment on one store, started together: both exit 0, every cell ends with
  exactly one finished run, no cell is done twice, and no temporary artifact folder is left behind.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

FEDSIM = str(Path(sys.executable).with_name("fedsim"))
SPEC: dict[str, Any] = {
    "name": "store_test",
    "world": {"preset": "known-answer", "seed": 3, "overrides": {"known_answer": {"entities": 1000, "days": 20}}},
    "split": {"train_days": 12, "gap_days": 0, "test_days": 8},
    "regimes": ["pooled"],
    "coalitions": [["bank_1", "telco"], ["bank_2", "marketplace"]],
    "models": ["logistic"],
    "seeds": [0, 1],
    "training": {"max_epochs": 3},
    "metrics": {"bootstrap": 20},
}


def _fedsim(*args: str, cwd: Path, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [FEDSIM, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "80"}
    )
    return done, time.monotonic() - started


def _one_line_failure(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture()
def experiment(tmp_path: Path) -> Path:
    path = tmp_path / "store_test.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def test_unreachable_server_fails_fast_before_any_world(tmp_path: Path, experiment: Path) -> None:
    done, took = _fedsim("run", str(experiment), "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    _one_line_failure(done, "http://127.0.0.1:9", "not reachable")
    assert took < 10, f"{took:.1f} s"
    assert not (tmp_path / ".fedsim").exists()  # no world, not even the cache folder
    done, took = _fedsim("runs", "store_test", "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path)
    _one_line_failure(done, "not reachable")
    assert took < 10, f"{took:.1f} s"


def test_silent_server_fails_within_the_bounded_retries(tmp_path: Path) -> None:
    # Accepts connections (the kernel completes the handshake into the backlog) and never answers.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        done, took = _fedsim("runs", "store_test", "--tracking-uri", uri, cwd=tmp_path)
    _one_line_failure(done, uri, "not reachable")
    # The bound is 5 s of retries (FEDSIM_TRACKING_DEADLINE) plus start-up; measured 6.7 s on an idle machine.
    # A loaded CI machine adds start-up time, so this asserts "bounded", not a benchmark figure.
    assert took < 30, f"{took:.1f} s"


def test_unwritable_sqlite_path_and_a_non_database_fail_fast(tmp_path: Path, experiment: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed (chmod would not stop root)")
    done, took = _fedsim("run", str(experiment), "--tracking-uri", f"sqlite:///{blocker}/db/mlflow.db", cwd=tmp_path)
    _one_line_failure(done, "cannot write")
    assert took < 10 and not (tmp_path / ".fedsim").exists()
    notdb = tmp_path / "notes.db"
    notdb.write_text("not a database")
    done, took = _fedsim("runs", "store_test", "--tracking-uri", f"sqlite:///{notdb}", cwd=tmp_path)
    _one_line_failure(done, "notes.db")
    assert took < 10 and notdb.read_text() == "not a database"


CREATE_STORE = "import sys; from fedsim.tracking import Tracker; Tracker(sys.argv[1], 'race').experiment_id"


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2))
def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path: Path, trial: int) -> None:
    uri = f"sqlite:///{tmp_path}/fresh.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE_STORE, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for code, err in results:
        assert code == 0, err[-2000:]


def _summary(stderr: str) -> tuple[int, int]:
    found = re.search(r"done: (\d+) run\(s\) executed, (\d+) reused", stderr)
    assert found, stderr[-2000:]
    return int(found[1]), int(found[2])


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))  # the late-commit race itself is staged in test_experiment.py
def test_two_runs_on_one_store_never_delete_each_others_live_runs(tmp_path: Path, experiment: Path, trial: int) -> None:
    from mlflow.entities import ViewType

    from fedsim.tracking import SUPERSEDED_TAG, Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"  # brand new: the two processes also race to create it
    procs = [
        subprocess.Popen(
            [FEDSIM, "run", str(experiment), "--tracking-uri", uri, "--quiet"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[1] for p in procs]
    for proc, err in zip(procs, outputs, strict=True):
        assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    executed = [_summary(err)[0] for err in outputs]
    tracker = Tracker(uri, "store_test")
    cells = len(SPEC["coalitions"]) * len(SPEC["seeds"])
    finished = tracker.runs_table()
    assert len(finished) == cells and finished["config_hash"].is_unique
    assert sum(executed) == cells  # no cell was kept twice: a process that lost a race withdrew its run
    deleted = tracker.client.search_runs([tracker.experiment_id], run_view_type=ViewType.DELETED_ONLY)
    # The only runs ever removed are a process's own just-opened run when the other had opened the same cell
    # first: never one that had done work (no metrics) or that had finished.
    assert all(r.data.tags.get(SUPERSEDED_TAG) == "true" and not r.data.metrics for r in deleted)
    assert not list((tmp_path / ".fedsim" / "artifacts").glob("run-*"))  # uploaded, then removed
    print(f"trial {trial}: executed {executed}, finished {len(finished)}/{cells}, own runs withdrawn {len(deleted)}")
