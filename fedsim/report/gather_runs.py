"""What the report reads from the store about the runs themselves: grid problems, methods, limitations, parameters.

Only the tracking store (through :class:`fedsim.tracking.Tracker`), the experiment file and the world's config are
read here; no metric is recomputed. :mod:`fedsim.report.gather` assembles these parts into the
:class:`~fedsim.report.model.ReportModel`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from fedsim.report.model import Limitations, Methods, RunProblem

if TYPE_CHECKING:
    from fedsim.experiment import ExperimentSpec
    from fedsim.tracking import Tracker

CONFIG_HASH_TAG = "fedsim.config_hash"
PROBLEM_KIND = {"FAILED": "failed", "KILLED": "failed", "RUNNING": "unfinished", "SCHEDULED": "unfinished"}
"""MLflow run status → the report's kind of problem (a cell without any stored run is ``missing``)."""

EPSILON_COVERS = ["training_examples", "per_person_composition"]
"""What the per-person ε bounds: each DP model's training examples (one partner entity, at most
``max_rows_per_entity`` rows), composed over every DP model of a run that holds a person's data
(:mod:`fedsim.person_privacy`)."""
EPSILON_DOES_NOT_COVER = ["test_scores", "reports_shared", "standardizer_statistics", "labels_from_others"]
"""What it does not (the leakage register's DP row, :data:`fedsim.evaluation.privacy_audit.DP_ROW`): scores on
the test window, fraud reports shared between partners, the standardiser's noise-free means and scales, and
labels other persons' reports put on an entity's rows."""


def grid_cells(spec: ExperimentSpec, world_hash: str) -> tuple[list[Any], dict[str, str]]:
    """The experiment's grid as `fedsim run` expands it, with the world's content hash in every cell (so the
    config hashes are the ones the runs were logged under, :func:`fedsim.runner.run_experiment`), and each
    cell's run name as MLflow shows it (config hash → :func:`fedsim.experiment.grid.short_run_names`)."""
    from fedsim.experiment import expand
    from fedsim.experiment.grid import short_run_names
    from fedsim.runner import partners_of
    from synthetic.schema import partner_block

    partners = partners_of(spec)
    cells = expand(spec, partners, kinds={p: partner_block(p) for p in partners})
    cells = [c.model_copy(update={"world_digest": world_hash}) for c in cells]
    return cells, short_run_names(cells, partners=partners)


def stored_runs(tracker: Tracker, experiment_name: str) -> dict[str, list[tuple[str, str, dict[str, str]]]]:
    """config hash → (run_id, status, tags) of every non-deleted run of the experiment, newest first."""
    found = tracker.client.get_experiment_by_name(experiment_name)
    if found is None:
        return {}
    out: dict[str, list[tuple[str, str, dict[str, str]]]] = {}
    token = None
    while True:
        page = tracker.client.search_runs(
            [found.experiment_id], page_token=token, order_by=["attributes.start_time DESC"]
        )  # MLflow's default view: active (not deleted) runs only; deleted runs are a cell's missing run
        for run in page:
            tags = dict(run.data.tags)
            out.setdefault(tags.get(CONFIG_HASH_TAG, ""), []).append((run.info.run_id, run.info.status, tags))
        token = page.token
        if not token:
            return out


