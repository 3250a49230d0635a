"""`make bench` keeps its results: a benchmark's BENCH-ROW lines become CSV rows (ratio to the run's baseline,
commit, machine facts) appended run after run, and the history plot is drawn from the CSV. A real script is
run through ``benchmarks/run_all.py``'s own functions; nothing is written under benchmarks/results/."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_all() -> Iterator[ModuleType]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run_all as module

        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _bench(folder: Path) -> Path:
    """A benchmark of two rows (one against a baseline of the same run) and one line for people."""
    script = folder / "bench_toy.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(ROOT / "benchmarks")!r})
            from record import emit
            print("toy benchmark: plain 2 ms, private 6 ms")
            emit("plain.per_step", 2.0, "ms", size="rows=10")
            emit("dp.per_step", 6.0, "ms", baseline="plain.per_step", baseline_value=2.0, goal="<= 2", size="rows=10")
            """
        )
    )
    return script


def test_rows_are_appended_with_ratio_commit_and_machine(
    run_all: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _bench(tmp_path)
    results = tmp_path / "results"
    for _ in range(2):  # two runs: one header, rows appended
        code, seconds, rows, facts = run_all.run(script, quick=True)
        path = run_all.keep(script, code, seconds, rows, facts, True, folder=results)
    shown = capsys.readouterr().out
    assert "toy benchmark: plain 2 ms" in shown and "BENCH-ROW" not in shown  # rows collected, not shown
    assert path == results / "toy.csv"
    table = list(csv.DictReader(path.open()))
    assert [r["measure"] for r in table] == ["plain.per_step", "dp.per_step", "wall_time"] * 2
    dp = table[1]
    assert float(dp["ratio"]) == 3.0 and dp["goal"] == "<= 2" and dp["baseline_value"] == "2.0"
    assert table[0]["ratio"] == "" and table[0]["baseline_value"] == ""
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert {r["git_commit"].removesuffix("+dirty") for r in table} == {head.stdout.strip()}
    assert {r["cores"] for r in table} == {str(os.cpu_count())}
    assert all(float(r["ram_gib"]) > 0 and float(r["load_1m"]) >= 0 for r in table)
    assert {r["status"] for r in table} == {"ok"} and {r["benchmark"] for r in table} == {"toy"}
    assert 0 < float(table[2]["value"]) < 60  # the wall time of the toy's process, in seconds
    # the plot: three measures → one row of three panels, 4.2 in × 90 dpi each
    import matplotlib.image

    image = matplotlib.image.imread(path.with_suffix(".png"))
    assert image.shape[1] == round(3 * 4.2 * 90)


def test_a_failed_benchmark_keeps_its_rows_and_says_so(run_all: ModuleType, tmp_path: Path) -> None:
    script = _bench(tmp_path)
    script.write_text(script.read_text() + "\nraise SystemExit(3)\n")
    code, seconds, rows, facts = run_all.run(script, quick=False)
    path = run_all.keep(script, code, seconds, rows, facts, False, folder=tmp_path / "results")
    table = list(csv.DictReader(path.open()))
    assert code == 3 and len(table) == 3
    assert {r["status"] for r in table} == {"failed (exit 3)"} and {r["quick"] for r in table} == {"False"}
