"""Running a grid resumably: every cell the tracker does not already hold as a finished run.

It does not build worlds, train models or talk to MLflow itself: the caller hands in an
``execute(cell) -> RunResult`` function and a tracker (:class:`fedsim.tracking.Tracker` or anything
with the same methods, :class:`GridTracker`).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fedsim.experiment.grid import RunSpec, short_run_names
from fedsim.experiment.spec import ExperimentSpec
from fedsim.run_metrics import MetricLayout

logger = logging.getLogger("fedsim.experiment")


@dataclass(frozen=True)
class RunResult:
    """What one executed cell hands back to be tracked.

    params: extra settings (δ, σ, C, steps, ...); metrics: name → float, with ``name_lo`` /
    ``name_hi`` for 95% CI bounds; artifacts: name → local file path; tags: name → text.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    artifacts: Mapping[str, str | Path] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    step_metrics: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Per-round curves (e.g. federated loss per round): name → value per step."""
    layout: MetricLayout | None = None
    """How to log ``metrics``: None = every metric flat; else only its headline flat and all of them as the
    run's tidy metric table (:mod:`fedsim.run_metrics`)."""


class GridTracker(Protocol):
    """What :func:`run_grid` needs from a tracker (fedsim.tracking.Tracker provides it)."""

    def find_runs(self, config_hash: str) -> list[tuple[str, str]]: ...

    def run_leases(self, config_hash: str) -> Sequence[Any]: ...

    def holds_lease(self, config_hash: str, run_id: str) -> bool: ...

    def delete_run(self, run_id: str) -> None: ...

    def start_run(
        self,
        cell: RunSpec,
        *,
        world_hash: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
    ) -> AbstractContextManager[str]: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], *, layout: MetricLayout | None = None) -> None: ...

    def log_step_metrics(self, name: str, values: Sequence[float]) -> None: ...

    def log_artifact(self, path: str | Path, *, name: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class RunFailedError(RuntimeError):
    """A grid cell raised; the message names the cell. Finished runs stay as they are."""


@dataclass
class GridSummary:
    """Outcome of :func:`run_grid`: run ids per cell and how many were run, reused and replaced."""

    run_ids: list[str] = field(default_factory=list)
    executed: int = 0
    reused: int = 0
    replaced: int = 0
    elsewhere: int = 0
    """Cells left to another process that is running them now (its run is live: see fedsim.tracking)."""
    config_hashes: list[str] = field(default_factory=list)
    """Every cell of the grid, done here or not (its config hash), e.g. to check that all are finished."""


class _LostLease(Exception):
    """Another process opened a run for the same cell at the same moment and keeps it."""


FINISHED = "FINISHED"


def run_grid(
    spec: ExperimentSpec,
    cells: Sequence[RunSpec],
    execute: Callable[[RunSpec], RunResult],
    tracker: GridTracker,
    *,
    world_hash: str | None = None,
    progress: bool = True,
    run_names: Mapping[str, str] | None = None,
) -> GridSummary:
    """Run every cell that the tracker does not already hold as a finished run.

    A finished run with the cell's config hash is reused; an unfinished one (RUNNING, FAILED,
    KILLED — e.g. a crash) is deleted and the cell redone. If ``execute`` raises, that run is
    marked FAILED and :class:`RunFailedError` naming the cell is raised; runs finished earlier
    are kept, so calling again resumes. ``world_hash`` is logged as a param of every new run.
    ``run_names``: config hash → the run's name in MLflow (default :func:`short_run_names` of ``cells``).
    """
    summary = GridSummary(config_hashes=[c.config_hash for c in cells])
    names = dict(run_names) if run_names is not None else short_run_names(cells)
    with _Reporter(spec, len(cells), enabled=progress) as report:
        for number, cell in enumerate(cells, start=1):
            head = f"run {number}/{len(cells)}: {cell.describe()}"
            _run_cell(cell, head, execute, tracker, world_hash, summary, report, names.get(cell.config_hash))
            report.advance()
        elsewhere = f", {summary.elsewhere} left to another process running them" if summary.elsewhere else ""
        report.say(
            f"experiment {spec.name}: {summary.executed} run(s) done, {summary.reused} reused, "
            f"{summary.replaced} unfinished run(s) replaced{elsewhere}"
        )
    return summary


def _run_cell(
    cell: RunSpec,
    head: str,
    execute: Callable[[RunSpec], RunResult],
    tracker: GridTracker,
    world_hash: str | None,
    summary: GridSummary,
    report: _Reporter,
    name: str | None = None,
) -> None:
    """Reuse a finished run, leave a live one alone, replace crashed ones, else run the cell."""
    leases = tracker.run_leases(cell.config_hash)
    finished = [lease.run_id for lease in leases if lease.status == FINISHED]
    if finished:
        summary.reused += 1
        summary.run_ids.append(finished[0])
        report.say(f"{head} — reusing finished run {finished[0]}")
        return
    live = [lease.run_id for lease in leases if lease.live]
    if live:
        summary.elsewhere += 1
        report.say(f"{head} — another process is running it (run {live[0]}); left to it")
        return
    for lease in leases:
        tracker.delete_run(lease.run_id)
        summary.replaced += 1
        report.say(f"{head} — removing unfinished run {lease.run_id} ({lease.status.lower()}) to redo it")
    report.say(f"{head} — running")
    run_id = _execute_one(cell, execute, tracker, world_hash=world_hash, head=head, name=name)
    if run_id is None:
        summary.elsewhere += 1
        report.say(f"{head} — another process started it at the same moment; left to it")
        return
    summary.run_ids.append(run_id)
    summary.executed += 1


def _execute_one(
    cell: RunSpec,
    execute: Callable[[RunSpec], RunResult],
    tracker: GridTracker,
    *,
    world_hash: str | None,
    head: str,
    name: str | None = None,
) -> str | None:
    """Run one cell in its own tracked run; None if another process holds the cell's lease (our run is removed)."""
    opened: list[str] = []
    try:
        with tracker.start_run(cell, world_hash=world_hash, run_name=name) as run_id:
            opened.append(run_id)
            if not tracker.holds_lease(cell.config_hash, run_id):
                raise _LostLease(run_id)
            result = execute(cell)
            # Checked again before anything is logged: the first check compares start times, but a run stamped
            # earlier can reach the store later (a busy sqlite writer), so both processes may have passed it.
            # By now both runs are stored, the two agree on one winner, and the loser leaves no metrics behind.
            if not tracker.holds_lease(cell.config_hash, run_id):
                raise _LostLease(run_id)
            tracker.log_params(result.params)
            if result.layout is None:
                tracker.log_metrics(result.metrics)
            else:
                tracker.log_metrics(result.metrics, layout=result.layout)
            for curve, values in result.step_metrics.items():
                tracker.log_step_metrics(curve, values)
            for name, path in result.artifacts.items():
                tracker.log_artifact(path, name=name)
            tracker.set_tags(result.tags)
    except _LostLease:
        tracker.delete_run(opened[0])
        return None
    except Exception as err:
        raise RunFailedError(f"{head} failed ({cell.run_name}): {type(err).__name__}: {err}") from err
    _remove_uploaded(result.artifacts.values())
    return run_id


def _remove_uploaded(paths: Iterable[str | Path]) -> None:
    """Delete the temporary ``run-*`` folders (fedsim.runner's per-cell scratch) whose files the store now holds.

    Only those folders: an artifact kept anywhere else is the caller's file and stays.
    """
    for folder in {Path(p).parent for p in paths}:
        if folder.name.startswith("run-") and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


class _Reporter:
    """Progress bar (rich, on stderr like the CLI's other messages) with the log lines printed above
    it; plain logging when progress is off."""

    def __init__(self, spec: ExperimentSpec, total: int, *, enabled: bool) -> None:
        self._enabled, self._total, self._spec = enabled, total, spec
        self._bar: Any = None

    def __enter__(self) -> _Reporter:
        if self._enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(f"experiment {self._spec.name}", total=self._total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, line: str) -> None:
        # With a bar the researcher reads the console; without one the caller's logging decides.
        if self._bar is None:
            logger.info(line)
            return
        logger.debug(line)
        self._bar.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
