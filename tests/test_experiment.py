"""Experiment files: validation at the boundary, grid expansion, config hashes, resumable runs."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from fedsim.experiment import (
    ExperimentError,
    RunFailedError,
    RunResult,
    RunSpec,
    expand,
    load_experiment,
    parse_experiment,
    run_grid,
)
from fedsim.regimes.mo_alerts import MIN_COUNT, MoAlertsSettings

PARTNERS = ["bank_1", "bank_2", "bank_3", "telco", "marketplace"]

DEMO_YAML = """\
name: demo
description: "demo study"
world:
  preset: small
  seed: 7
  overrides: {persons: 4000, days: 120}
split: {train_days: 70, gap_days: 7, test_days: 35}
regimes: [status_quo, siloed, watchlist, pooled]
coalitions: [[bank_1, bank_2, bank_3, telco, marketplace], [bank_1, telco]]
models: [logistic, mlp, gbt]
seeds: [0, 1, 2]
training: {epochs: 5, batch_size: 512, learning_rate: 0.01, negative_rate: 0.1}
privacy: {epsilon: [inf]}
metrics:
  capacity_scales: [0.25, 0.5, 1, 2, 4]
  horizons_h: [0, 1, 6, 24, 72]
  latencies_h: [0, 1, 4]
  interdiction: [1.0, 0.7]
  bootstrap: 1000
