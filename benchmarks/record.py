"""Benchmark rows that outlive the run: each benchmark states its measurements with :func:`emit`, ``run_all.py``
appends them to ``benchmarks/results/<benchmark>.csv`` with when, on what commit and on what machine they were
measured, and draws the history of each benchmark (``<benchmark>.png``).

A row is one measurement: ``measure`` (e.g. ``dp_rows.per_epoch``), ``value`` and ``unit``; a measurement that
is compared with a baseline *of the same run* names it (``baseline``, ``baseline_value``) and gets
``ratio = value / baseline_value``, with the ``goal`` it is held to (e.g. ``<= 2``). Ratios within one run are
what can be compared across machines and loads; absolute seconds only on the same machine at a similar load,
which is why every row carries the machine's cores, memory and load average.

A benchmark run on its own prints its rows as ``BENCH-ROW {json}`` lines (nothing is written); ``run_all.py``
reads those lines from its output.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

MARKER = "BENCH-ROW "
"""Prefix of a row on a benchmark's stdout (the JSON of :class:`Row` follows)."""

RESULTS = Path(__file__).resolve().parent / "results"
"""Where ``run_all.py`` keeps the CSV (committed) and PNG (ignored by git) of each benchmark."""


@dataclass(frozen=True)
class Row:
    """One measurement of one benchmark run; ``ratio`` = value ÷ baseline_value (NaN without a baseline)."""

    measure: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float = math.nan
    goal: str = ""
    size: str = ""

    @property
    def ratio(self) -> float:
        if not self.baseline or not self.baseline_value or math.isnan(self.baseline_value):
            return math.nan
        return self.value / self.baseline_value


def emit(
    measure: str,
    value: float,
    unit: str,
    *,
    baseline: str = "",
    baseline_value: float = math.nan,
    goal: str = "",
    size: str = "",
) -> Row:
    """Print one row for ``run_all.py`` (``BENCH-ROW {json}``) and return it.

    ``size``: the benchmark's size in words (e.g. ``rows=20000 batch=512``): rows of different sizes are
    different series in the history."""
    row = Row(measure, float(value), unit, baseline, float(baseline_value), goal, size)
    print(MARKER + json.dumps(asdict(row), allow_nan=True), flush=True)
    return row


def parse(line: str) -> Row | None:
    """The row a ``BENCH-ROW`` line carries, None for any other line."""
    if not line.startswith(MARKER):
        return None
    data = json.loads(line[len(MARKER) :])
    return Row(**{f.name: data[f.name] for f in fields(Row) if f.name in data})


# ------------------------------------------------------------------------------------------------
# What a run writes: the CSV rows (with machine facts) and the plot
# ------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """Facts that change a timing: logical cores, RAM (GiB), load average (1/5/15 min) now, CPU model, Python."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cores": os.cpu_count() or 0,
        "ram_gib": round(_ram_bytes() / 2**30, 1),
        "load_1m": round(load[0], 2),
        "load_5m": round(load[1], 2),
        "load_15m": round(load[2], 2),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
    }


def _ram_bytes() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return math.nan


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(root: Path) -> str:
    """Short commit of ``root``'s checkout (``+dirty``: tracked files differ from it); ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


COLUMNS = (
    "timestamp_utc",
    "git_commit",
    "quick",
    "status",
    "benchmark",
    "measure",
    "value",
    "unit",
    "baseline",
    "baseline_value",
    "ratio",
    "goal",
    "size",
    "cores",
    "ram_gib",
    "load_1m",
    "load_5m",
    "load_15m",
    "cpu_model",
    "python",
)
"""The CSV's columns, in order (one CSV per benchmark, rows appended run after run)."""


def append(
    benchmark: str,
    rows: Sequence[Row],
    *,
    context: Mapping[str, Any],
    folder: Path = RESULTS,
) -> Path:
    """Append ``rows`` to ``folder/<benchmark>.csv`` (header written once) with ``context`` (timestamp, commit,
    quick, status, machine facts) on every row; returns the CSV's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{benchmark}.csv"
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            cells = {**asdict(row), "baseline_value": "" if math.isnan(row.baseline_value) else row.baseline_value}
            writer.writerow({**context, "benchmark": benchmark, **cells, "ratio": _fmt(row.ratio)})
    return path


def _fmt(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.4g}"


def run_context(commit: str, *, quick: bool, status: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The columns every row of one benchmark run shares (``commit``: :func:`git_commit` when the run began)."""
    return {
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": commit,
        "quick": quick,
        "status": status,
        **facts,
    }


def plot_history(csv_path: Path, out: Path | None = None) -> Path | None:
    """One panel per measure (and size): its ratio to the run's baseline where it has one (with the goal's
    threshold as a dashed line), else its value, run after run (x: run time and commit); quick and full apart.
    Returns the PNG's path (``<csv stem>.png`` beside it), None when the CSV has no rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""], dtype={"size": str, "goal": str})
    if table.empty:
        return None
    table[["size", "goal", "baseline"]] = table[["size", "goal", "baseline"]].fillna("")
    runs = sorted(set(zip(table["timestamp_utc"], table["git_commit"].astype(str), strict=True)))
    where = {run: i for i, run in enumerate(runs)}
    table["x"] = [where[r] for r in zip(table["timestamp_utc"], table["git_commit"].astype(str), strict=True)]
    labels = [f"{t[5:16].replace('T', ' ')}\n{c[:7]}" for t, c in runs]
    series = list(table.groupby(["measure", "size"], sort=False))
    cols = min(3, len(series))
    nrows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * max(cols, 2), 2.9 * nrows), squeeze=False)
    for ax, ((measure, size), part) in zip(axes.flat, series, strict=False):
        has_ratio = bool(part["ratio"].notna().any())
        y = part["ratio"] if has_ratio else part["value"]
        for quick, sub in part.groupby("quick"):
            ax.plot(sub["x"], y[sub.index], marker="o", label="quick" if str(quick) == "True" else "full")
        goal = _threshold(str(part["goal"].iloc[-1]))
        if has_ratio and goal is not None:
            ax.axhline(goal, linestyle="--", color="grey", linewidth=1, label=f"goal {part['goal'].iloc[-1]}")
        ax.set_title(f"{measure}" + (f"\n{size}" if size else ""), fontsize=8)
        ax.set_ylabel(f"÷ {part['baseline'].iloc[-1]}" if has_ratio else str(part["unit"].iloc[-1]), fontsize=7)
        ax.set_xticks(range(len(runs)), labels)
        ax.set_xlim(-0.5, len(runs) - 0.5)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(series) :]:
        ax.set_visible(False)
    fig.suptitle(f"{csv_path.stem}: history (ratios within a run; machine and load in the CSV)", fontsize=9)
    fig.tight_layout()
    target = out or csv_path.with_suffix(".png")
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target


def _threshold(goal: str) -> float | None:
    """The number in a goal such as ``<= 1.5`` or ``>= 0.5``; None when there is none."""
    parts = goal.replace("≤", "<=").replace("≥", ">=").split()
    for word in reversed(parts):
        try:
            return float(word)
        except ValueError:
            continue
    return None
