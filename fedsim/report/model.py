"""What the effectiveness report says, as data: every number with its range and the runs it comes from.

The report is built in two steps so that its numbers can be checked apart from its wording:

1. :mod:`fedsim.report.gather` reads the tracked MLflow runs of one experiment (and their artifacts) and fills a
   :class:`ReportModel`. Nothing else in the report touches MLflow or recomputes a number.
2. :mod:`fedsim.report.render` turns that model into HTML and PDF, in Dutch or English, with figures drawn from
   the model's tables. It adds words and formatting, never numbers.

Every figure on page one is a :class:`Traced` value: an estimate with its 95% CI, the run ids it was computed
from and, in words, how (``how``), so a test can recompute it from those runs' artifacts and the methods box can
list the runs. A table that an experiment cannot fill (no lattice, no DP runs, no audit) is an empty DataFrame
with the documented columns; the report then says that the experiment did not measure it, never leaves it out
silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

Unit = Literal["cases", "share", "eur", "odds", "epsilon", "days", "hours"]
ProblemKind = Literal["missing", "failed", "unfinished"]


@dataclass(frozen=True)
class Range:
    """An estimate with its 95% confidence interval (seeds × case resamples, as ``fedsim compare``)."""

    estimate: float
    lo: float
    hi: float

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero (both ends on the same side)."""
        return (self.lo > 0 and self.hi > 0) or (self.lo < 0 and self.hi < 0)


@dataclass(frozen=True)
class Traced:
    """One number a policymaker reads, with where it comes from.

    value: the estimate and its CI. unit: how to format it. run_ids: the MLflow runs it is computed from (both
    sides of a contrast). how: in English, the metric or artifact and the computation, e.g. "ED(0) at the
    calibrated capacity, pooled − status_quo, paired over seeds 0–4 (fedsim compare)".
    """

    value: Range
    unit: Unit
    run_ids: tuple[str, ...]
    how: str


@dataclass(frozen=True)
class RunProblem:
    """A cell of the experiment's grid without a finished run: named in the report, never silently left out.

    cell: the run name a researcher sees in MLflow (regime, coalition, model, seed, ε). kind: no run at all
    (``missing``), a FAILED or KILLED run (``failed``), or one still RUNNING (``unfinished``). run_id: the stored
    run, if any. detail: what MLflow recorded (status, error tag), in English.
    """

    cell: str
    kind: ProblemKind
    run_id: str | None
    detail: str


@dataclass
class PageOne:
    """The plain-words summary: the primary contrast (``contrast`` = (A, B), e.g. ("pooled", "status_quo")).

    extra_cases: how many more fraud cases are caught before the money leaves (A − B, count over the test window).
    extra_share: the same as a share of all cases (ED(0) difference).
    euros_world: euros prevented in the synthetic world over the test window (A − B).
    euros_nl: euros prevented extrapolated to the Netherlands per year; ``nl_assumptions`` names each assumption
      (key → value, e.g. "victims_per_year" → 2.2e6) so the report can state them.
    privacy_odds: the privacy cost as the odds multiplier e^ε per person (all models composed), worst seed;
      None when the experiment has no DP run. epsilon_person: that ε itself.
    problems: every grid cell without a finished run (shown on page one when non-empty).
    """

    contrast: tuple[str, str]
    fraud_type: str
    extra_cases: Traced
    extra_share: Traced
    euros_world: Traced
    euros_nl: Traced
    nl_assumptions: dict[str, float]
    privacy_odds: Traced | None
    epsilon_person: Traced | None
    problems: list[RunProblem] = field(default_factory=list)


@dataclass
class FraudTypeSection:
    """Everything the report shows for one fraud type (``all`` = every type together).

    Columns of each table (empty DataFrame with these columns when the experiment did not measure it):

    - partner_values: partner, shapley, shapley_lo, shapley_hi, banzhaf, banzhaf_lo, banzhaf_hi, loo, loo_lo, loo_hi
    - sharing_forms: regime, estimate, lo, hi — each sharing form minus status quo (reports vs data vs models)
    - steps: step ∈ {rules, own_models, sharing}, regime, estimate, lo, hi — the primary metric of each step
    - ed_curve: regime, horizon_h, estimate, lo, hi — share of cases detected ≥ h hours before the money left
    - lead_times: regime, lead_time_h — one row per detected case (all seeds), for the distribution
    - phases: regime, phase, share — share of cases first detected in each criminal-journey phase
    - waterfall: step, coalition, value, lo, hi, gain — from the best silo to the full chain
    - heatmap: coalition, regime, value — the outcome of every coalition under every regime
    - privacy_utility: regime, coalition, epsilon, estimate, lo, hi — the primary metric against ε per person
    """

    fraud_type: str
    metric: str
    best_coalition: tuple[str, ...] | None
    smallest_near_best: tuple[str, ...] | None
    partner_values: pd.DataFrame
    sharing_forms: pd.DataFrame
    steps: pd.DataFrame
    ed_curve: pd.DataFrame
    lead_times: pd.DataFrame
    phases: pd.DataFrame
    waterfall: pd.DataFrame
    heatmap: pd.DataFrame
    privacy_utility: pd.DataFrame
    every_partner_gains: bool | None = None
    returns_diminish: bool | None = None


@dataclass
class Methods:
    """The methods box: what a reader needs to find and rerun every number.

    run_ids: every finished run the report read, by run name. world_hashes, git_commits, config_hashes: as
    logged by the runs (several when runs differ). seeds: the training seeds. tracking_uri: the store read.
    generated_at: ISO 8601 UTC time of this report.
    """

    experiment: str
    description: str
    run_ids: dict[str, str]
    world_hashes: list[str]
    git_commits: list[str]
    config_hashes: list[str]
    seeds: list[int]
    tracking_uri: str
    generated_at: str


@dataclass
class Limitations:
    """Facts behind the limitations section (the wording is the renderer's).

    prevalence_multipliers: fraud type → multiplier the world applied (1 = real prevalence). test_window_days and
    train_window_days: the one time window measured. epsilon_covers / epsilon_does_not_cover: short keys the
    renderer words, e.g. "training_examples", "per_person_composition" / "test_scores", "reports_shared".
    world_persons, world_days: the synthetic world's size.
    """

    prevalence_multipliers: dict[str, float]
    train_window_days: int
    test_window_days: int
    world_persons: int
    world_days: int
    epsilon_covers: list[str]
    epsilon_does_not_cover: list[str]


@dataclass
class ReportModel:
    """The whole report as data (see the module notes). ``parameters``: the experiment's full parameter set,
    flattened to dotted keys → text, as logged. audit columns: check, regime, epsilon, statistic, bound, passed.
    leakage_register columns: regime, what_leaves, protected_by, residual_risk (the registry's rows)."""

    experiment: str
    page_one: PageOne
    sections: list[FraudTypeSection]
    audit: pd.DataFrame
    leakage_register: pd.DataFrame
    methods: Methods
    limitations: Limitations
    parameters: dict[str, str]