primary: {metric: ed_h0, capacity_scale: 1, contrast: [pooled, status_quo]}
"""


def demo_dict() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(DEMO_YAML)


def one_cell_dict() -> dict[str, Any]:
    """A spec that expands to exactly one cell: pooled on bank_1+telco, logistic, seed 0."""
    data = demo_dict()
    data.update(regimes=["pooled"], coalitions=[["telco", "bank_1"]], models=["logistic"], seeds=[0])
    data.pop("primary")
    return data


def only_cell(data: dict[str, Any]) -> RunSpec:
    (cell,) = expand(parse_experiment(data), PARTNERS)
    return cell


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------
def test_demo_file_loads_with_its_values(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO_YAML)

    spec = load_experiment(path)

    assert spec.name == "demo"
    assert isinstance(spec.coalitions, tuple) and spec.coalitions[1] == ("bank_1", "telco")
    assert spec.privacy.epsilon == (float("inf"),)  # YAML's bare `inf` is text; it must become a float
    assert spec.split.windows() == {"train": (0, 70), "gap": (70, 77), "test": (77, 112)}


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[leaf] = value
    return out


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("regimes", ["pooled", "teleport"], ["regimes[1]", "'teleport'", "allowed", "'horizontal'"]),
        ("coalitions", [["bank_1", "telco"], []], ["coalitions[1]", "[]", "must not be empty"]),
        ("coalitions", [["bank_1", "telco", "bank_1"]], ["coalitions[0][2]", "'bank_1'", "twice"]),
        ("coalitions", "everyone", ["coalitions", "'everyone'", "'all'"]),
        ("seeds", [0, -1], ["seeds[1]", "-1", ">= 0"]),
        ("seeds", [0, 1.5], ["seeds[1]", "1.5", "whole number"]),
        ("world.seed", -3, ["world.seed", "-3", ">= 0"]),
        ("world.colour", "blue", ["world.colour", "unknown key", "preset, config, seed, overrides"]),
        ("colour", "blue", ["colour", "unknown key", "regimes"]),
        ("split.test_days", 0, ["split.test_days", "0", ">= 1"]),
        ("split.test_days", 60, ["split", "137 days", "at most the world's 120 days"]),
        ("world.overrides.persons", 10, ["world", "population.persons", "10", "500"]),
        ("world.overrides.partners", {"banks": 0}, ["world", "partners.banks", "0"]),
        ("models", ["logistic", "forest"], ["models[1]", "'forest'", "'gbt'"]),
        ("privacy.epsilon", [1, "lots"], ["privacy.epsilon[1]", "'lots'"]),
        ("primary.metric", "ed_h5", ["primary.metric", "'ed_h5'", "ed_h<h>", "[0, 1, 6, 24, 72]"]),
        ("primary.contrast", ["pooled", "vertical"], ["primary.contrast[1]", "'vertical'", "status_quo"]),
        ("name", "My Study", ["name", "'My Study'", "lowercase"]),
        ("metrics.capacity_scales", [1, 0], ["metrics.capacity_scales[1]", "0", "allowed: > 0"]),
        ("primary.capacity_scale", 3, ["primary.capacity_scale", "3", "[0.25, 0.5, 1, 2, 4]"]),
        # limits of the inner layers, checked at load (before any world is built or model trained)
        ("training.learning_rate", 11.0, ["training.learning_rate", "11.0", "<= 10"]),
        ("training.epochs", 10_001, ["training.epochs", "10001", "<= 10000"]),
        ("training.batch_size", 10**8, ["training.batch_size", "<= 10000000"]),
        ("metrics.horizons_h", [0, 2e6], ["metrics.horizons_h[1]", "2000000.0", "<= 1000000.0"]),
        ("metrics.latencies_h", [float("nan")], ["metrics.latencies_h[0]", "finite"]),
        ("seeds", [0, 2**32], ["seeds[1]", "4294967296", "<= 4294967295"]),
        ("world.seed", 2**40, ["world.seed", "<= 4294967295"]),
        ("metrics.bootstrap", 10**9, ["metrics.bootstrap", "<= 1000000"]),
        ("federation", {"label_holder": "the banks"}, ["federation.label_holder", "'the banks'", "lowercase"]),
        (
            "federation",
            {"label_holder": "banks"},
            ["federation.label_holder", "'banks'", "bank, telco, marketplace, bank_1"],
        ),
        ("world.overrides.population", {"start_date": "2025-99-99"}, ["world", "population.start_date", "not a date"]),
    ],
)
def test_bad_field_is_named_with_value_and_allowed(field: str, value: Any, expected: list[str]) -> None:
    data = _set(demo_dict(), field, value)

    with pytest.raises(ExperimentError) as caught:
        parse_experiment(data, source="demo.yaml")

    message = str(caught.value)
    for part in expected:
        assert part in message
    assert "pydantic" not in message and "Traceback" not in message


def test_world_needs_exactly_one_of_preset_or_config() -> None:
    data = _set(demo_dict(), "world", {"seed": 1})

    with pytest.raises(ExperimentError, match=r"world = .*exactly one of preset"):
        parse_experiment(data)


@pytest.mark.parametrize("missing", ["world", "seeds", "regimes"])
def test_missing_required_field_is_named(missing: str) -> None:
    data = demo_dict()
    del data[missing]

    with pytest.raises(ExperimentError, match=rf"- {missing}: required field is missing"):
        parse_experiment(data)


def test_partner_not_in_world_is_named_by_position() -> None:
    data = _set(demo_dict(), "coalitions", [["bank_1", "telco"], ["bank_9", "telco"]])
    spec = parse_experiment(data)

    with pytest.raises(ExperimentError) as caught:
        expand(spec, PARTNERS)

    message = str(caught.value)
    assert "coalitions[1][0] = 'bank_9'" in message
    assert "bank_1, bank_2, bank_3, telco, marketplace" in message


def test_split_longer_than_world_is_refused() -> None:
    spec = parse_experiment(demo_dict())  # needs 112 days

    with pytest.raises(ExperimentError, match=r"split = 112 days.*100 days"):
        spec.validate_against(PARTNERS, horizon_days=100)
    spec.validate_against(PARTNERS, horizon_days=112)  # exactly fits


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: demo\nworld: {preset: small, seed: 7\nsplit: {}\n")

    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)

    assert str(path) in str(caught.value)
    assert "line 3" in str(caught.value)


def test_label_holder_partner_name_of_the_world_is_accepted() -> None:
    data = _set(demo_dict(), "federation", {"label_holder": "bank_2"})

    assert parse_experiment(data).federation.label_holder == "bank_2"
    with pytest.raises(ExperimentError, match=r"federation.label_holder = 'bank_7'"):
        parse_experiment(_set(demo_dict(), "federation", {"label_holder": "bank_7"}))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"name: caf\xe9\n", "byte 9 is not UTF-8"),
        (b"{[1, 2]: 3}\n", "allowed: a name"),
        (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        (b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 40)), "nested too deeply"),
        (b"", "is empty"),
        (b"# only a comment\n", "is empty"),
    ],
)
def test_file_level_problems_name_the_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)

    with pytest.raises(ExperimentError) as caught:
        load_experiment(path)

    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_folder_given_as_experiment_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match=r"is a folder; allowed: a YAML file"):
        load_experiment(tmp_path)


def test_yaml_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(DEMO_YAML + "seeds: [5]\n")

    with pytest.raises(ExperimentError, match=r"line 21.*'seeds' appears twice"):
        load_experiment(path)


# --------------------------------------------------------------------------------------------
# Grid expansion
# --------------------------------------------------------------------------------------------
def test_demo_grid_size_by_hand() -> None:
    spec = parse_experiment(demo_dict())

    cells = expand(spec, PARTNERS)

    # status_quo 1 coalition, siloed 5 single partners, watchlist and pooled 2 coalitions each;
    # × 3 models × 3 seeds × 1 ε = (1 + 5 + 2 + 2) × 9 = 90
    assert len(cells) == 90
    assert sum(c.regime == "siloed" for c in cells) == 45


def test_grid_rules_for_status_quo_gbt_dp_and_duplicates() -> None:
    data = demo_dict()
    data.update(
        regimes=["status_quo", "siloed", "pooled", "horizontal"],
        coalitions=[["bank_1", "bank_2"], ["telco", "bank_1"], ["bank_1", "telco"], ["bank_2"]],
        models=["logistic", "gbt"],
        seeds=[0, 1],
        privacy={"epsilon": [float("inf"), 1.0]},
    )
    partners = ["bank_1", "bank_2", "telco", "marketplace"]

    cells = expand(parse_experiment(data), partners)

    # distinct coalitions: {bank_1,bank_2}, {bank_1,telco}, {bank_2}; per coalition: logistic 2 ε × 2
    # seeds = 4, gbt only at ε = inf: 2 → 6. status_quo 1 × 6, siloed 3 partners × 6,
    # pooled 2 multi-partner × 6, horizontal 2 × 4 (no gbt in a federated regime) = 6+18+12+8 = 44
    assert len(cells) == 44
    status_quo = {c.coalition for c in cells if c.regime == "status_quo"}
    assert status_quo == {("bank_1", "bank_2", "marketplace", "telco")}
    assert {c.coalition for c in cells if c.regime == "siloed"} == {("bank_1",), ("bank_2",), ("telco",)}
    assert not any(c.model == "gbt" and c.epsilon != float("inf") for c in cells)


def test_grid_is_deduplicated_sorted_and_deterministic() -> None:
    spec = parse_experiment(demo_dict())

    first, second = expand(spec, PARTNERS), expand(spec, list(reversed(PARTNERS)))

    assert [c.config_hash for c in first] == [c.config_hash for c in second]
    assert len({c.config_hash for c in first}) == len(first)
    assert all(list(c.coalition) == sorted(c.coalition) for c in first)


def test_all_means_every_partner() -> None:
    data = _set(demo_dict(), "coalitions", "all")
    data["regimes"] = ["siloed", "pooled"]
    data["primary"]["contrast"] = ["pooled", "siloed"]

    cells = expand(parse_experiment(data), PARTNERS)

    assert {c.coalition for c in cells if c.regime == "pooled"} == {tuple(sorted(PARTNERS))}
    assert {c.coalition[0] for c in cells if c.regime == "siloed"} == set(PARTNERS)


def _lattice_cells(coalitions: Any, regimes: list[str]) -> list[RunSpec]:
    data = demo_dict()
    data.update(regimes=regimes, coalitions=coalitions, models=["logistic"], seeds=[0])
    data["primary"]["contrast"] = [regimes[-1], regimes[0]]
    return expand(parse_experiment(data), PARTNERS, kinds={p: p.split("_")[0] for p in PARTNERS})


def test_lattice_runs_every_nonempty_subset_singletons_as_siloed() -> None:
    cells = _lattice_cells("lattice", ["siloed", "pooled"])

    pooled = {c.coalition for c in cells if c.regime == "pooled"}
    silos = {c.coalition for c in cells if c.regime == "siloed"}
    assert len(pooled) == 2**5 - 1 - 5 and all(len(c) >= 2 for c in pooled)
    assert silos == {(p,) for p in PARTNERS}
    assert tuple(sorted(PARTNERS)) in pooled and ("bank_1", "telco") in pooled


def test_lattice_of_chosen_partners_and_refused_coalitions_are_listed_not_errors() -> None:
    from fedsim.experiment.grid import refused

    lattice = {"lattice": ["bank_1", "bank_2", "telco"], "max_exact": 5}
    cells = _lattice_cells(lattice, ["siloed", "horizontal"])
    horizontal = {c.coalition for c in cells if c.regime == "horizontal"}
    # horizontal needs two partners of one kind: bank_1+telco and bank_2+telco are skipped, not an error
    assert horizontal == {("bank_1", "bank_2"), ("bank_1", "bank_2", "telco")}
    data = demo_dict()
    data.update(regimes=["siloed", "horizontal"], coalitions=lattice, models=["logistic"], seeds=[0])
    data["primary"]["contrast"] = ["horizontal", "siloed"]
    skipped = refused(parse_experiment(data), PARTNERS, kinds={p: p.split("_")[0] for p in PARTNERS})
    assert {(r, c) for r, c, _ in skipped} == {("horizontal", ("bank_1", "telco")), ("horizontal", ("bank_2", "telco"))}
    assert all("two partners of one kind" in why for _, _, why in skipped)


def test_lattice_above_max_exact_samples_permutation_prefixes() -> None:
    from fedsim.evaluation.value import mask_of, permutation_coalitions, sample_permutations

    lattice = {"lattice": PARTNERS, "max_exact": 3, "permutations": 2, "permutation_seed": 4}
    spec = parse_experiment(_set(demo_dict(), "coalitions", lattice))
    coalitions = spec.coalition_list(PARTNERS)
    expected = set(permutation_coalitions(sample_permutations(5, 2, 4)))
    assert {mask_of(c, PARTNERS) for c in coalitions} == expected
    assert len(coalitions) < 2**5 - 1 and tuple(sorted(PARTNERS)) in coalitions
    again = parse_experiment(_set(demo_dict(), "coalitions", {**lattice, "permutation_seed": 5}))
    assert set(again.coalition_list(PARTNERS)) != set(coalitions)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"lattice": ["bank_1", "bank_1"]}, ["coalitions.lattice[1]", "twice"]),
        ({"lattice": ["bank_1"], "max_exact": 0}, ["coalitions.lattice.max_exact = 0", "allowed: >= 1"]),
        ({"latice": ["bank_1"]}, ["latice", "unknown key"]),
    ],
)
def test_bad_lattice_is_named(value: Any, expected: list[str]) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(_set(demo_dict(), "coalitions", value))
    for part in expected:
        assert part in str(caught.value)


def test_lattice_partner_not_in_world_is_named() -> None:
    spec = parse_experiment(_set(demo_dict(), "coalitions", {"lattice": ["bank_1", "bank_9"]}))
    with pytest.raises(ExperimentError, match=r"coalitions.lattice\[1\] = 'bank_9': not a partner"):
        spec.validate_against(PARTNERS)


def test_secret_file_resolves_relative_to_the_experiment_and_enters_the_hash_by_fingerprint(tmp_path: Path) -> None:
    import yaml

    def hash_with(name: str, content: bytes) -> str:
        (tmp_path / name).write_bytes(content)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(_set(one_cell_dict(), "world.secret_file", name)))
        spec = load_experiment(path)
        assert spec.world.secret_file == (tmp_path / name).resolve()
        return expand(spec, PARTNERS)[0].config_hash

    first = hash_with("a.secret", b"a" * 32)
    assert hash_with("b.secret", b"a" * 32) == first  # the same bytes elsewhere: the same world
    assert hash_with("c.secret", b"c" * 32) != first  # another secret is another world
    assert first != only_cell(one_cell_dict()).config_hash  # and a world without one differs too
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(_set(one_cell_dict(), "world.secret_file", "nope.txt")))
    with pytest.raises(ExperimentError, match="world.secret_file.*no such file"):
        load_experiment(tmp_path / "x.yaml")


def test_admits_drops_cells_a_regime_cannot_run() -> None:
    data = demo_dict()
    data.update(regimes=["horizontal"], models=["logistic"], seeds=[0])
    data.pop("primary")

    def banks_only(regime: str, coalition: tuple[str, ...]) -> bool:
        return all(p.startswith("bank") for p in coalition)

    with pytest.raises(ExperimentError, match="expands to no runs"):
        expand(parse_experiment(data), PARTNERS, admits=banks_only)


@pytest.mark.parametrize("regime", ["vertical", "hybrid"])
@pytest.mark.parametrize(
    ("key", "value"), [("strategy", "fedprox"), ("proximal_mu", 0.5), ("secure_aggregation", True)]
)
def test_split_learning_refuses_settings_it_would_ignore(regime: str, key: str, value: object) -> None:
    data = one_cell_dict()
    data.update(regimes=[regime], federation={key: value})

    with pytest.raises(ExperimentError, match=rf"federation\.{key} = .*: regime {regime} cannot honour it"):
        parse_experiment(data)


def test_horizontal_keeps_its_federation_settings_and_central_regimes_get_none() -> None:
    data = demo_dict()
    data.update(regimes=["horizontal", "pooled"], models=["logistic", "gbt"], seeds=[0])
    data.update(federation={"strategy": "fedprox", "proximal_mu": 0.5})
    data["primary"]["contrast"] = ["horizontal", "pooled"]

    cells = expand(parse_experiment(data), PARTNERS, kinds={p: p.rstrip("_0123456789") for p in PARTNERS})

    fl = [c for c in cells if c.regime == "horizontal"]
    assert fl and all(c.federation is not None and c.federation.strategy == "fedprox" for c in fl)
    assert all(c.model != "gbt" for c in fl)  # horizontal trains torch models only
    assert {c.coalition for c in fl} == {
        ("bank_1", "bank_2", "bank_3", "marketplace", "telco")
    }  # bank_1+telco: no pair
    assert all(c.federation is None for c in cells if c.regime == "pooled")


# --------------------------------------------------------------------------------------------
# Regime settings and regime traits
# --------------------------------------------------------------------------------------------
def mo_alerts_dict(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """mo_alerts beside status quo on the full chain, two models, two seeds; optional regime_settings."""
    data = demo_dict()
    data.update(regimes=["status_quo", "mo_alerts"], coalitions="all", models=["logistic", "gbt"], seeds=[0, 1])
    data["primary"]["contrast"] = ["mo_alerts", "status_quo"]
    if settings is not None:
        data["regime_settings"] = settings
    return data


def test_regime_settings_reach_only_the_cells_of_their_regime() -> None:
    cells = expand(parse_experiment(mo_alerts_dict({"mo_alerts": {"min_count": 20}})), PARTNERS)

    mo = [c for c in cells if c.regime == "mo_alerts"]
    assert len(mo) == 4 and all(c.regime_settings == {"min_count": 20} for c in mo)
    assert all(c.typed_settings() == MoAlertsSettings(min_count=20) for c in mo)
    assert all(c.regime_settings is None and c.typed_settings() is None for c in cells if c.regime == "status_quo")


def test_a_regime_with_settings_gets_its_defaults_when_the_experiment_sets_none() -> None:
    cells = [c for c in expand(parse_experiment(mo_alerts_dict()), PARTNERS) if c.regime == "mo_alerts"]

    assert cells and all(c.typed_settings() == MoAlertsSettings(min_count=MIN_COUNT) for c in cells)
    assert all(c.regime_settings == {"min_count": MIN_COUNT} for c in cells)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"mo_alerts": {"min_count": 0}}, ["regime_settings.mo_alerts.min_count = 0", ">= 1"]),
        ({"mo_alerts": {"min_count": 2.5}}, ["regime_settings.mo_alerts.min_count = 2.5", "whole number"]),
        ({"mo_alerts": {"size": 3}}, ["regime_settings.mo_alerts.size", "unknown key", "allowed keys here: min_count"]),
        ({"mo_alerts": 5}, ["regime_settings.mo_alerts = 5", "mapping"]),
        ({"teleport": {}}, ["regime_settings.teleport", "not a registered regime", "'mo_alerts'"]),
        ({"status_quo": {"x": 1}}, ["regime_settings.status_quo", "has no settings", "allowed: settings of mo_alerts"]),
    ],
)
def test_bad_regime_settings_are_named_with_value_and_allowed(settings: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment(mo_alerts_dict(settings), source="mo.yaml")

    message = str(caught.value)
    for part in expected:
        assert part in message, message
    assert "pydantic" not in message and "Traceback" not in message


def test_settings_of_a_regime_the_experiment_does_not_run_are_refused() -> None:
    data = one_cell_dict()
    data["regime_settings"] = {"mo_alerts": {"min_count": 20}}

    with pytest.raises(ExperimentError, match=r"regime_settings\.mo_alerts = .*not a regime of this experiment"):
        parse_experiment(data)


def test_a_cell_refuses_settings_its_regime_would_not_accept() -> None:
    cell = next(c for c in expand(parse_experiment(mo_alerts_dict()), PARTNERS) if c.regime == "mo_alerts")
    other = next(c for c in expand(parse_experiment(mo_alerts_dict()), PARTNERS) if c.regime == "status_quo")

    with pytest.raises(ValueError, match="min_count"):
        RunSpec.model_validate({**dict(cell), "regime_settings": {"min_count": 0}})
    with pytest.raises(ValueError, match="has no settings"):
        RunSpec.model_validate({**dict(other), "regime_settings": {"min_count": 20}})


def test_regime_settings_enter_the_hash_of_their_regime_only_and_defaults_keep_the_old_hash() -> None:
    default = expand(parse_experiment(mo_alerts_dict()), PARTNERS)
    explicit = expand(parse_experiment(mo_alerts_dict({"mo_alerts": {"min_count": 10}})), PARTNERS)
    changed = expand(parse_experiment(mo_alerts_dict({"mo_alerts": {"min_count": 20}})), PARTNERS)

    assert [c.config_hash for c in explicit] == [c.config_hash for c in default]
    for before, after in zip(default, changed, strict=True):
        assert (before.config_hash != after.config_hash) == (before.regime == "mo_alerts"), before.run_name
    # a cell built as before regimes had settings (none carried) hashes like a cell at the defaults
    for cell in default:
        assert cell.model_copy(update={"regime_settings": None}).config_hash == cell.config_hash
        assert "regime_settings" not in cell.result_fields()


def test_rules_grid_runs_one_model_at_the_non_dp_point_only() -> None:
    data = demo_dict()
    data.update(regimes=["rules", "status_quo"], models=["mlp", "logistic", "gbt"], seeds=[0, 1])
    data.update(privacy={"epsilon": [1.0, float("inf")]})
    data["primary"]["contrast"] = ["status_quo", "rules"]

    cells = expand(parse_experiment(data), PARTNERS)

    rules = [c for c in cells if c.regime == "rules"]
    assert [(c.model, c.epsilon, c.privacy, c.seed) for c in rules] == [("mlp", float("inf"), None, s) for s in (0, 1)]
    # status quo trains models under DP: mlp and logistic × 2 ε, gbt at ε = inf only, × 2 seeds
    assert sum(c.regime == "status_quo" for c in cells) == (2 * 2 + 1) * 2


def test_a_regime_that_cannot_train_under_dp_has_no_cells_in_a_dp_only_sweep() -> None:
    data = demo_dict()
    data.update(regimes=["rules", "status_quo"], models=["logistic"], seeds=[0], privacy={"noise_multiplier": [1.0]})
    data["primary"]["contrast"] = ["status_quo", "rules"]

    cells = expand(parse_experiment(data), PARTNERS)

    assert {c.regime for c in cells} == {"status_quo"}


# --------------------------------------------------------------------------------------------
# Names and hashes
# --------------------------------------------------------------------------------------------
def test_run_name_and_words() -> None:
    cell = only_cell(one_cell_dict())

    assert cell.run_name == "pooled|bank_1+telco|logistic|seed0|eps=inf"
    assert cell.describe() == "pooled on bank_1+telco, logistic, seed 0"


_HASH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from fedsim.experiment import expand, parse_experiment
    data = json.loads(sys.argv[1])
    print(json.dumps([c.config_hash for c in expand(parse_experiment(data), sys.argv[2].split(","))]))
    """
)


