"""Run every ``benchmarks/bench_*.py`` in turn, print what each prints, then a summary (``make bench``).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only world,dp] [--no-record]

``--quick`` is passed on to the benchmarks that offer it (their source declares a ``--quick`` option);
the others run at their defaults. Each benchmark runs in its own process, so one crash or memory peak
does not affect the next. Exit code 1 if any benchmark failed. Benchmarks measure; they never assert.

**Results are kept** (:mod:`record`): the rows a benchmark states (``BENCH-ROW`` lines, :func:`record.emit`),
plus its wall time, are appended to ``benchmarks/results/<benchmark>.csv`` with the time, git commit, quick
or full, and the machine (cores, RAM, load average at its start); ``<benchmark>.png`` is redrawn from the
whole CSV. The summary prints each ratio against the baseline of the same run. ``--no-record`` writes nothing.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import record  # noqa: E402 - beside this script


def benchmarks(only: list[str] | None = None) -> list[Path]:
    """bench_*.py files in this directory, sorted; ``only`` filters by name without the ``bench_`` prefix."""
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        unknown = sorted(set(only) - {p.stem.removeprefix("bench_") for p in found})
        if unknown:
            names = ", ".join(p.stem.removeprefix("bench_") for p in found)
            raise SystemExit(f"--only = {','.join(unknown)}: no such benchmark; allowed: {names}")
        found = [p for p in found if p.stem.removeprefix("bench_") in only]
    return found


def offers_quick(script: Path) -> bool:
    return '"--quick"' in script.read_text()


def run(script: Path, *, quick: bool) -> tuple[int, float, list[record.Row], dict[str, object]]:
    """Run one benchmark with this interpreter, its output going on to ours; (exit code, seconds, its rows, the
    machine's facts at its start). ``BENCH-ROW`` lines are collected, not shown."""
    cmd = [sys.executable, str(script), *(["--quick"] if quick and offers_quick(script) else [])]
    print(f"\n=== {script.name} {' '.join(cmd[2:])}".rstrip(), flush=True)
    facts = record.machine()
    rows: list[record.Row] = []
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, cwd=HERE.parent, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            row = record.parse(line)
            if row is None:
                print(line, end="", flush=True)
            else:
                rows.append(row)
    return proc.returncode, time.perf_counter() - t0, rows, facts


def keep(
    script: Path,
    code: int,
    seconds: float,
    rows: list[record.Row],
    facts: dict[str, object],
    quick: bool,
    folder: Path = record.RESULTS,
    commit: str | None = None,
) -> Path:
    """Append the rows and the wall time to the benchmark's CSV in ``folder`` and redraw its plot; returns the
    CSV's path. ``commit``: the checkout's commit when the benchmarks began (default: now)."""
    name = script.stem.removeprefix("bench_")
    status = "ok" if code == 0 else f"failed (exit {code})"
    commit = commit or record.git_commit(HERE.parent)
    context = record.run_context(commit, quick=quick, status=status, facts=facts)
    wall = record.Row("wall_time", round(seconds, 2), "s", size="quick" if quick and offers_quick(script) else "")
    path = record.append(name, [*rows, wall], context=context, folder=folder)
    try:
        record.plot_history(path)
    except Exception as err:  # noqa: BLE001 - a plot must not lose the CSV's rows
        print(f"  (plot of {path.name} not drawn: {type(err).__name__}: {err})", flush=True)
    return path


def _ratios(rows: list[record.Row]) -> list[str]:
    return [
        f"    {r.measure:38s} {r.ratio:7.2f} x {r.baseline}" + (f"  (goal {r.goal})" if r.goal else "")
        for r in rows
        if not math.isnan(r.ratio)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to benchmarks that offer it")
    ap.add_argument("--only", default=None, help="comma-separated names, e.g. world,dp")
    ap.add_argument("--no-record", action="store_true", help="write nothing under benchmarks/results/")
    args = ap.parse_args()
    results = []
    commit = record.git_commit(HERE.parent)  # the code measured: the checkout as the benchmarks begin
    for script in benchmarks(args.only.split(",") if args.only else None):
        code, seconds, rows, facts = run(script, quick=args.quick)
        kept = None if args.no_record else keep(script, code, seconds, rows, facts, args.quick, commit=commit)
        results.append((script, code, seconds, rows, kept))
    print("\n=== summary")
    for script, code, seconds, rows, kept in results:
        print(f"  {script.name:28s} {'ok' if code == 0 else f'FAILED (exit {code})':18s} {seconds:8.1f} s")
        for line in _ratios(rows):
            print(line)
        if kept is not None:
            print(f"    rows appended to {kept.relative_to(HERE.parent)}")
    sys.exit(1 if any(code for _, code, *_ in results) else 0)


if __name__ == "__main__":
    main()
