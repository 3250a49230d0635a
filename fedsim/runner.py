"""`fedsim run`: experiment file → world (built once, cached) → grid of runs → MLflow.

Each grid cell: regime on its coalition → entity-day scores for the test window → case-level
evaluation with bootstrap CIs → one MLflow run with params, metrics and the score artifact (from which
every metric can be recomputed). Finished cells are reused; interrupted ones are redone.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fedsim.data import DAY, Split
from fedsim.evaluation.alerts import CalibratedCapacity, calibrated_capacity
from fedsim.experiment import (
    ExperimentSpec,
    GridSummary,
    RunResult,
    RunSpec,
    TrainingSpec,
    expand,
    load_experiment,
    run_grid,
)
from fedsim.experiment.grid import short_run_names
from fedsim.features import PartnerFeatures
from fedsim.regimes import RegimeResult, RunContext, TrainingSettings, get_regime
from fedsim.run_metrics import MetricLayout, headline_names
from fedsim.settings import FederationSettings
from synthetic.schema import partner_block
from synthetic.world import (
    World,
    WorldError,
    generate,
    read_world,
    secret_from,
    secret_suffix,
    to_pandas,
    write_world,
)

logger = logging.getLogger("fedsim.run")
TRUTH_FOR_EVAL = ("cases", "money_outs", "case_entities", "entities")


def generator_digest() -> str:
    """sha256 of the world generator's source: a changed generator must never reuse a cached world."""
    import hashlib

    import synthetic

    h = hashlib.sha256()
    for path in sorted(Path(synthetic.__file__).parent.rglob("*")):
        if path.suffix in (".py", ".yaml"):
            h.update(path.relative_to(Path(synthetic.__file__).parent).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def world_dir(spec: ExperimentSpec, root: Path) -> Path:
    """The world's cache folder: one per (resolved config, generator, seed) and, when set, world secret."""
    path = root / f"{spec.world.content_digest()[:12]}-{generator_digest()[:8]}-seed{spec.world.seed}"
    secret = secret_from(spec.world.secret_file)
    return path.with_name(path.name + secret_suffix(secret)) if secret else path


def load_or_generate_world(spec: ExperimentSpec, root: Path, progress: Any = None) -> World:
    """The experiment's world, generated once per (resolved config, seed) and reused from disk.

    A cached world is verified on reading (:func:`synthetic.world.verify_world`); one that is corrupt or stale
    is removed and built again, with a log line saying why — it is never used.
    """
    path = world_dir(spec, root)
    if path.exists() or path.is_symlink():
        try:
            world = read_world(path)
            logger.info("reusing world %s", path)
            return world
        except WorldError as err:
            logger.warning("cached world is not usable, rebuilding it: %s", err)
            # The cache folder's name is fedsim's own (digest-generator-seed): safe to remove whatever it holds.
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    logger.info("generating world %s (seed %d)", path, spec.world.seed)
    secret = secret_from(spec.world.secret_file)
    world = generate(spec.world.world_config(), spec.world.seed, progress=progress, secret=secret)
    try:
        write_world(world, path, secret=secret)
    except WorldError:
        if not path.is_dir():
            raise
        # Another `fedsim run` of the same world finished writing first; read_world below verifies its copy.
        logger.info("world %s was written by another process meanwhile; using it", path)
    return read_world(path)


@dataclass
class Workspace:
    """What every cell of one experiment shares: the world, its features, its truth."""

    spec: ExperimentSpec
    world: World
    features: dict[str, PartnerFeatures]
    truth: dict[str, pd.DataFrame]
    split: Split
    artifacts_dir: Path

    @classmethod
    def build(cls, spec: ExperimentSpec, world: World, artifacts_dir: Path) -> Workspace:
        import torch

        # Small models on small batches run fastest on one thread; more threads only fight each other.
        torch.set_num_threads(1)
        w = spec.split.windows()
        second = w.get("second_test")
        split = Split(
            w["train"][0] * DAY,
            w["train"][1] * DAY,
            w["test"][0] * DAY,
            w["test"][1] * DAY,
            (second[0] * DAY, second[1] * DAY) if second else None,
        )
        features = {n: PartnerFeatures.for_view(v) for n, v in world.partners.items()}
        truth = {k: to_pandas(world.truth[k]) for k in TRUTH_FOR_EVAL}
        return cls(spec, world, features, truth, split, artifacts_dir)

    @property
    def partner_sizes(self) -> dict[str, int]:
        return {n: len(f.entities) for n, f in self.features.items()}

    def capacity(self) -> CalibratedCapacity:
        """The calibrated alert-capacity profile of this world: THE capacity of every run and contrast.

        Per-kind alerts per 100k customers per day (:data:`fedsim.evaluation.alerts.ALERTS_PER_100K_PER_DAY`)
        times the world's case-weighted prevalence multiplier (:func:`fedsim.evaluation.alerts.effective_multiplier`).
        """
        cases = self.truth["cases"]
        multipliers = {t: c.multiplier for t, c in self.world.config.fraud.items()}
        kinds = {p: f.block for p, f in self.features.items()}
        return calibrated_capacity(cases["fraud_type"].value_counts().to_dict(), multipliers, kinds)

    def context(self, cell: RunSpec) -> RunContext:
        """The one way a grid cell becomes a :class:`RunContext`: typed, frozen settings from the cell."""
        return RunContext(
            world=self.world,
            coalition=cell.coalition,
            model=cell.model,
            seed=cell.seed,
            split=self.split,
            training=training_settings(cell.training),
            features=self.features,
            truth=self.truth,
            epsilon=cell.epsilon,
            federation=cell.federation if cell.federation is not None else FederationSettings(),
            privacy=cell.privacy,
            regime_settings=cell.typed_settings(),
        )

    def execute(self, cell: RunSpec) -> RunResult:
        """Score the cell (its regime on its coalition), then evaluate and package it (:meth:`package`).

        Every DP model the regime trains registers its exposure (:mod:`fedsim.person_privacy`); the run logs
        the per-person ε composed over all of them (``dp_epsilon_person_*``, ``dp_unit`` = person)."""
        from fedsim.person_privacy import recording, run_person_privacy

        ctx = self.context(cell)
        with recording() as log:
            result = get_regime(cell.regime).run(ctx)
        dp = cell.privacy is not None and not math.isinf(cell.epsilon)
        return self.package(cell, result, person=run_person_privacy(log, self.truth.get("entities"), dp_cell=dp))

    def package(
        self, cell: RunSpec, result: RegimeResult, *, person: tuple[dict[str, float], dict[str, str]] = ({}, {})
    ) -> RunResult:
        """Evaluate a cell's entity-day scores against this world's truth and package the run to track.

        The one evaluation and logging path: a simulated cell (:meth:`execute`) and a deployment's collected
        scores (:func:`track_scored_cell`) give the same params, metrics and artifacts. ``person``: the
        per-person privacy metrics and params of the run (:func:`fedsim.person_privacy.run_person_privacy`).
        """
        from fedsim.evaluation.api import evaluate_calibrated
        from fedsim.privacy import privacy_for, run_params

        tr = cell.training
        ctx = self.context(cell)
        m = cell.metrics
        # Every run is evaluated at multiples of the world's calibrated alert capacity (metrics named _cal<scale>).
        capacity = self.capacity()

        def evaluate(scores: pd.DataFrame, window: tuple[Any, Any], n_boot: int) -> Any:
            return evaluate_calibrated(
                scores,
                self.truth,
                capacity=capacity,
                scales=m.capacity_scales,
                partner_sizes=self.partner_sizes,
                test_window_ts=window,
                seed=cell.seed,
                horizons_h=m.horizons_h,
                latencies_h=m.latencies_h,
                interdiction=m.interdiction,
                n_boot=n_boot,
            )

        ev = evaluate(result.scores, (self.split.test_start, self.split.test_end), m.bootstrap)
        from fedsim.run_figures import write_run_figures

        out = Path(tempfile.mkdtemp(prefix="run-", dir=self.artifacts_dir))
        result.scores.to_parquet(out / "scores.parquet", index=False)
        ev.table.to_csv(out / "metrics_tidy.csv", index=False)
        ev.case_alerts.to_parquet(out / "case_alerts.parquet", index=False)
        (out / "run_config.yaml").write_text(yaml.safe_dump(json.loads(cell.model_dump_json()), sort_keys=False))
        artifacts = {
            "scores": out / "scores.parquet",
            "metrics": out / "metrics_tidy.csv",
            "case_alerts": out / "case_alerts.parquet",
            "config": out / "run_config.yaml",
        }
        if result.second_scores is not None and self.split.second_test:
            # The window after the test window (e.g. after a barrier): its case alerts, for `fedsim adapt`.
            second = evaluate(result.second_scores, self.split.second_test, 0)  # only its alerts are kept
            second.case_alerts.to_parquet(out / "case_alerts_second.parquet", index=False)
            artifacts["case_alerts_second"] = out / "case_alerts_second.parquet"
        scale = self.spec.primary.capacity_scale if self.spec.primary else 1.0
        if write_run_figures(out / "figures", ev.table, ev.case_alerts, scale=scale, step_metrics=result.step_metrics):
            artifacts["figures"] = out / "figures"
        metrics = {**ev.flat(), **result.metrics, **person[0]}
        params = {
            **result.params,
            "unit_of_scoring": "entity-day (max over event-triggered scores)",
            "negative_rate": tr.negative_rate,
            "test_window_days": f"{cell.split.windows()['test']}",
            "world_mode": self.world.config.mode,
            "capacity": capacity.label(),
            "capacity_reference_k": capacity.reference,
            "capacity_multiplier": capacity.multiplier,
            **run_params(privacy_for(ctx)),
            **person[1],  # after run_params: the run's unit is the person once its models are composed
        }
        return RunResult(
            params=params,
            metrics=metrics,
            artifacts=artifacts,
            tags={"fedsim.regime": cell.regime, "fedsim.coalition": "+".join(cell.coalition)},
            step_metrics=result.step_metrics,
            layout=self.metric_layout(metrics),
        )

    def metric_layout(self, metrics: dict[str, float]) -> MetricLayout:
        """Headline metrics at the primary outcome's capacity (:func:`fedsim.run_metrics.headline_names`); the
        world's fraud types and partners parse the names of the full table."""
        primary = self.spec.primary
        return MetricLayout(
            headline_names(
                metrics, primary=primary.metric if primary else None, scale=primary.capacity_scale if primary else 1.0
            ),
            # The world's fraud types as the evaluation names them (the known-answer world has its own type).
            fraud_types=tuple(sorted({*self.world.config.fraud, *self.truth["cases"]["fraud_type"].astype(str)})),
            partners=tuple(self.world.partners),
        )


def with_world_seed(spec: ExperimentSpec, seed: int | None) -> ExperimentSpec:
    """The experiment on another world of the same config: ``world.seed`` replaced (None = unchanged).

    Its runs go to the same MLflow experiment (the name is unchanged) and are told apart by world hash."""
    if seed is None or seed == spec.world.seed:
        return spec
    if seed < 0:
        raise WorldError(f"--world-seed {seed}: allowed: an integer >= 0")
    return spec.model_copy(update={"world": spec.world.model_copy(update={"seed": int(seed)})})


def run_experiment(
    path: str | Path,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    progress: bool = True,
    world_seed: int | None = None,
) -> GridSummary:
    """Validate, build the world, expand the grid and run it resumably. Returns what was done.

    ``world_seed`` overrides the experiment's ``world.seed`` (:func:`with_world_seed`). The MLflow experiment
    carries the file's description; each run a short name saying what differs between the cells
    (:func:`fedsim.experiment.grid.short_run_names`). :func:`fedsim.experiment_summary.run_and_summarise` runs
    this and then writes the experiment's summary run (it needs the contrast, which needs this module)."""
    file_seed = load_experiment(path).world.seed
    from fedsim.progress import progress_bar
    from fedsim.tracking import Tracker, check_store

    spec = with_world_seed(load_experiment(path), world_seed)
    root = Path(workdir)
    partners = partners_of(spec)
    spec.validate_against(partners)  # fails before any work: unknown partner, bad coalition, ...
    # Feature block of each partner (bank_2 → bank): each regime admits coalitions by kind (e.g. horizontal
    # needs two partners of one kind); the world is not built yet, so the kind comes from the name.
    blocks = {p: partner_block(p) for p in partners}
    cells = expand(spec, partners, kinds=blocks)
    # The store before the world: an unreachable or unwritable store fails in seconds, not after the build.
    tracker = Tracker(check_store(tracking_uri), spec.name)
    tracker.describe_experiment(spec.description)
    try:
        (root / "artifacts").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WorldError(f"--workdir {str(root)!r}: cannot create a folder there ({err.strerror or err})") from None
    with progress_bar(disable=not progress) as bar:
        world = load_or_generate_world(spec, root / "worlds", bar)
    ws = Workspace.build(spec, world, root / "artifacts")
    # A run is identified by the world's bytes, not only its config: the same config generated by another
    # version of the generator is another world, so its runs are not reused.
    cells = [c.model_copy(update={"world_digest": world.content_hash}) for c in cells]
    names = short_run_names(
        cells, partners=partners, world_seed=None if spec.world.seed == file_seed else spec.world.seed
    )
    return run_grid(spec, cells, ws.execute, tracker, world_hash=world.content_hash, progress=progress, run_names=names)


def track_scored_cell(
    ws: Workspace, cell: RunSpec, result: RegimeResult, *, tracking_uri: str | None, progress: bool = False
) -> GridSummary:
    """Log ONE tracked run of ``cell`` from scores made elsewhere (e.g. a Flower deployment's partners).

    Same path as :func:`run_experiment` (:meth:`Workspace.package` inside :func:`run_grid`), so the run has the
    params, metrics and artifacts a simulated run of that cell has; a finished run with the cell's config hash
    in the store is reused, as `fedsim run` does.
    """
    from fedsim.tracking import Tracker, check_store

    tracker = Tracker(check_store(tracking_uri), ws.spec.name)
    cell = cell.model_copy(update={"world_digest": ws.world.content_hash})
    return run_grid(
        ws.spec,
        [cell],
        lambda c: ws.package(c, result),
        tracker,
        world_hash=ws.world.content_hash,
        progress=progress,
    )


def partners_of(spec: ExperimentSpec) -> list[str]:
    """Partner names of the world the spec describes, without generating it (one source: the world config)."""
    return list(spec.world.world_config().partner_kinds())


def training_settings(tr: TrainingSpec) -> TrainingSettings:
    """The run's torch training settings from the experiment's ``training:`` section (one translation)."""
    return TrainingSettings(
        tr.epochs,
        tr.batch_size,
        tr.learning_rate,
        tr.negative_rate,
        max_epochs=tr.max_epochs,
        patience=tr.patience,
        refit=tr.refit,
    )