def test_config_hash_is_the_same_in_another_process() -> None:
    data = demo_dict()
    data["privacy"] = {"epsilon": ["inf", 0.5]}
    here = [c.config_hash for c in expand(parse_experiment(data), PARTNERS)]
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a different str hash seed than this process

    out = subprocess.run(
        [sys.executable, "-c", _HASH_SCRIPT, json.dumps(data), ",".join(PARTNERS)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )

    assert json.loads(out.stdout) == here


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("world.seed", 8),
        ("world.preset", "default"),
        ("world.overrides.persons", 5000),
        ("split.gap_days", 8),
        ("split.second_test_days", 5),
        ("training.learning_rate", 0.02),
        ("training.negative_rate", 0.2),
        ("metrics.bootstrap", 999),
        ("metrics.capacity_scales", [0.5, 1]),
        ("privacy.epsilon", [2.0]),
        ("seeds", [1]),
        ("models", ["mlp"]),
        ("regimes", ["watchlist"]),
        ("coalitions", [["bank_1", "bank_2"]]),
    ],
)
def test_config_hash_changes_with_every_result_field(field: str, value: Any) -> None:
    base = only_cell(one_cell_dict())

    changed = only_cell(_set(one_cell_dict(), field, value))

    assert changed.config_hash != base.config_hash


