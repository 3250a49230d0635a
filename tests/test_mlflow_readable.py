"""MLflow made readable (issue 12), on a real sqlite store and a tiny experiment run twice by the runner.

* each run logs a headline (≤ 30 MLflow metrics, the primary with its CI) and its full metric set as
  ``metrics/metrics.parquet``, whose parsed parts match the names;
* ``runs_table`` gives the same row for a cell logged the old way (every metric flat) and the new way;
* one summary run per experiment after two `run_and_summarise` calls (what `fedsim run` should run), carrying
  the primary contrast as `fedsim compare` computes it, absent from ``runs_table`` and the leases;
* the experiment's note is the file's description; figures are real PNGs; run names say what differs.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from fedsim.run_metrics import MetricLayout, flat_metrics, headline_names, metric_table, split_name

pytestmark = pytest.mark.xdist_group("mlflow")

DESCRIPTION = "Pooling a bank with a telco against each alone, on a tiny known-answer world (readability test)."
SPEC: dict[str, Any] = {
    "name": "readable",
    "description": DESCRIPTION,
    "world": {"preset": "known-answer", "seed": 3, "overrides": {"known_answer": {"entities": 1000, "days": 20}}},
    "split": {"train_days": 12, "gap_days": 0, "test_days": 8},
    "regimes": ["siloed", "pooled"],
    "coalitions": [["bank_1", "telco"]],
    "models": ["logistic"],
    "seeds": [0],
    "training": {"max_epochs": 3},
    "metrics": {"bootstrap": 20},
    "primary": {"metric": "ed_h0", "contrast": ["pooled", "siloed"], "min_seeds": 1},
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The experiment run twice (the second reuses every cell and rewrites the summary run)."""
    from fedsim.experiment_summary import run_and_summarise
    from fedsim.tracking import Tracker

    root = tmp_path_factory.mktemp("readable")
    exp = root / "readable.yaml"
    exp.write_text(yaml.safe_dump(SPEC))
    uri = f"sqlite:///{root}/mlflow.db"
    first = run_and_summarise(exp, tracking_uri=uri, workdir=root / ".fedsim", progress=False)
    tracker = Tracker(uri, "readable")
    first_summary = tracker.summary_runs()
    second = run_and_summarise(exp, tracking_uri=uri, workdir=root / ".fedsim", progress=False)
    assert first.executed == 3 and second.reused == 3
    return {"root": root, "exp": exp, "uri": uri, "tracker": tracker, "first_summary": first_summary}


def _full_table(tracker: Any, run_id: str, dst: Path) -> pd.DataFrame:
    return pd.read_parquet(tracker.download_artifact(run_id, "metrics/metrics.parquet", dst))


def test_headline_metrics_at_top_level_and_every_metric_in_the_tidy_artifact(store: dict[str, Any]) -> None:
    tracker, root = store["tracker"], store["root"]
    runs = tracker.runs_table()
    assert len(runs) == 3
    for run_id in runs["run_id"]:
        logged = tracker.client.get_run(run_id).data.metrics
        assert 10 <= len(logged) <= 30, sorted(logged)
        assert {"ed_h0_cal1", "ed_h0_cal1_lo", "ed_h0_cal1_hi", "ap", "roc_auc"} <= set(logged)
        assert not any(name.startswith("known_answer.") for name in logged)  # fraud type "all" only
        table = _full_table(tracker, run_id, root / "dl" / run_id)
        flat = flat_metrics(table)
        assert len(flat) > 1000  # the full set: every fraud type, capacity, horizon, latency
        assert {k: flat[k] for k in logged} == logged  # the headline is the same numbers as the table
        row = table.set_index("name").loc["known_answer.ed_h24_cal0.5"]
        assert (row["fraud_type"], row["metric"], row["h"], row["capacity"], row["capacity_tag"]) == (
            "known_answer",
            "ed",
            24.0,
            0.5,
            "cal",
        )
        assert row["has_ci"] and row["lo"] <= row["value"] <= row["hi"]
    partner_rows = table[table["partner"].notna()]
    assert set(partner_rows["partner"]) == {"bank_1", "telco"} and "train_rows" in set(partner_rows["metric"])


