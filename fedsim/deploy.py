"""`fedsim deploy write-app` / `deploy evaluate`: one horizontal grid cell run across machines, then tracked.

`write-app` writes the Flower app directory of the cell; `evaluate` turns the scores its partners wrote into
the MLflow run a simulation of that cell makes (:func:`evaluate_deployment`).

The coordinator runs this once; the directory it writes carries every setting of that cell — rounds,
strategy, secure aggregation, training and privacy — exactly as :class:`HorizontalSettings.from_context`
would give the simulation, so a deployment trains what the experiment says (the earlier `write-app`
built its settings without `privacy`, and a cross-machine run silently trained without DP).

A deployment needs a world generated with a **secret** (the experiment's ``world.secret_file`` or
``FEDSIM_WORLD_SECRET_FILE``): the partners' exports carry no seed or config, and without the secret the seed and
the public config would rebuild every partner's data (:func:`fedsim.federation.partner_data.export_partner_world`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError
from fedsim.experiment import ExperimentSpec, RunSpec, expand, load_experiment
from fedsim.regimes import RegimeResult
from fedsim.runner import Workspace, partners_of, world_dir
from fedsim.settings import FederationSettings
from synthetic.schema import partner_block
from synthetic.world import (
    SECRET_ENV,
    SECRET_FIELD,
    World,
    WorldError,
    generate,
    read_world,
    secret_from,
    secret_suffix,
    write_world,
)

if TYPE_CHECKING:
    from fedsim.federation.horizontal import HorizontalOutcome, HorizontalSettings
    from fedsim.federation.horizontal.settings import read_ledgers

logger = logging.getLogger("fedsim.deploy")

SCORE_COLUMNS = ["partner", "entity_id", "day", "decision_ts", "score"]
"""The columns of a partner's ``scores_<window>.parquet`` (:func:`fedsim.rows.entity_days`)."""


def horizontal_cell(cells: list[RunSpec], *, seed: int | None, epsilon: float | None) -> RunSpec:
    """The experiment's horizontal cell with that seed and ε (the first one when not given)."""
    found = [
        c
        for c in cells
        if c.regime == "horizontal" and (seed is None or c.seed == seed) and (epsilon is None or c.epsilon == epsilon)
    ]
    if not found:
        have = sorted({(c.seed, c.epsilon) for c in cells if c.regime == "horizontal"})
        raise FedsimError(
            f"deploy: no horizontal cell with seed = {seed}, epsilon = {epsilon}; "
            f"allowed (seed, epsilon): {have or 'none - the experiment has no horizontal regime'}"
        )
    return found[0]


def write_horizontal_app(
    experiment: str | Path,
    *,
    dest: Path,
    out_dir: Path,
    seed: int | None = None,
    epsilon: float | None = None,
    workdir: str | Path = ".fedsim",
) -> Path:
    """Write the Flower app of one horizontal cell of ``experiment`` to ``dest``; returns the app directory.

    out_dir: where the server and each partner write their results, on their own machines.
    """
    from fedsim.federation.horizontal import HorizontalSettings, write_app

    spec, cell, kinds = _experiment_cell(experiment, seed=seed, epsilon=epsilon)
    root = Path(workdir)
    world = deployment_world(spec, root / "worlds")
    ctx = Workspace.build(spec, world, root / "artifacts").context(cell)
    members = _federated_members(cell, kinds)
    return write_app(ctx, HorizontalSettings.from_context(ctx), dest, num_partners=len(members), out_dir=out_dir)