@pytest.mark.parametrize(
    ("section", "old", "value", "new"),
    [("metrics", "capacities", [0.005], "capacity_scales"), ("primary", "capacity", 0.005, "capacity_scale")],
)
def test_old_fraction_capacity_fields_are_refused_with_the_new_name(
    section: str, old: str, value: Any, new: str
) -> None:
    data = demo_dict()
    data[section] = {**data[section], old: value}
    data[section].pop(new, None)

    with pytest.raises(ExperimentError) as caught:
        parse_experiment(data, source="old.yaml")

    message = str(caught.value)
    assert f"{old} = {value!r}" in message and f"{section}.{new}" in message and "calibrated" in message


@pytest.mark.parametrize(("field", "value"), [("description", "another text"), ("name", "renamed")])
def test_config_hash_ignores_name_and_description(field: str, value: Any) -> None:
    base = only_cell(one_cell_dict())

    same = only_cell(_set(one_cell_dict(), field, value))

    assert same.config_hash == base.config_hash


def test_world_config_hashed_by_content_not_path(tmp_path: Path) -> None:
    for folder in ("a", "b", "c"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "world.yaml").write_text("preset: small\npopulation: {persons: 1000}\n")
    (tmp_path / "c" / "world.yaml").write_text("preset: small\npopulation: {persons: 2000}\n")
    data = _set(one_cell_dict(), "world", {"config": "world.yaml", "seed": 1})

    a, b, c = (only_cell_from(data, tmp_path / folder) for folder in ("a", "b", "c"))

    assert a.config_hash == b.config_hash  # moved file, same content
    assert a.config_hash != c.config_hash


