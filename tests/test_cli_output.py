"""Readable output of the `fedsim` CLI (issue 13): whole labels at 80 columns and in pipes, stdout/stderr split,
--quiet, --version, argument help, --format, one way to name an experiment, metric headers with h, Δ and ρ."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from fedsim.cli import experiment_file, experiment_name_of
from fedsim.errors import FedsimError
from fedsim.sheet import Sheet, natural_width, print_sheet
from fedsim.summary import metric_label

FEDSIM = str(Path(sys.executable).with_name("fedsim"))
LONG = "helpdesk_impersonation_with_a_long_name"


def _fedsim(*args: str, cwd: Path, columns: int = 80, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """The real console script; stdout is a pipe, as in `fedsim runs … | cat`."""
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([FEDSIM, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _sheet() -> Sheet:
    sheet = Sheet(title="t", columns=["regime", "coalition", "€ prevented (Δ = 0 h, ρ = 1)", "AP"], keys=2)
    sheet.add_row("status_quo", "bank_1+bank_2+bank_3+marketplace+telco", "€1,234 [-40, 2,345]", "0.431 [0.353, 0.510]")
    sheet.add_row(LONG, "bank_1", "€0 [0, 0]", "-0.041 [-0.123, 0.044]")
    return sheet


@pytest.mark.parametrize("width", [40, 80, 200])
def test_a_sheet_never_cuts_a_label_or_a_ci(width: int) -> None:
    buf = io.StringIO()
    print_sheet(_sheet(), console=Console(file=buf, width=width))
    text = buf.getvalue()
    lines = text.splitlines()
    for cell in [c for row in _sheet().rows for c in row] + _sheet().columns:
        assert any(cell in line for line in lines), (width, cell, text)  # whole, on one line
    assert "…" not in text
    if natural_width(_sheet()) > width:
        assert "┃" not in text  # fell back to row blocks rather than squeezing the table


def test_csv_format_has_the_header_and_plain_cells(capsys: pytest.CaptureFixture[str]) -> None:
    print_sheet(_sheet(), "csv")
    rows = list(csv.reader(line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")))
    assert rows[0] == _sheet().columns and rows[2][0] == LONG and rows[1][3] == "0.431 [0.353, 0.510]"


def test_metric_headers_state_horizon_latency_and_interdiction() -> None:
    assert metric_label("prevented_eur_d0_r1.0_cal1") == "€ prevented (Δ = 0 h, ρ = 1)"
    assert metric_label("prevented_eur_d4_r0.7") == "€ prevented (Δ = 4 h, ρ = 0.7)"
    assert metric_label("ed_h0_cal0.5") == "caught before money left (h = 0 h)"
    assert metric_label("ap") == "AP"


def test_version_and_argument_help(tmp_path: Path) -> None:
    from importlib.metadata import version

    out = _fedsim("--version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"fedsim {version('fedsim')}"
    for command, text in [
        (["runs"], "the `name:` its runs are stored under"),
        (["world", "describe"], "world directory"),
        (["deploy", "write-app"], "experiment file with a horizontal regime"),
    ]:
        shown = _fedsim(*command, "--help", cwd=tmp_path, columns=200).stdout
        assert text in shown, (command, shown)


def test_an_experiment_is_named_by_file_or_unambiguous_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "experiments").mkdir()
    spec = tmp_path / "experiments" / "mine.yaml"
    spec.write_text(yaml.safe_dump({"name": "study_x"}))
    monkeypatch.chdir(tmp_path)
    assert experiment_file(str(spec)) == spec
    assert experiment_file("study_x") == spec.resolve()
    assert experiment_file("mine") == spec.resolve()
    assert experiment_name_of(str(spec)) == "study_x" and experiment_name_of("study_x") == "study_x"
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"name": "study_x"}))
    with pytest.raises(FedsimError, match="ambiguous"):
        experiment_file("study_x")
    with pytest.raises(FedsimError, match="not found"):
        experiment_file("nowhere/x.yaml")
    with pytest.raises(FedsimError, match="directory"):
        experiment_file("experiments")


def test_bad_format_exits_2_with_one_line(tmp_path: Path) -> None:
    out = _fedsim("runs", "x", "--format", "xml", cwd=tmp_path)
    assert out.returncode == 2 and "allowed: table, csv, json" in out.stderr and "Traceback" not in out.stderr


SPEC = {
    "name": "cli_output_test",
    "world": {"preset": "small", "seed": 3, "overrides": {"persons": 2500, "days": 60}},
    "split": {"train_days": 35, "gap_days": 3, "test_days": 22},
    "regimes": ["status_quo", "watchlist", "pooled"],
    "coalitions": "all",
    "models": ["logistic"],
    "seeds": [0],
    "training": {"epochs": 2},
    "metrics": {"bootstrap": 50},
    "primary": {"metric": "ed_h0", "contrast": ["pooled", "status_quo"], "min_seeds": 1},
}


@pytest.mark.slow
def test_runs_piped_at_80_columns_shows_whole_labels_and_logs_stay_off_stdout(tmp_path: Path) -> None:
    exp = tmp_path / "study" / "cli_output_test.yaml"
    exp.parent.mkdir()
    exp.write_text(yaml.safe_dump(SPEC))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _fedsim("run", str(exp), "--tracking-uri", uri, "--quiet", cwd=elsewhere)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "" and " INFO " not in done.stderr and "INFO" not in done.stderr
    assert (elsewhere / ".fedsim" / "worlds").is_dir()  # the workdir is relative to the cwd

    data = json.loads(_fedsim("runs", str(exp), "--tracking-uri", uri, "--format", "json", cwd=elsewhere).stdout)
    over = data["over_seeds"]
    shown = _fedsim("runs", "cli_output_test", "--tracking-uri", uri, cwd=elsewhere)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "…" not in text and "INFO" not in text
    for r in over:
        assert r["regime"] in text and str(r["coalition"]) in text
        ap = f"{r['ap']:.3f} [{r['ap_lo']:.3f}, {r['ap_hi']:.3f}]"
        assert ap in text, (ap, text)
    assert "€ prevented (Δ = 0 h, ρ = 1)" in text
    assert max(len(line) for line in text.splitlines() if "┃" in line or "│" in line) <= 80 if "│" in text else True

    compared = _fedsim("compare", str(exp), "--tracking-uri", uri, cwd=elsewhere)
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert "…" not in compared.stdout and "€ prevented (Δ = 0 h, ρ = 1)" in compared.stdout