def deployment_world(spec: ExperimentSpec, root: Path) -> World:
    """The experiment's world generated with its secret, built once and reused from ``root`` (verified on reading).

    Its folder is the runner's (:func:`fedsim.runner.world_dir`) plus the secret's fingerprint, so two secrets are
    two worlds. Refused, naming where a secret comes from, when the experiment gives none.
    """
    secret = secret_from(getattr(spec.world, "secret_file", None))
    if secret is None:
        raise FedsimError(
            "deploy: the world needs a secret (partners' exports must not let them rebuild it from the seed); set "
            f"world.secret_file in the experiment or {SECRET_ENV}=FILE (make one: `openssl rand -hex 32 > FILE`)"
        )
    base, suffix = world_dir(spec, root), secret_suffix(secret)
    path = base if base.name.endswith(suffix) else base.with_name(base.name + suffix)
    if path.exists():
        try:
            world = read_world(path)
            if world.manifest.get(SECRET_FIELD) == secret.fingerprint():
                return world
            logger.warning("cached world %s has another secret; rebuilding it", path)
        except WorldError as err:
            logger.warning("cached world is not usable, rebuilding it: %s", err)
        shutil.rmtree(path)  # the folder's name is fedsim's own (digest-generator-seed-secret)
    logger.info("generating world %s (seed %d, with its secret)", path, spec.world.seed)
    world = generate(spec.world.world_config(), spec.world.seed, secret=secret)
    try:
        write_world(world, path, secret=secret)
    except WorldError:
        if not path.is_dir():
            raise
    return read_world(path)


def _experiment_cell(
    experiment: str | Path, *, seed: int | None, epsilon: float | None
) -> tuple[ExperimentSpec, RunSpec, dict[str, str]]:
    """The experiment, its horizontal cell with that seed and ε, and each partner's kind (from its name)."""
    spec = load_experiment(experiment)
    partners = partners_of(spec)
    kinds = {p: partner_block(p) for p in partners}
    return spec, horizontal_cell(expand(spec, partners, kinds=kinds), seed=seed, epsilon=epsilon), kinds


def _federated_members(cell: RunSpec, kinds: dict[str, str]) -> list[str]:
    """The partners the cell's app federates: one kind, two or more (the partners' score folders to expect)."""
    groups: dict[str, list[str]] = {}
    for p in cell.coalition:
        groups.setdefault(kinds[p], []).append(p)
    federated = [m for m in groups.values() if len(m) >= 2]
    alone = [p for m in groups.values() if len(m) < 2 for p in m]
    if len(federated) != 1 or alone:
        raise FedsimError(
            f"deploy: coalition {'+'.join(cell.coalition)} is not one federation of one kind "
            f"(groups: {groups}); a deployment runs one app per federation - give a coalition of one kind"
        )
    return sorted(federated[0])


def read_partner_scores(scores_dir: Path, members: list[str], test_window: tuple[int, int]) -> pd.DataFrame:
    """Every member's ``<scores_dir>/<partner>/scores_test.parquet`` (as each ClientApp writes it), checked.

    Refused (naming what is wrong): a missing partner folder or file, other columns, rows of another partner,
    scores outside the test window ``[start, end)`` (seconds), non-finite scores, duplicated entity-days.
    """
    if not scores_dir.is_dir():
        raise FedsimError(f"--scores {str(scores_dir)!r}: not a folder (expected one sub-folder per partner)")
    missing = [p for p in members if not (scores_dir / p / "scores_test.parquet").is_file()]
    if missing:
        where = ", ".join(str(scores_dir / p / "scores_test.parquet") for p in missing)
        raise FedsimError(f"deploy evaluate: no test scores from partner(s) {', '.join(missing)} (missing: {where})")
    frames = []
    for partner in members:
        path = scores_dir / partner / "scores_test.parquet"
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # any unreadable file is one clear error, not a pyarrow traceback
            raise FedsimError(f"{path}: not a readable parquet file ({type(err).__name__}: {err})") from None
        frames.append(_checked(frame, partner, path, test_window))
    return pd.concat(frames, ignore_index=True)