def test_world_file_equal_to_preset_plus_overrides_hashes_the_same(tmp_path: Path) -> None:
    (tmp_path / "world.yaml").write_text("preset: small\npopulation: {persons: 1000}\n")
    from_file = _set(one_cell_dict(), "world", {"config": "world.yaml", "seed": 7})
    overrides = {"population": {"persons": 1000}}  # nested: shorthand `persons` also sets known_answer
    from_preset = _set(one_cell_dict(), "world", {"preset": "small", "seed": 7, "overrides": overrides})

    a, b = only_cell_from(from_file, tmp_path), only_cell(from_preset)

    assert a.world_digest == b.world_digest and a.config_hash == b.config_hash


def only_cell_from(data: dict[str, Any], folder: Path) -> RunSpec:
    (cell,) = expand(parse_experiment(data, base_dir=folder), PARTNERS)
    return cell


# --------------------------------------------------------------------------------------------
# Resumable grid on a real sqlite MLflow store
# --------------------------------------------------------------------------------------------
# The store is tests/conftest.py's session fixture ``store_uri`` (one sqlite store per test process).


def four_cells() -> tuple[Any, list[RunSpec]]:
    data = one_cell_dict()
    data.update(seeds=[0, 1, 2, 3], metrics={"bootstrap": 10})
    spec = parse_experiment(data)
    return spec, expand(spec, PARTNERS)


