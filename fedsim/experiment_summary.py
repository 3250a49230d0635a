"""One summary run per experiment in MLflow: what the experiment found, next to the runs it came from.

Written by :func:`run_and_summarise` (:func:`fedsim.runner.run_experiment`, then the summary) once the grid
finished, and again by every later run of it (it replaces the previous one). It is not inside the runner
because the contrast it logs reads worlds through the runner (the import graph has no cycles).
Tag ``fedsim.kind = summary``, run name ``summary · <experiment>``; it is no grid cell, so
:meth:`fedsim.tracking.Tracker.runs_table`, the leases and `fedsim runs` never see it.

It holds:

* ``contrast/contrast.csv`` and ``contrast/contrast.json`` — the pre-declared primary contrast A − B per
  (model, ε) with its CI over cases × training seeds (× worlds), exactly as `fedsim compare` computes it
  (:func:`fedsim.contrast.primary_contrast`, evaluation.md §3), with the decomposition and capacity curve
  when the experiment has them; its fraud-type "all" rows as metrics ``<metric>_diff`` with ``_lo`` / ``_hi``
  and the two sides ``<metric>_a`` / ``_b`` (prefixed ``<model>.eps<ε>.`` when there are several);
* ``value/partner_value.json`` — each partner's Shapley / Banzhaf value and leave-one-out
  (:func:`fedsim.value.partner_value`) when the experiment runs a coalition lattice;
* ``reports/`` — files another command adds (:func:`attach_to_summary`, e.g. the effectiveness report).

What could not be computed (no primary contrast, no paired runs) is said in the run's note, never left out.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsim.errors import FedsimError

if TYPE_CHECKING:
    import pandas as pd

    from fedsim.experiment import ExperimentSpec, GridSummary
    from fedsim.tracking import Tracker

logger = logging.getLogger("fedsim.summary_run")


def run_and_summarise(
    path: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    progress: bool = True,
    world_seed: int | None = None,
) -> GridSummary:
    """`fedsim run`: :func:`fedsim.runner.run_experiment` (same arguments and result), then, once every cell of the
    grid has a finished run, the experiment's summary run (:func:`write_summary`). With two `fedsim run` on one
    store the last to finish writes it; one finished by the other meanwhile is kept."""
    from fedsim.experiment import load_experiment
    from fedsim.runner import run_experiment
    from fedsim.tracking import Tracker, resolve_tracking_uri

    started_ms = int(time.time() * 1000)
    done = run_experiment(path, tracking_uri=tracking_uri, workdir=workdir, progress=progress, world_seed=world_seed)
    uri = resolve_tracking_uri(tracking_uri)
    tracker = Tracker(uri, load_experiment(path).name)
    if set(done.config_hashes) <= tracker.finished_config_hashes():
        write_summary(path, tracking_uri=uri, workdir=workdir, unless_written_since=started_ms)
    return done


def write_summary(
    experiment: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    world_seeds: Sequence[int] | None = None,
    unless_written_since: int | None = None,
) -> str:
    """Compute the experiment's contrast (and partner values) from its tracked runs, log them as its summary
    run, replacing the previous one; returns the new run's id. ``world_seeds``: the worlds the contrast
    combines (default: every world seed the experiment's finished runs name). ``unless_written_since`` (Unix
    ms): keep a summary another process finished since then (two `fedsim run` on one store) instead."""
    from fedsim.experiment import load_experiment
    from fedsim.tracking import Tracker

    spec = load_experiment(experiment)
    tracker = Tracker(tracking_uri, spec.name)
    with tracker.summary_lock():
        fresh = tracker.summary_written_since(unless_written_since) if unless_written_since is not None else None
        return fresh or _write(experiment, spec, tracker, tracking_uri, workdir, world_seeds)


def _write(
    experiment: str | Path,
    spec: ExperimentSpec,
    tracker: Tracker,
    tracking_uri: str | None,
    workdir: str | Path,
    world_seeds: Sequence[int] | None,
) -> str:
    seeds = list(world_seeds) if world_seeds else _world_seeds(tracker) or [spec.world.seed]
    notes = [f"Summary of experiment {spec.name!r}: {spec.description.strip() or '(no description)'}"]
    contrast = _contrast(experiment, tracking_uri, workdir, seeds, notes)
    value = _partner_value(experiment, tracking_uri, workdir, notes) if spec.lattice is not None else None
    with tempfile.TemporaryDirectory(prefix="fedsim-summary-") as tmp, tracker.summary_run("\n\n".join(notes)) as rid:
        folder = Path(tmp)
        if contrast is not None:
            _log_contrast(tracker, contrast, folder / "contrast")
        if value is not None:
            (folder / "value").mkdir()
            (folder / "value" / "partner_value.json").write_text(json.dumps(value, indent=1, default=str))
            tracker.log_artifact(folder / "value" / "partner_value.json", name="value")
        tracker.set_tags({"fedsim.world_seeds": ",".join(str(s) for s in seeds)})
    return rid


def attach_to_summary(
    experiment_name: str, tracking_uri: str | None, paths: Sequence[str | Path], *, folder: str = "reports"
) -> str:
    """Add files or folders (e.g. the effectiveness report's HTML and PDF) under ``folder/`` of the experiment's
    summary run; an experiment without one (runs tracked before summaries existed) gets an empty one first.
    Returns the summary run's id."""
    from fedsim.tracking import Tracker

    tracker = Tracker(tracking_uri, experiment_name)
    found = tracker.summary_runs()
    if found:
        rid = found[0]
    else:
        note = f"Summary of experiment {experiment_name!r}: written by a report; `fedsim run` adds the contrast."
        with tracker.summary_run(note) as rid:
            pass
    tracker.attach_files(rid, paths, folder=folder)
    return rid


def _world_seeds(tracker: Tracker) -> list[int]:
    runs = tracker.runs_table()
    if runs.empty or "world.seed" not in runs:
        return []
    return sorted({int(s) for s in runs["world.seed"].dropna()})


def _contrast(
    experiment: str | Path, uri: str | None, workdir: str | Path, seeds: list[int], notes: list[str]
) -> pd.DataFrame | None:
    from fedsim.contrast import primary_contrast

    try:
        return primary_contrast(experiment, tracking_uri=uri, workdir=workdir, world_seeds=seeds)
    except FedsimError as err:
        notes.append(f"No primary contrast: {err}")
        return None


def _partner_value(experiment: str | Path, uri: str | None, workdir: str | Path, notes: list[str]) -> Any:
    from fedsim.value import partner_value, value_payload

    try:
        return value_payload(partner_value(experiment, tracking_uri=uri, workdir=workdir))
    except FedsimError as err:
        notes.append(f"No partner values: {err}")
        return None


def _log_contrast(tracker: Tracker, table: pd.DataFrame, folder: Path) -> None:
    from fedsim.contrast import contrast_payload

    folder.mkdir()
    table.to_csv(folder / "contrast.csv", index=False)
    (folder / "contrast.json").write_text(json.dumps(contrast_payload(table), indent=1, default=str))
    tracker.log_artifact(folder / "contrast.csv", name="contrast")
    tracker.log_artifact(folder / "contrast.json", name="contrast")
    tracker.log_metrics(contrast_metrics(table))


def contrast_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The fraud-type "all" rows of a contrast as metrics: ``<metric>_diff`` (A − B) with ``_lo`` / ``_hi`` (its
    95% CI) and ``_a`` / ``_b``; prefixed ``<model>.eps<ε>.`` when the table has several (model, ε)."""
    rows = table[table["fraud_type"] == "all"]
    groups = rows[["model", "epsilon"]].astype(str).drop_duplicates()
    out: dict[str, float] = {}
    for row in rows.to_dict("records"):
        prefix = "" if len(groups) == 1 else f"{row['model']}.eps{row['epsilon']}."
        name = f"{prefix}{row['metric']}"
        for suffix, col in (("diff", "diff"), ("diff_lo", "lo"), ("diff_hi", "hi"), ("a", "value_a"), ("b", "value_b")):
            out[f"{name}_{suffix}"] = float(row[col])
    return out
