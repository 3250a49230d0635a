"""Run every ``benchmarks/bench_*.py`` in turn, print what each prints, then a summary (``make bench``).

    .venv/bin/python benchmarks/run_all.py [--quick] [--only world,dp]

``--quick`` is passed on to the benchmarks that offer it (their source declares a ``--quick`` option);
the others run at their defaults. Each benchmark runs in its own process, so one crash or memory peak
does not affect the next. Exit code 1 if any benchmark failed. Benchmarks measure; they never assert.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


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


def run(script: Path, *, quick: bool) -> tuple[int, float]:
    """Run one benchmark with this interpreter, its output going straight to ours; (exit code, seconds)."""
    cmd = [sys.executable, str(script), *(["--quick"] if quick and offers_quick(script) else [])]
    print(f"\n=== {script.name} {' '.join(cmd[2:])}".rstrip(), flush=True)
    t0 = time.perf_counter()
    code = subprocess.run(cmd, cwd=HERE.parent, check=False).returncode
    return code, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to benchmarks that offer it")
    ap.add_argument("--only", default=None, help="comma-separated names, e.g. world,dp")
    args = ap.parse_args()
    results = [(s, *run(s, quick=args.quick)) for s in benchmarks(args.only.split(",") if args.only else None)]
    print("\n=== summary")
    for script, code, seconds in results:
        print(f"  {script.name:28s} {'ok' if code == 0 else f'FAILED (exit {code})':18s} {seconds:8.1f} s")
    sys.exit(1 if any(code for _, code, _ in results) else 0)


if __name__ == "__main__":
    main()