def test_split_name_and_headline_on_known_names() -> None:
    parts = split_name(
        "helpdesk.prevented_eur_per_1k_alerts_d4_r0.7_cal0.25", fraud_types=["helpdesk"], partners=["bank_1"]
    )
    assert parts == {
        "fraud_type": "helpdesk",
        "partner": None,
        "metric": "prevented_eur_per_1k_alerts",
        "h": None,
        "delta_h": 4.0,
        "rho": 0.7,
        "capacity": 0.25,
        "capacity_tag": "cal",
    }
    assert split_name("lead_time_h_median_k0.005")["metric"] == "lead_time_h_median"
    names = ["ed_h0_cal2", "ed_h0_cal2_lo", "ed_h0_cal2_hi", "ap", "ap_lo", "ap_hi", "dp_epsilon_person_max", "x"]
    assert headline_names(names, primary="ed_h0", scale=2) == tuple(names[:-1])


def test_runs_table_is_the_same_for_a_cell_logged_flat_and_with_the_tidy_artifact(store: dict[str, Any]) -> None:
    from fedsim.experiment import expand, load_experiment
    from fedsim.runner import partners_of
    from fedsim.tracking import Tracker

    tracker, root = store["tracker"], store["root"]
    run_id = tracker.runs_table()["run_id"].iloc[-1]
    metrics = flat_metrics(_full_table(tracker, run_id, root / "eq"))
    # Edge cases a real run may hold: ±inf (MLflow stores ±max float), NaN, a CI bound logged alone.
    metrics.update({"edge_inf": math.inf, "edge_neg_inf": -math.inf, "edge_nan": math.nan, "edge_lone": 1.0})
    metrics["edge_lone_lo"] = 0.5
    spec = load_experiment(store["exp"])
    cell = expand(spec, partners_of(spec))[-1]
    layout = MetricLayout(headline_names(metrics), fraud_types=("known_answer",), partners=("bank_1", "telco"))
    rows = []
    for name, how in (("logged_flat", None), ("logged_tidy", layout)):
        other = Tracker(store["uri"], name)
        with other.start_run(cell, world_hash="w"):
            other.log_params({"extra": "same"})
            if how is None:
                other.log_metrics(metrics)
            else:
                other.log_metrics(metrics, layout=how)
        rows.append(other.runs_table())
    flat_row, tidy_row = (r.drop(columns=["run_id", "start_time"]) for r in rows)
    assert len(tracker.client.get_run(Tracker(store["uri"], "logged_tidy").runs_table()["run_id"][0]).data.metrics) < 30
    assert list(flat_row.columns) == list(tidy_row.columns)
    pd.testing.assert_frame_equal(flat_row, tidy_row)
    assert tidy_row["edge_inf"][0] == 1.7976931348623157e308 and math.isnan(tidy_row["edge_nan"][0])


def test_one_summary_run_carries_the_primary_contrast_and_no_grid_logic_sees_it(store: dict[str, Any]) -> None:
    from fedsim.contrast import primary_contrast
    from fedsim.experiment_summary import attach_to_summary

    tracker, root = store["tracker"], store["root"]
    summaries = tracker.summary_runs()
    assert len(summaries) == 1 and store["first_summary"] and summaries != store["first_summary"]  # replaced
    run = tracker.client.get_run(summaries[0])
    assert run.info.status == "FINISHED" and run.info.run_name == "summary · readable"
    table = primary_contrast(store["exp"], tracking_uri=store["uri"], workdir=root / ".fedsim")
    expected = table[(table["fraud_type"] == "all") & (table["metric"] == "ed_h0")].iloc[0]
    got = run.data.metrics
    assert (got["ed_h0_diff"], got["ed_h0_diff_lo"], got["ed_h0_diff_hi"]) == pytest.approx(
        (expected["diff"], expected["lo"], expected["hi"])
    )
    payload = json.loads(tracker.download_artifact(summaries[0], "contrast/contrast.json", root / "s").read_text())
    assert {r["metric"] for r in payload["contrast"]} >= {"ed_h0", "ap"}
    # Not a grid run: not in the runs table, not among any cell's leases.
    runs = tracker.runs_table()
    assert summaries[0] not in set(runs["run_id"]) and len(runs) == 3
    for config_hash in runs["config_hash"]:
        assert [rid for rid, _ in tracker.find_runs(config_hash)] != summaries
    # Another command adds its files (e.g. the report) to it.
    report = root / "report.html"
    report.write_text("<html>report</html>")
    assert attach_to_summary("readable", store["uri"], [report]) == summaries[0]
    assert [a.path for a in tracker.client.list_artifacts(summaries[0], "reports")] == ["reports/report.html"]


