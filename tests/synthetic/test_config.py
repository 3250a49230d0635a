"""World config files and fields: file-level problems and limits are refused at load, naming file or field."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthetic.config import ConfigError, build_config


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"# nothing but a comment\n", "is empty"),
        (b"population:\n  persons: 600\n  persons: 700\n", "'persons' appears twice"),
        (b"population: {persons: 600}\npopulation: {days: 30}\n", "'population' appears twice"),
        (b"population: {persons: 6\xe900}\n", "byte 23 is not UTF-8"),
        (b"{[1, 2]: 3}\n", "allowed: a name"),
        (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        (b"- persons\n", "top level must be a mapping"),
        (b"1: 2\n", "key 1; allowed: a field name"),
    ],
)
def test_bad_world_config_file_is_refused_naming_the_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "world.yaml"
    path.write_bytes(content)

    with pytest.raises(ConfigError) as caught:
        build_config(config_file=path)

    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_a_folder_as_world_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        build_config(config_file=tmp_path)


@pytest.mark.parametrize("written", ["'2025-99-99'", "2025-99-99", "'2025-02-30'", "'25-1-1'", "'1066-10-14'"])
def test_start_date_must_be_a_real_date(tmp_path: Path, written: str) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(f"population: {{start_date: {written}}}\n")

    with pytest.raises(ConfigError, match=r"population.start_date = .*not a date"):
        build_config(config_file=path)


@pytest.mark.parametrize("written", ["2024-02-29", "'2024-02-29'"])
def test_start_date_quoted_or_not_is_the_same_date(tmp_path: Path, written: str) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(f"preset: small\npopulation: {{start_date: {written}}}\n")

    assert build_config(config_file=path).population.start_date == "2024-02-29"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"population": {"mean_household_size": float("nan")}}, "population.mean_household_size"),
        ({"behaviour": {"transfers_per_day": float("inf")}}, "behaviour.transfers_per_day"),
        ({"known_answer": {"bank_shifts": [1.0, float("nan")]}}, "known_answer.bank_shifts.1"),
        ({"known_answer": {"bank_shifts": []}}, "bank_shifts = []: allowed: 1 to 10 banks"),
        ({"known_answer": {"bank_case_shares": [0.5, 0.5]}}, "bank_case_shares = [0.5, 0.5]: has 2 entries"),
        ({"partners": {"banks": 2, "bank_shares": [0.3, 0.2, 0.1]}}, "(banks = 2)"),
        ({"barriers": [{"name": "x", "day": 10**12, "fraud_type": "sale", "removes": "payment_link"}]}, "day"),
    ],
)
def test_limits_are_checked_at_load(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(preset="small", overrides=overrides)

    assert expected in str(caught.value)


def test_shipped_presets_still_load() -> None:
    from synthetic.config import preset_names

    for name in preset_names():
        assert build_config(preset=name).population.start_date == "2025-01-01"
