"""Experiment files → a grid of runs, and a resumable loop over that grid.

A researcher adds a study by adding a YAML file under ``experiments/``. This package

1. validates that file once, at the boundary (:mod:`.loading`: :func:`load_experiment`,
   :func:`parse_experiment`; :mod:`.spec`: :meth:`ExperimentSpec.validate_against`), raising one
   :class:`ExperimentError` whose message names the field path, the value and what is allowed;
2. expands it into grid cells (:mod:`.grid`: :func:`expand` → :class:`RunSpec`), each with a stable
   :attr:`RunSpec.config_hash`, by the rules of the regime registry (:mod:`fedsim.regimes`);
3. runs the grid (:mod:`.run`: :func:`run_grid`), reusing every cell the tracker already holds as a
   finished run and redoing the ones that crashed, so an interrupted experiment resumes where it stopped.
"""

from fedsim.experiment.grid import HASH_VERSION, RunSpec, expand
from fedsim.experiment.loading import load_experiment, parse_experiment
from fedsim.experiment.run import FINISHED, GridSummary, GridTracker, RunFailedError, RunResult, run_grid
from fedsim.experiment.spec import (
    ALL,
    MODELS,
    NON_DP_MODELS,
    PRIMARY_METRICS,
    REGIMES,
    WORLD_PRESETS,
    ExperimentError,
    ExperimentSpec,
    FederationSpec,
    MetricsSpec,
    PrimarySpec,
    PrivacySpec,
    SplitSpec,
    TrainingSpec,
    WorldSpec,
    format_epsilon,
    format_number,
    world_days,
)

__all__ = [
    "ALL",
    "FINISHED",
    "HASH_VERSION",
    "MODELS",
    "NON_DP_MODELS",
    "PRIMARY_METRICS",
    "REGIMES",
    "WORLD_PRESETS",
    "ExperimentError",
    "ExperimentSpec",
    "FederationSpec",
    "GridSummary",
    "GridTracker",
    "MetricsSpec",
    "PrimarySpec",
    "PrivacySpec",
    "RunFailedError",
    "RunResult",
    "RunSpec",
    "SplitSpec",
    "TrainingSpec",
    "WorldSpec",
    "expand",
    "format_epsilon",
    "format_number",
    "load_experiment",
    "parse_experiment",
    "run_grid",
    "world_days",
]