def test_experiment_note_is_its_description_and_run_names_say_what_differs(store: dict[str, Any]) -> None:
    from fedsim.experiment import expand, load_experiment
    from fedsim.experiment.grid import short_run_names
    from fedsim.runner import partners_of

    tracker = store["tracker"]
    exp = tracker.client.get_experiment_by_name("readable")
    assert exp.tags["mlflow.note.content"] == DESCRIPTION
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert sorted(tracker.runs_table()["run_name"]) == ["pooled · b1+t", "siloed · b1", "siloed · t"]
    demo = load_experiment(Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml")
    cells = expand(demo, partners_of(demo))
    names = short_run_names(cells, partners=partners_of(demo))
    assert len(set(names.values())) == len(cells)  # still one name per cell
    by_hash = {c.config_hash: c for c in cells}
    assert all(len(n) < len(by_hash[h].run_name) for h, n in names.items())
    assert names[cells[0].config_hash] == "status_quo · logistic · s0"


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG, path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_each_run_logs_its_figures(store: dict[str, Any], tmp_path: Path) -> None:
    from fedsim.run_figures import write_run_figures

    tracker = store["tracker"]
    for run_id in tracker.runs_table()["run_id"]:
        figures = {Path(a.path).name for a in tracker.client.list_artifacts(run_id, "figures")}
        alerts = pd.read_parquet(
            tracker.download_artifact(run_id, "case_alerts/case_alerts.parquet", tmp_path / run_id)
        )
        alerted = alerts[(alerts["k"] == 1.0) & alerts["lead_time_h"].notna()]
        assert figures == {"ed_curve.png"} | ({"lead_time.png"} if len(alerted) else set())
        for name in figures:
            png = tracker.download_artifact(run_id, f"figures/{name}", tmp_path / run_id)
            assert _png_size(png) == (500, 320) and png.stat().st_size > 8_000
    # A federated run's per-round curves (here given directly: a Flower run is too slow for this test).
    table = pd.DataFrame({"metric": ["ed"] * 2, "fraud_type": "all", "k": 1.0, "h": [0.0, 24.0]})
    table = table.assign(value=[0.2, 0.1], lo=[0.1, 0.05], hi=[0.3, 0.2])
    written = write_run_figures(tmp_path / "f", table, pd.DataFrame(), step_metrics={"loss.bank": [0.7, 0.5, 0.4]})
    assert [p.name for p in written] == ["ed_curve.png", "rounds.png"] and _png_size(written[1]) == (500, 320)


def test_metric_table_round_trips_exactly() -> None:
    metrics = {"a": 1.0, "a_lo": 0.5, "a_hi": 2.0, "b": math.nan, "c_lo": 3.0, "c": 4.0, "train_rows.telco": 7.0}
    table = metric_table(metrics, MetricLayout((), partners=("telco",)))
    assert list(table["name"]) == ["a", "b", "c_lo", "c", "train_rows.telco"]  # a bound logged alone: its own row
    assert list(table["has_ci"]) == [True, False, False, False, False] and table["partner"].iloc[-1] == "telco"
    back = flat_metrics(table)
    assert back.keys() == metrics.keys() and all(
        (math.isnan(v) and math.isnan(back[k])) or back[k] == v for k, v in metrics.items()
    )


@pytest.mark.slow  # ~7 s: MLflow's server start
def test_ui_starts_light_and_opens_on_the_latest_experiment(store: dict[str, Any]) -> None:
    import socket
    import urllib.request

    from fedsim.mlflow_ui import launch_ui

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = launch_ui(store["uri"], port)
    try:
        assert server.wait_ready(120) < 120
        with urllib.request.urlopen(server.base_url + "/", timeout=30) as page:
            assert page.status == 200
        pids = server.pids()
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids]
        assert len(pids) <= 3 and not any(b"huey" in c for c in commands), commands  # no GenAI job runner
        experiments = [e for e in store["tracker"].client.search_experiments() if e.name != "Default"]
        latest = max(experiments, key=lambda e: e.last_update_time)  # the one a researcher just ran
        assert server.url == f"{server.base_url}/#/experiments/{latest.experiment_id}"
        assert all(e.tags.get("mlflow.experimentKind") == "custom_model_development" for e in experiments)
    finally:
        server.stop()
    assert server.process.poll() is not None and not any(Path(f"/proc/{pid}").exists() for pid in pids[1:])