def _result(cell: RunSpec) -> RunResult:
    return RunResult(
        params={"delta": 1e-5}, metrics={"ap": 0.1 * cell.seed, "ap_lo": 0.0, "ap_hi": 0.5}, tags={"note": "test"}
    )


@pytest.mark.xdist_group("mlflow")
def test_failed_cell_then_resume_runs_only_what_is_missing(store_uri: str) -> None:
    from fedsim.tracking import Tracker

    spec, cells = four_cells()
    tracker = Tracker(store_uri, "resume-after-failure")
    first_calls: list[str] = []

    def failing(cell: RunSpec) -> RunResult:
        first_calls.append(cell.run_name)
        if len(first_calls) == 3:
            raise ValueError("disk full")
        return _result(cell)

    with pytest.raises(RunFailedError, match=r"run 3/4.*seed 2.*disk full"):
        run_grid(spec, cells, failing, tracker, world_hash="w0", progress=False)
    after_failure = tracker.runs_table()
    statuses = [status for cell in cells for _, status in tracker.find_runs(cell.config_hash)]

    second_calls: list[str] = []

    def working(cell: RunSpec) -> RunResult:
        second_calls.append(cell.run_name)
        return _result(cell)

    summary = run_grid(spec, cells, working, tracker, world_hash="w0", progress=False)
    table = tracker.runs_table()
    per_cell = [tracker.find_runs(cell.config_hash) for cell in cells]

    assert len(after_failure) == 2 and sorted(statuses) == ["FAILED", "FINISHED", "FINISHED"]
    assert second_calls == [cells[2].run_name, cells[3].run_name]  # cells 1-2 reused, not re-executed
    assert (summary.executed, summary.reused, summary.replaced) == (2, 2, 1)
    assert len(table) == 4
    assert [[status for _, status in runs] for runs in per_cell] == [["FINISHED"]] * 4  # failed run gone
    assert sorted(table["config_hash"]) == sorted(c.config_hash for c in cells)
    assert sorted(table["ap"]) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert set(table["run_id"]) == set(summary.run_ids)


