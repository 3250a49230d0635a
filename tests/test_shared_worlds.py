"""The shared worlds of tests/conftest.py are what their docstrings promise; other test modules rely on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedsim.runner import Workspace

DAY = 86_400
BANKS = ("bank_1", "bank_2", "bank_3")


def _cases_lost_in(ws: Workspace, start: int, end: int) -> int:
    t_loss = ws.truth["cases"]["t_loss"]
    return int(((t_loss >= start) & (t_loss < end)).sum())


def _share_also_at(ws: Workspace, partner: str, other: str) -> float:
    """Share of ``partner``'s people that ``other`` also holds (key coverage between two partners)."""
    entities = ws.truth["entities"]
    people = set(entities.loc[entities["partner"] == partner, "person_id"])
    return len(people & set(entities.loc[entities["partner"] == other, "person_id"])) / len(people)


def test_known_answer_workspace_is_the_1k_entity_world_split_12_8(small_known_answer_workspace: Workspace) -> None:
    ws = small_known_answer_workspace
    ka = ws.world.config.known_answer
    assert ws.world.config.mode == "known_answer" and ka.entities == 1000 and ka.placebo
    sizes = ws.partner_sizes
    assert sum(sizes[b] for b in BANKS) == ka.entities  # the banks split the people between them …
    assert {sizes[p] for p in ("telco", "marketplace", "placebo")} == {ka.entities}  # … the others hold everyone
    assert len(ws.truth["cases"]) == round(ka.prevalence * ka.entities)
    assert (ws.split.train_start, ws.split.train_end) == (0, 12 * DAY)
    assert (ws.split.test_start, ws.split.test_end) == (12 * DAY, 20 * DAY)
    assert _cases_lost_in(ws, ws.split.train_start, ws.split.train_end) > 0
    assert _cases_lost_in(ws, ws.split.test_start, ws.split.test_end) > 0


def test_small_realistic_workspace_has_partial_coverage_and_cases_to_find(small_realistic_workspace: Workspace) -> None:
    ws = small_realistic_workspace
    config = ws.world.config
    assert config.mode == "realistic" and (config.population.persons, config.population.days) == (1500, 90)
    assert ws.split.test_start - ws.split.train_end == 5 * DAY and ws.split.test_end == 75 * DAY
    for bank in BANKS:
        assert 0.2 < _share_also_at(ws, bank, "telco") < 0.7, bank  # partial, not full and not none
    assert _cases_lost_in(ws, ws.split.test_start, ws.split.test_end) > 0


def test_world_fixtures_are_their_workspaces_worlds(
    small_known_answer_world: object,
    small_known_answer_workspace: Workspace,
    small_realistic_world: object,
    small_realistic_workspace: Workspace,
) -> None:
    # One world per session: a module asking for the world and one asking for the workspace share the same bytes.
    assert small_known_answer_world is small_known_answer_workspace.world
    assert small_realistic_world is small_realistic_workspace.world