def _checked(frame: pd.DataFrame, partner: str, path: Path, window: tuple[int, int]) -> pd.DataFrame:
    if list(frame.columns) != SCORE_COLUMNS:
        raise FedsimError(f"{path}: columns {list(frame.columns)}; expected {SCORE_COLUMNS}")
    others = sorted(set(frame["partner"].astype(str)) - {partner})
    if others:
        raise FedsimError(f"{path}: rows of partner(s) {others} in {partner}'s scores")
    ts = frame["decision_ts"].to_numpy()
    outside = int(((ts < window[0]) | (ts >= window[1])).sum())
    if outside:
        raise FedsimError(
            f"{path}: {outside} row(s) outside the test window [{window[0]}, {window[1]}) s - "
            "only the test window's scores (scores_test.parquet) are evaluated"
        )
    if not np.isfinite(frame["score"].to_numpy(np.float64)).all():
        raise FedsimError(f"{path}: non-finite scores")
    if frame.duplicated(["entity_id", "day"]).any():
        raise FedsimError(f"{path}: an entity-day appears twice (each partner writes one row per entity-day)")
    return frame


def evaluate_deployment(
    experiment: str | Path,
    *,
    scores_dir: Path,
    seed: int | None = None,
    epsilon: float | None = None,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
) -> str:
    """Turn a deployment's collected scores into the MLflow run a simulation of that cell makes; returns its id.

    scores_dir: the deployment's ``out-dir`` gathered on the coordinator — ``<partner>/scores_test.parquet``
    from every federated partner and ``server/outcome.json`` from the SuperLink's ServerApp. The cell is the
    experiment's, with ``federation.engine = deployment`` (another config hash than the simulated run).
    """
    from fedsim.federation.horizontal import HorizontalOutcome, HorizontalSettings
    from fedsim.runner import track_scored_cell

    spec, cell, kinds = _experiment_cell(experiment, seed=seed, epsilon=epsilon)
    federation = (cell.federation or FederationSettings()).model_copy(update={"engine": "deployment"})
    cell = cell.model_copy(update={"federation": federation})
    members = _federated_members(cell, kinds)
    outcome_path = scores_dir / "server" / "outcome.json"
    if not outcome_path.is_file():
        raise FedsimError(f"deploy evaluate: no {outcome_path} (the ServerApp's outcome: rounds, losses, DP ledger)")
    outcome = HorizontalOutcome.read(outcome_path)
    if sorted(outcome.partners) != members:
        raise FedsimError(f"{outcome_path}: partners {sorted(outcome.partners)}; this cell federates {members}")
    root = Path(workdir)
    ws = Workspace.build(spec, deployment_world(spec, root / "worlds"), root / "artifacts")
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    scores = read_partner_scores(scores_dir, members, (ws.split.test_start, ws.split.test_end))
    settings = HorizontalSettings.from_context(ws.context(cell))
    if settings.secure_aggregation:  # the anonymous replies carried no ledger: each partner's sits by its scores
        outcome.dp = read_ledgers(scores_dir, members)
    result = federation_result(settings, kinds[members[0]], members, outcome, scores)
    result.params["deployment_scores"] = str(scores_dir.resolve())
    summary = track_scored_cell(ws, cell, result, tracking_uri=tracking_uri)
    return summary.run_ids[0]


def federation_result(
    settings: HorizontalSettings, block: str, members: list[str], outcome: HorizontalOutcome, scores: pd.DataFrame
) -> RegimeResult:
    """The horizontal regime's result for one federation whose rounds ran elsewhere: scores + ServerApp outcome.

    The params are the regime's own (:func:`fedsim.regimes.horizontal._params`); the metrics and curves are those
    :meth:`fedsim.regimes.horizontal.Horizontal.score` derives from the outcome, except ``fl_seconds`` and
    ``fl_prepare_seconds``, which only the machine that ran the federation could measure.
    """
    from fedsim.regimes.horizontal import dropout_words, federation_params, outcome_metrics

    metrics, steps = outcome_metrics(block, outcome)
    params = federation_params(settings, "deployment", {block: members}, [], dropout_words(outcome))
    return RegimeResult(scores=scores, params=params, metrics=metrics, step_metrics=steps)