@pytest.mark.xdist_group("mlflow")
def test_orphan_running_run_is_replaced(store_uri: str) -> None:
    from fedsim.tracking import CONFIG_HASH_TAG, Tracker

    spec, cells = four_cells()
    cells = cells[:1]
    tracker = Tracker(store_uri, "orphan-running")
    # What a killed process leaves behind: a RUNNING run carrying the cell's config hash.
    orphan = tracker.client.create_run(
        tracker.experiment_id, run_name=cells[0].run_name, tags={CONFIG_HASH_TAG: cells[0].config_hash}
    ).info.run_id

    summary = run_grid(spec, cells, _result, tracker, progress=False)
    found = tracker.find_runs(cells[0].config_hash)

    assert tracker.client.get_run(orphan).info.lifecycle_stage == "deleted"
    assert found == [(summary.run_ids[0], "FINISHED")]
    assert summary.run_ids[0] != orphan
    assert (summary.executed, summary.replaced) == (1, 1)


@pytest.mark.xdist_group("mlflow")
def test_progress_bar_prints_reuse_in_words(store_uri: str, capsys: pytest.CaptureFixture[str]) -> None:
    from fedsim.tracking import Tracker

    spec, cells = four_cells()
    tracker = Tracker(store_uri, "progress-words")
    run_grid(spec, cells[:1], _result, tracker, progress=False)

    summary = run_grid(spec, cells[:1], _result, tracker, progress=True)

    out = capsys.readouterr().err
    words = "run 1/1: pooled on bank_1+telco, logistic, seed 0"
    expected = f"{words} — reusing finished run {summary.run_ids[0]}"
    assert expected in out


