"""`fedsim deploy write-app`: the Flower app directory for a cross-machine run of one horizontal grid cell.

The coordinator runs this once; the directory it writes carries every setting of that cell — rounds,
strategy, secure aggregation, training and privacy — exactly as :class:`HorizontalSettings.from_context`
would give the simulation, so a deployment trains what the experiment says (the earlier `write-app`
built its settings without `privacy`, and a cross-machine run silently trained without DP).
"""

from __future__ import annotations

from pathlib import Path

from fedsim.errors import FedsimError
from fedsim.experiment import RunSpec, expand, load_experiment
from fedsim.runner import Workspace, load_or_generate_world, partners_of


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

    spec = load_experiment(experiment)
    partners = partners_of(spec)
    kinds = {p: p.rstrip("0123456789").rstrip("_") for p in partners}
    cell = horizontal_cell(expand(spec, partners, kinds=kinds), seed=seed, epsilon=epsilon)
    root = Path(workdir)
    world = load_or_generate_world(spec, root / "worlds")
    ctx = Workspace.build(spec, world, root / "artifacts").context(cell)
    members = [p for p in cell.coalition if kinds[p] == "bank"] or list(cell.coalition)
    return write_app(ctx, HorizontalSettings.from_context(ctx), dest, num_partners=len(members), out_dir=out_dir)
