"""Every experiment file the project ships loads and expands into a grid a researcher can run.

A typo in a shipped YAML (a regime that was renamed, a field that moved) would otherwise only show when
someone runs it for an hour; here it fails in a second, with the loader's own message."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedsim.experiment import expand, load_experiment

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


def test_the_project_ships_experiments() -> None:
    assert len(SHIPPED) >= 5  # the demo, the headline, the privacy sweeps and issue studies


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_experiment_loads_and_expands(path: Path) -> None:
    spec = load_experiment(path)
    kinds = spec.world.world_config().partner_kinds()
    cells = expand(spec, list(kinds), kinds=kinds)
    assert cells, f"{path.name}: the grid is empty"
    assert {c.regime for c in cells} <= set(spec.regimes)
    assert len({c.config_hash for c in cells}) == len(cells)  # every cell is its own run