def run_problems(
    cells: Sequence[Any],
    names: Mapping[str, str],
    stored: Mapping[str, list[tuple[str, str, dict[str, str]]]],
    finished: pd.DataFrame | None = None,
) -> list[RunProblem]:
    """Every grid cell without a FINISHED run, by the ``fedsim.config_hash`` tag each run carries
    (:func:`fedsim.experiment.run.run_grid` reuses a cell's finished run by the same key); ``names``: config
    hash → run name (:func:`grid_cells`). ``finished``: the runs table the report reads; a missing cell whose
    (regime, coalition, model, seed, ε) has a finished run there under another config hash (older code or
    settings, which `fedsim run` would redo) says so in its detail."""
    problems = []
    for cell in cells:
        name = names.get(cell.config_hash, cell.run_name)
        runs = stored.get(cell.config_hash, [])
        if any(status == "FINISHED" for _, status, _ in runs):
            continue
        if not runs:
            problems.append(RunProblem(name, "missing", None, _missing_detail(cell, finished)))
            continue
        run_id, status, tags = runs[0]  # the newest
        error = tags.get("mlflow.note.content", "")  # a note a researcher left on the run, if any
        detail = f"MLflow status {status}" + (f": {error}" if error else "")
        problems.append(RunProblem(name, PROBLEM_KIND.get(status, "failed"), run_id, detail))  # type: ignore[arg-type]
    return problems


def _missing_detail(cell: Any, finished: pd.DataFrame | None) -> str:
    from fedsim.experiment import format_epsilon

    if finished is None or finished.empty or "config_hash" not in finished:
        return "no run in the tracking store"
    same = finished[
        (finished["regime"] == cell.regime)
        & (finished["coalition"] == "+".join(cell.coalition))
        & (finished["model"] == cell.model)
        & (finished["seed"].astype(str) == str(cell.seed))
        & (finished["epsilon"].astype(str) == format_epsilon(cell.epsilon))
    ]
    if same.empty:
        return "no run in the tracking store"
    other = same.iloc[-1]
    return (
        f"no run with this cell's configuration; run {other['run_id']} of the same cell has another configuration "
        f"(config hash {str(other['config_hash'])[:12]}…, e.g. older code or settings) and is the one read here"
    )


def _unique(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna() if str(v) not in ("", "nan")})


def methods(spec: ExperimentSpec, runs: pd.DataFrame, tracking_uri: str) -> Methods:
    """The methods box from the finished runs the report read (``runs``: the runs table of the current world)."""
    seeds = sorted({int(s) for s in runs["seed"].dropna()}) if "seed" in runs else list(spec.seeds)
    return Methods(
        experiment=spec.name,
        description=" ".join((spec.description or "").split()),
        run_ids=dict(zip(runs["run_name"].astype(str), runs["run_id"].astype(str), strict=True)),
        world_hashes=_unique(runs.get("world_hash", pd.Series(dtype=str))),
        git_commits=_unique(runs.get("git_commit", pd.Series(dtype=str))),
        config_hashes=_unique(runs.get("config_hash", pd.Series(dtype=str))),
        seeds=seeds,
        tracking_uri=tracking_uri,
        generated_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
    )


def limitations(spec: ExperimentSpec) -> Limitations:
    """Facts the limitations section words: the world's prevalence multipliers, the one window, its size, ε."""
    from fedsim.experiment import world_days

    config = spec.world.world_config()
    windows = spec.split.windows()
    persons = config.known_answer.entities if config.mode == "known_answer" else config.population.persons
    return Limitations(
        prevalence_multipliers={t: float(c.multiplier) for t, c in config.fraud.items()},
        train_window_days=windows["train"][1] - windows["train"][0],
        test_window_days=windows["test"][1] - windows["test"][0],
        world_persons=int(persons),
        world_days=int(world_days(config)),
        epsilon_covers=list(EPSILON_COVERS),
        epsilon_does_not_cover=list(EPSILON_DOES_NOT_COVER),
    )


def parameters(spec: ExperimentSpec, runs: pd.DataFrame) -> dict[str, str]:
    """The experiment's full parameter set, dotted keys → text: the experiment file as validated (``experiment.*``)
    and the world's content hash as the runs logged it."""
    flat = _flatten(spec.model_dump(mode="json"), "experiment.")
    out = {k: _text(v) for k, v in sorted(flat.items()) if v is not None}
    for key in ("world_hash", "capacity", "capacity_multiplier"):
        values = _unique(runs.get(key, pd.Series(dtype=str)))
        if values:
            out[f"runs.{key}"] = ", ".join(values)
    return out


def _flatten(tree: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _text(value: Any) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
