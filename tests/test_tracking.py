"""MLflow adapter on a real sqlite store: params, metrics with CIs, curves, artifacts, statuses, table.

The store is tests/conftest.py's session fixture ``store_uri``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fedsim.experiment import RunSpec, expand, parse_experiment
from fedsim.tracking import (
    MAX_PARAM_VALUE,
    Tracker,
    TrackingError,
    check_metrics,
    param_value,
    resolve_tracking_uri,
    sanitize_key,
)

PARTNERS = ["bank_1", "bank_2", "telco", "marketplace"]


def a_cell(seed: int = 0) -> RunSpec:
    spec = parse_experiment(
        {
            "name": "tracking-test",
            "world": {"preset": "small", "seed": 3},
            "split": {"train_days": 20, "gap_days": 2, "test_days": 10},
            "regimes": ["pooled"],
            "coalitions": [["telco", "bank_1"]],
            "models": ["logistic"],
            "seeds": [seed],
            "metrics": {"bootstrap": 10},
        }
    )
    (cell,) = expand(spec, PARTNERS)
    return cell


# --------------------------------------------------------------------------------------------
# Pure helpers (no store)
# --------------------------------------------------------------------------------------------
def test_tracking_uri_explicit_then_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = resolve_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5055")

    from_env, explicit = resolve_tracking_uri(None), resolve_tracking_uri("sqlite:////x/y.db")

    assert default == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert from_env == "http://127.0.0.1:5055"
    assert explicit == "sqlite:////x/y.db"


@pytest.mark.parametrize(
    ("key", "clean"),
    [("ed_h0_k0.005", "ed_h0_k0.005"), ("a+b|c=d@e", "a_b_c_d_e"), ("../up", "_up"), ("per/round", "per_round")],
)
def test_keys_are_sanitized_to_what_mlflow_accepts(key: str, clean: str) -> None:
    assert sanitize_key(key) == clean


def test_long_param_values_are_cut_but_stay_distinct() -> None:
    long_a, long_b = "x" * 7000, "x" * 6999 + "y"

    a, b = param_value(long_a), param_value(long_b)

    assert len(a) == len(b) == MAX_PARAM_VALUE
    assert a != b
    assert param_value(float("inf")) == "inf" and param_value([0.5, 1.0]) == "0.5,1"


@pytest.mark.parametrize(
    ("metrics", "complaint"),
    [
        ({"ap_lo": 0.1}, "needs its estimate 'ap'"),
        ({"ap": 0.3, "ap_lo": 0.5, "ap_hi": 0.2}, "reversed"),
        ({"ap": "high"}, "allowed: a number"),
        ({"ap": True}, "allowed: a number"),
    ],
)
def test_bad_metrics_are_refused(metrics: dict, complaint: str) -> None:
    with pytest.raises(TrackingError, match=complaint):
        check_metrics(metrics)


def test_nan_metric_is_kept_as_undefined() -> None:
    values = check_metrics({"ap": float("nan"), "ap_lo": float("nan"), "ap_hi": 0.3})

    assert values["ap"] != values["ap"]  # NaN


# --------------------------------------------------------------------------------------------
# A real store
# --------------------------------------------------------------------------------------------
def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@pytest.mark.xdist_group("mlflow")
def test_finished_run_round_trip(store_uri: str, tmp_path: Path) -> None:
    tracker = Tracker(store_uri, "round-trip")
    cell = a_cell()
    scores = tmp_path / "scores.csv"
    scores.write_text("partner,entity_id,day,score\nbank_1,1,3,0.25\n")

    with tracker.start_run(cell, world_hash="w123", tags={"purpose": "test"}) as run_id:
        tracker.log_params({"delta": 1e-5, "sigma": 1.1})
        tracker.log_metrics({"ed_h0_k0.005": 0.4, "ed_h0_k0.005_lo": 0.3, "ed_h0_k0.005_hi": 0.5})
        tracker.log_step_metrics("train_loss", [0.9, 0.7, 0.6])
        tracker.log_artifact(scores, name="scores")
    run = tracker.client.get_run(run_id)
    curve = tracker.client.get_metric_history(run_id, "train_loss")
    stored = tracker.download_artifact(run_id, "scores/scores.csv", tmp_path / "dl")
    table = tracker.runs_table()

    params = run.data.params
    assert (params["regime"], params["coalition"], params["model"]) == ("pooled", "bank_1+telco", "logistic")
    assert (params["seed"], params["epsilon"], params["world_hash"]) == ("0", "inf", "w123")
    assert params["config_hash"] == cell.config_hash
    assert params["git_commit"].split("+")[0] == _git_head()
    assert params["delta"] == "1e-05" and params["split.train_days"] == "20"
    assert run.info.status == "FINISHED" and run.info.run_name == "pooled|bank_1+telco|logistic|seed0|eps=inf"
    assert run.data.tags["purpose"] == "test"
    assert [(m.step, m.value) for m in curve] == [(0, 0.9), (1, 0.7), (2, 0.6)]
    assert stored.read_text() == scores.read_text()
    assert run.info.artifact_uri.startswith(Path(store_uri.removeprefix("sqlite:///")).parent.as_uri())
    assert tracker.find_runs(cell.config_hash) == [(run_id, "FINISHED")]
    assert list(table["run_id"]) == [run_id]
    assert table.loc[0, "ed_h0_k0.005_lo"] == pytest.approx(0.3)


@pytest.mark.xdist_group("mlflow")
def test_exception_marks_run_failed_and_propagates(store_uri: str) -> None:
    tracker = Tracker(store_uri, "failed-run")
    cell = a_cell()

    with pytest.raises(KeyError, match="missing column"), tracker.start_run(cell) as run_id:
        raise KeyError("missing column")

    assert tracker.find_runs(cell.config_hash) == [(run_id, "FAILED")]
    assert tracker.runs_table().empty  # only finished runs are listed
    with pytest.raises(TrackingError, match="no active run"):
        tracker.log_metrics({"ap": 0.1})


@pytest.mark.xdist_group("mlflow")
def test_deleted_run_is_no_longer_found(store_uri: str) -> None:
    tracker = Tracker(store_uri, "delete-run")
    keep, drop = a_cell(seed=0), a_cell(seed=1)
    with tracker.start_run(keep):
        pass
    with tracker.start_run(drop) as dropped:
        pass

    tracker.delete_run(dropped)

    assert tracker.find_runs(drop.config_hash) == []
    assert len(tracker.find_runs(keep.config_hash)) == 1
    assert list(tracker.runs_table()["seed"]) == ["0"]
    assert tracker.client.get_run(dropped).data.tags["fedsim.superseded"] == "true"


@pytest.mark.xdist_group("mlflow")
def test_runs_table_of_unknown_experiment_names_it(store_uri: str) -> None:
    tracker = Tracker(store_uri, "known-one")
    _ = tracker.experiment_id

    with pytest.raises(TrackingError, match="experiment 'no-such-study'.*known: .*known-one"):
        tracker.runs_table("no-such-study")


@pytest.mark.xdist_group("mlflow")
def test_runs_do_not_nest(store_uri: str) -> None:
    tracker = Tracker(store_uri, "no-nesting")

    with (
        tracker.start_run(a_cell(seed=0)) as outer,
        pytest.raises(TrackingError, match="still active"),
        tracker.start_run(a_cell(seed=1)),
    ):
        pass

    assert tracker.find_runs(a_cell(seed=0).config_hash) == [(outer, "FINISHED")]
    assert tracker.find_runs(a_cell(seed=1).config_hash) == []


# --------------------------------------------------------------------------------------------
# Leases: which unfinished runs another process is still working on
# --------------------------------------------------------------------------------------------
def _orphan(tracker: Tracker, cell: RunSpec, owner: str, heartbeat: float) -> str:
    from fedsim.tracking import CONFIG_HASH_TAG, HEARTBEAT_TAG, OWNER_TAG

    tags = {CONFIG_HASH_TAG: cell.config_hash, OWNER_TAG: owner, HEARTBEAT_TAG: f"{heartbeat:.3f}"}
    return tracker.client.create_run(tracker.experiment_id, run_name=cell.run_name, tags=tags).info.run_id


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid  # reaped: no process has this pid now (the kernel does not reuse it at once)


@pytest.mark.xdist_group("mlflow")
def test_a_run_is_live_while_its_owner_lives_or_its_heartbeat_is_fresh(store_uri: str) -> None:
    import socket
    import time

    from fedsim.tracking import owner_id

    tracker = Tracker(store_uri, "leases")
    host = socket.gethostname()
    now = time.time()
    cases = {
        "this process": (owner_id(), now - 10_000),  # alive on this host: live whatever the heartbeat
        "dead pid here": (f"{host}|{_dead_pid()}|1", now),  # crashed on this host: not live, even just now
        "other host, fresh": ("elsewhere|1|1", now - 5),
        "other host, stale": ("elsewhere|1|1", now - 10_000),
    }
    live = {}
    for seed, (name, (owner, beat)) in enumerate(cases.items()):
        cell = a_cell(seed=seed)
        run_id = _orphan(tracker, cell, owner, beat)
        (lease,) = tracker.run_leases(cell.config_hash)
        live[name] = lease.live and lease.run_id == run_id
    legacy = a_cell(seed=9)
    tracker.client.create_run(tracker.experiment_id, tags={"fedsim.config_hash": legacy.config_hash})

    assert live == {"this process": True, "dead pid here": False, "other host, fresh": True, "other host, stale": False}
    assert [lease.live for lease in tracker.run_leases(legacy.config_hash)] == [False]  # no owner: a crash


@pytest.mark.xdist_group("mlflow")
def test_the_first_of_two_live_runs_holds_the_lease(store_uri: str) -> None:
    import time

    tracker = Tracker(store_uri, "lease-race")
    cell = a_cell()
    first = _orphan(tracker, cell, "elsewhere|1|1", time.time())
    with tracker.start_run(cell) as second:
        holds = tracker.holds_lease(cell.config_hash, second), tracker.holds_lease(cell.config_hash, first)
    assert holds == (False, True)


@pytest.mark.xdist_group("mlflow")
def test_heartbeat_is_refreshed_while_the_run_is_open(store_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from fedsim.tracking import HEARTBEAT_TAG

    monkeypatch.setenv("FEDSIM_HEARTBEAT_S", "0.2")
    tracker = Tracker(store_uri, "heartbeat")
    with tracker.start_run(a_cell()) as run_id:
        first = float(tracker.client.get_run(run_id).data.tags[HEARTBEAT_TAG])
        time.sleep(1.0)
        later = float(tracker.client.get_run(run_id).data.tags[HEARTBEAT_TAG])
    assert later - first >= 0.4


@pytest.mark.xdist_group("mlflow")
def test_grid_removes_the_temporary_artifact_folder_after_upload(store_uri: str, tmp_path: Path) -> None:
    from fedsim.experiment import RunResult, run_grid

    spec = parse_experiment(
        {
            "name": "cleanup",
            "world": {"preset": "small", "seed": 3},
            "split": {"train_days": 20, "gap_days": 2, "test_days": 10},
            "regimes": ["pooled"],
            "coalitions": [["telco", "bank_1"]],
            "models": ["logistic"],
            "seeds": [0],
        }
    )
    cells = expand(spec, PARTNERS)
    folder = tmp_path / "run-abc"
    keep = tmp_path / "mine" / "notes.txt"  # an artifact outside a run-* folder is the caller's: kept

    def execute(cell: RunSpec) -> RunResult:
        folder.mkdir()
        (folder / "scores.csv").write_text("entity,score\n1,0.5\n")
        keep.parent.mkdir(exist_ok=True)
        keep.write_text("mine")
        return RunResult(artifacts={"scores": folder / "scores.csv", "notes": keep})

    tracker = Tracker(store_uri, "cleanup")
    summary = run_grid(spec, cells, execute, tracker, progress=False)
    stored = tracker.download_artifact(summary.run_ids[0], "scores/scores.csv", tmp_path / "dl")

    assert not folder.exists() and keep.read_text() == "mine"
    assert stored.read_text() == "entity,score\n1,0.5\n"
