"""Property test (hypothesis): a mutated experiment or world config is either valid or refused at load with a
message naming the mutated field — never another exception. Validation only (no world is generated).

Mutations start from valid configs and change one field: wrong types, out-of-range and huge numbers, NaN and
±inf, odd strings, unknown keys and deleted keys. Seeded (``derandomize``) so every run tries the same examples.
A small sample of file-level breakage goes through the real CLI (exit 2, one error, no traceback).
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedsim.experiment import ExperimentError, load_experiment, parse_experiment
from synthetic.config import ConfigError, build_config

EXAMPLES = 1000
FEDSIM = str(Path(sys.executable).with_name("fedsim"))

EXPERIMENT: dict[str, Any] = {
    "name": "fuzz",
    "description": "fuzzed",
    "world": {"preset": "small", "seed": 7, "overrides": {"persons": 4000, "days": 120}},
    "split": {"train_days": 70, "gap_days": 7, "test_days": 35, "second_test_days": 0},
    "regimes": ["status_quo", "pooled", "vertical"],
    "coalitions": [["bank_1", "telco"], ["bank_1", "bank_2", "telco"]],
    "models": ["logistic", "gbt"],
    "seeds": [0, 1],
    "training": {"epochs": 5, "max_epochs": 200, "patience": 5, "batch_size": 512, "learning_rate": 0.01},
    "privacy": {"epsilon": [1.0, math.inf], "delta": 1e-5, "max_grad_norm": 1.0, "max_rows_per_entity": 64},
    "federation": {"rounds": 5, "local_epochs": 1, "proximal_mu": 0.01, "label_holder": "bank", "embedding_dim": 8},
    "metrics": {
        "capacity_scales": [0.5, 1],
        "horizons_h": [0, 24],
        "latencies_h": [0, 1],
        "interdiction": [1.0, 0.7],
        "bootstrap": 100,
    },
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["pooled", "status_quo"], "min_seeds": 2},
}

WORLD: dict[str, Any] = {
    "population": {"persons": 3000, "days": 90, "start_date": "2025-01-01", "mean_household_size": 1.9},
    "partners": {"banks": 2, "bank_shares": [0.4, 0.3], "telcos": 1, "marketplaces": 1, "placebo": True},
    "fraud": {"helpdesk": {"victims_per_100k_year": 69, "multiplier": 25, "loss_median_eur": 2500}},
    "signal": {"helpdesk": {"contact": {"telco": 0.8}}},
    "keys": {"phone_coverage": 0.9, "stale_phone_rate": 0.05},
    "behaviour": {"transfers_per_day": 0.35, "new_payee_share": 0.12},
    "mules": {"lifetime_days": 14.0, "forward_hours": 6.0},
    "crews": {"members": 4, "sims_per_crew": 6},
    "barriers": [{"name": "caller id", "day": 30, "fraud_type": "helpdesk", "removes": "caller_id_spoofing"}],
    "known_answer": {"entities": 2000, "bank_shifts": [1.0, 0.5], "bank_case_shares": [0.6, 0.4]},
}

# Values that are wrong for (almost) every field, and values wrong for some: the property accepts either
# outcome, valid or refused-naming-the-field; what it forbids is any other exception.
ODD_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            -1,
            0,
            2**32,
            10**30,
            -(10**30),
            1e308,
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            "",
            " ",
            "NaN",
            "2025-99-99",
            "../../etc",
            "a" * 5000,
            "\u0000",
            "☃",
            [],
            [[]],
            {},
            {"x": 1},
            [1, "a", None],
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)

Path_ = tuple[str | int, ...]


def _paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every path (mapping key / list index) inside ``value``, parents before children."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield (*prefix, i)
            yield from _paths(child, (*prefix, i))


def _parent(data: Any, path: Path_) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _name(path: Path_) -> str:
    """What the error must name: the deepest mapping key on the path (list positions are shown as [i])."""
    return str(next(p for p in reversed(path) if isinstance(p, str)))


MUTATIONS = ("replace", "delete", "unknown_key")


@st.composite
def _mutated(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """(mutated copy of ``base``, kind of mutation, the name its error must contain)."""
    data = copy.deepcopy(base)
    paths = list(_paths(data))
    path = draw(st.sampled_from(paths))
    kind = draw(st.sampled_from(MUTATIONS))
    parent = _parent(data, path)
    if kind == "replace":
        parent[path[-1]] = draw(ODD_VALUES)
    elif kind == "delete":
        del parent[path[-1]]
    else:
        target = parent if isinstance(parent, dict) else data
        key = draw(st.sampled_from(["colour", "Persons", "learning-rate", "seed ", "__class__"]))
        target[key] = 1
        return data, kind, key
    return data, kind, _name(path)


# Cross-field checks name the field that refers to the mutated one (the primary contrast names a regime
# of the experiment; the split must fit the world's days; the primary metric uses the metrics lists).
RELATED = {
    "regimes": ("primary",),
    "capacity_scales": ("primary.capacity_scale",),
    "horizons_h": ("primary.metric",),
    "latencies_h": ("primary.metric",),
    "interdiction": ("primary.metric",),
    "overrides": ("split",),
    "persons": ("split",),
    "days": ("split",),
}


def _named(message: str, name: str) -> bool:
    return any(n in message for n in (name, name.strip(), *RELATED.get(name, ())))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None)
@given(_mutated(EXPERIMENT))
def test_mutated_experiment_is_valid_or_refused_naming_the_field(case: tuple[dict[str, Any], str, str]) -> None:
    data, kind, name = case
    try:
        parse_experiment(data, source="fuzz.yaml")
    except ExperimentError as err:
        assert _named(str(err), name), f"{kind} {name!r}: the error does not name it:\n{err}"
        assert "Traceback" not in str(err) and "pydantic" not in str(err)
    else:
        assert kind != "unknown_key", f"unknown key {name!r} was accepted"


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None)
@given(_mutated(WORLD))
def test_mutated_world_config_is_valid_or_refused_naming_the_field(case: tuple[dict[str, Any], str, str]) -> None:
    data, kind, name = case
    try:
        build_config(overrides=data)
    except ConfigError as err:
        assert _named(str(err), name), f"{kind} {name!r}: the error does not name it:\n{err}"
    else:
        assert kind != "unknown_key", f"unknown key {name!r} was accepted"


YAML_BITS = st.sampled_from(
    [
        "a: ",
        "name: x\n",
        "[",
        "]",
        "{",
        "}",
        "- ",
        "2025-99-99",
        "2025-02-30",
        "&a ",
        "*a",
        "!!python/object ",
        "? ",
        ": ",
        "\n  ",
        "\t",
        "'",
        '"',
        "#",
        "~",
        ".nan",
        "0x1F",
        "1e999",
        "\xe9",
        "%YAML 1.1\n",
        "---\n",
        "...",
    ]
)


@settings(
    max_examples=200, derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    raw=st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.lists(YAML_BITS, max_size=30).map(lambda bits: "".join(bits).encode())
)
def test_any_bytes_as_a_world_config_file_give_a_config_or_a_config_error(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "world.yaml"
    path.write_bytes(raw)
    try:
        build_config(config_file=path)
    except ConfigError as err:
        assert str(path) in str(err) or "=" in str(err)


@settings(
    max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(raw=st.binary(max_size=100) | st.lists(YAML_BITS, max_size=30).map(lambda bits: "".join(bits).encode()))
def test_any_bytes_as_an_experiment_file_give_an_experiment_error(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "exp.yaml"
    path.write_bytes(raw)
    with pytest.raises(ExperimentError):  # never a valid experiment, never another exception
        load_experiment(path)


# --------------------------------------------------------------------------------------------
# The same breakage through the real CLI: exit 2, one error line (plus its field lines), no traceback
# --------------------------------------------------------------------------------------------
def _bad_files(tmp: Path) -> list[tuple[Path, str]]:
    """(experiment path, what stderr must name) for a sample of file-level and field-level breakage."""
    good = yaml.safe_dump(EXPERIMENT)
    cases: list[tuple[str, bytes, str]] = [
        ("latin1.yaml", good.encode() + "description: caf\xe9\n".encode("latin-1"), "UTF-8"),
        ("unhashable.yaml", b"{[1, 2]: 3}\n", "unhashable.yaml"),
        ("deep.yaml", b"[" * 3000 + b"]" * 3000 + b"\n", "nested too deeply"),
        ("empty.yaml", b"", "empty"),
        ("lr.yaml", yaml.safe_dump({**EXPERIMENT, "training": {"learning_rate": 50.0}}).encode(), "learning_rate"),
        ("seed.yaml", yaml.safe_dump({**EXPERIMENT, "seeds": [2**32]}).encode(), "seeds[0]"),
        (
            "holder.yaml",
            yaml.safe_dump({**EXPERIMENT, "federation": {"label_holder": "the banks"}}).encode(),
            "label_holder",
        ),
        (
            "date.yaml",
            yaml.safe_dump(
                {
                    **EXPERIMENT,
                    "world": {**EXPERIMENT["world"], "overrides": {"population": {"start_date": "2025-99-99"}}},
                }
            ).encode(),
            "start_date",
        ),
    ]
    out = []
    for file_name, content, needle in cases:
        path = tmp / file_name
        path.write_bytes(content)
        out.append((path, needle))
    folder = tmp / "folder.yaml"
    folder.mkdir()
    out.append((folder, "folder"))
    return out


def test_bad_experiment_files_through_the_cli_exit_2_with_one_error_and_no_traceback(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for path, needle in _bad_files(tmp_path):
        done = subprocess.run(
            [FEDSIM, "run", str(path), "--tracking-uri", uri],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert done.returncode == 2, (path.name, done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.count("error:") == 1, done.stderr
        assert needle in done.stderr, (needle, done.stderr)
    assert not (tmp_path / ".fedsim" / "worlds").exists()  # nothing was built
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "is empty"),
        (b"population: {persons: 600}\npopulation: {persons: 700}\n", "appears twice"),
        (b"\xff\xfe\x00p", "not UTF-8"),
        (b"{[1, 2]: 3}\n", "allowed: a name"),
        (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        (b"- 1\n- 2\n", "top level must be a mapping"),
        (b"population: {start_date: 2025-99-99}\n", "start_date"),
    ],
)
def test_bad_world_config_file_through_the_cli_exits_2(tmp_path: Path, content: bytes, needle: str) -> None:
    config = tmp_path / "world.yaml"
    config.write_bytes(content)
    out = tmp_path / "w"
    done = subprocess.run(
        [FEDSIM, "world", "generate", "--out", str(out), "--seed", "1", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and needle in done.stderr, done.stderr
    assert not out.exists()  # no (default 20,000-person) world was generated