@pytest.mark.xdist_group("mlflow")
def test_a_rival_stamped_earlier_but_stored_later_wins_and_ours_leaves_no_metrics(store_uri: str) -> None:
    """The race CI found: process B's run reaches the store before A's although A's start time is earlier.

    Both pass the lease check at the start; the check before logging must make exactly one of them keep
    the cell. Here the rival (A) appears while our cell is executing, with an earlier start time.
    """
    import time

    from mlflow.entities import ViewType

    from fedsim.tracking import CONFIG_HASH_TAG, HEARTBEAT_TAG, OWNER_TAG, Tracker

    spec, cells = four_cells()
    tracker = Tracker(store_uri, "late-commit-race")
    rival: list[str] = []

    def slow_with_rival(cell: RunSpec) -> RunResult:
        tags = {CONFIG_HASH_TAG: cell.config_hash, OWNER_TAG: "elsewhere|1|1", HEARTBEAT_TAG: f"{time.time():.3f}"}
        stamped_earlier = int(time.time() * 1000) - 60_000
        run = tracker.client.create_run(tracker.experiment_id, start_time=stamped_earlier, tags=tags)
        rival.append(run.info.run_id)
        return _result(cell)

    summary = run_grid(spec, cells[:1], slow_with_rival, tracker, progress=False)
    ours = tracker.client.search_runs([tracker.experiment_id], run_view_type=ViewType.DELETED_ONLY)

    assert (summary.executed, summary.elsewhere) == (0, 1)  # the rival keeps the cell
    assert [run_id for run_id, _ in tracker.find_runs(cells[0].config_hash)] == rival
    assert len(ours) == 1 and not ours[0].data.metrics  # our run is withdrawn before it logged anything
