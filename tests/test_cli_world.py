"""`fedsim world generate` / `describe` from the command line: bad input and the JSON description.

Bad input must exit with code 2 and one readable message that names the field, the value and what is
allowed — no traceback — and must leave nothing half-written behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedsim.cli import app
from synthetic.calibration import NL_PERSONS_15PLUS
from synthetic.world import read_world

runner = CliRunner()
TINY = ["--persons", "600", "--days", "30"]


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, re.sub(r"\s+", " ", result.output)  # output = stdout + stderr; rich wraps lines


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def _assert_clean_failure(code: int, text: str, *must_name: str) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    assert text.count("error:") == 1, text
    for word in must_name:
        assert word in text, f"{word!r} not in {text!r}"


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
def test_invalid_preset_names_the_value_and_the_allowed_presets(tmp_path: Path) -> None:
    code, text = _run("world", "generate", "--preset", "huge", "--seed", "1", "--out", str(tmp_path / "w"))
    _assert_clean_failure(code, text, "preset", "'huge'", "allowed", "default", "small", "known-answer")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("persons", "must_name"),
    [
        ("10", ("population.persons", "10", "500")),
        ("-5", ("population.persons", "-5", "500")),
        ("many", ("--persons", "many")),
    ],
)
def test_bad_persons_names_field_value_and_range(tmp_path: Path, persons: str, must_name: tuple[str, ...]) -> None:
    code, text = _run(
        "world", "generate", "--preset", "small", "--seed", "1", "--persons", persons, "--out", str(tmp_path / "w")
    )
    assert code == 2 and "Traceback" not in text, text
    for word in must_name:
        assert word in text, f"{word!r} not in {text!r}"
    assert _leftovers(tmp_path) == []


def test_negative_seed_is_refused(tmp_path: Path) -> None:
    code, text = _run("world", "generate", "--preset", "small", "--seed", "-3", "--out", str(tmp_path / "w"))
    _assert_clean_failure(code, text, "--seed", "-3", ">= 0")
    assert _leftovers(tmp_path) == []


def test_unknown_field_in_a_config_file_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "world.yaml"
    cfg.write_text("preset: small\npopulation: {persons: 800, colour: blue}\n")
    code, text = _run("world", "generate", "--config", str(cfg), "--seed", "1", "--out", str(tmp_path / "w"))
    _assert_clean_failure(code, text, "population.colour", "'blue'", "unknown field")
    assert _leftovers(tmp_path) == ["world.yaml"]


def test_existing_output_is_kept_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "w"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, text = _run("world", "generate", "--preset", "small", "--seed", "1", *TINY, "--out", str(out))
    _assert_clean_failure(code, text, str(out), "already exists", "--overwrite")
    assert _leftovers(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert _leftovers(tmp_path) == ["w"]


def test_unwritable_output_fails_cleanly(tmp_path: Path) -> None:
    # a regular file where a directory is needed: unwritable even for root (chmod would not stop root)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    code, text = _run("world", "generate", "--preset", "small", "--seed", "1", *TINY, "--out", str(blocker / "w"))
    _assert_clean_failure(code, text, "cannot write", str(blocker))
    assert _leftovers(tmp_path) == ["blocker"] and blocker.read_text() == "not a directory"


# ------------------------------------------------------------------------------------------------
# describe --json
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "w"
    code, text = _run(
        "world", "generate", "--preset", "small", "--seed", "2", "--persons", "2000", "--days", "60", "--out", str(out)
    )
    assert code == 0, text
    return out


def test_describe_json_returns_calibration_and_leak_screen(tiny_world: Path) -> None:
    result = runner.invoke(app, ["world", "describe", str(tiny_world), "--json"])
    assert result.exit_code == 0, result.output
    desc = json.loads(result.stdout)
    # the calibration table: every row compares a generated value with its target and cites a source
    calib = {r["key"]: r for r in desc["calibration"]}
    assert {"purchase_victims_pct", "helpdesk_victims_nl", "whatsapp_loss_mean", "online_crime_pct"} <= set(calib)
    assert all(r["source"] and r["target"] for r in calib.values())
    assert calib["online_crime_pct"]["context"] and calib["online_crime_pct"]["ok"] is None
    # known value: national helpdesk victims = cases ÷ multiplier ÷ persons ÷ years × 14.5M
    world = read_world(tiny_world)
    cases = world.truth_table("cases")
    n = int((cases["fraud_type"] == "helpdesk").sum())
    expected = n / world.config.fraud["helpdesk"].multiplier / 2000 / (60 / 365) * NL_PERSONS_15PLUS
    assert calib["helpdesk_victims_nl"]["generated"] == pytest.approx(expected)
    assert calib["helpdesk_victims_nl"]["n"] == n
    # the leak screen with its four verdicts
    screen = desc["leak_screen"]
    assert set(screen["verdicts"]) >= {"single_column", "metadata_model", "truth_named_columns", "key_presence"}
    assert screen["single_column"] and screen["metadata_model"] and screen["key_presence"]
    assert screen["truth_named_columns"] == []


def test_describe_without_screen_and_as_tables(tiny_world: Path) -> None:
    result = runner.invoke(app, ["world", "describe", str(tiny_world), "--json", "--no-screen"])
    assert result.exit_code == 0 and "leak_screen" not in json.loads(result.stdout)
    result = runner.invoke(app, ["world", "describe", str(tiny_world), "--no-screen"])
    assert result.exit_code == 0
    assert "Calibration" in result.stdout and "helpdesk" in result.stdout


def test_describe_of_a_directory_that_is_no_world(tmp_path: Path) -> None:
    code, text = _run("world", "describe", str(tmp_path))
    _assert_clean_failure(code, text, str(tmp_path), "not a world directory")


# ------------------------------------------------------------------------------------------------
# Person blocks from the command line (issue 14)
# ------------------------------------------------------------------------------------------------
def test_block_persons_streams_the_same_bytes_with_one_or_two_workers(tmp_path: Path) -> None:
    # --block-persons writes through synthetic.world.generate_to: a block world's bytes do not depend on the
    # number of worker processes, and the manifest records the block size.
    hashes = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        code, text = _run(
            "world", "generate", "--preset", "small", "--seed", "3", *TINY, "--block-persons", "500",
            "--workers", workers, "--out", str(out),
        )  # fmt: skip
        assert code == 0, text
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["config"]["generation"]["block_persons"] == 500
        assert manifest["content_hash"][:16] in text
        hashes.append(manifest["content_hash"])
    assert hashes[0] == hashes[1]
    code, text = _run("world", "generate", "--preset", "small", "--seed", "3", *TINY, "--out", str(tmp_path / "mem"))
    assert code == 0, text
    in_memory = json.loads((tmp_path / "mem" / "manifest.json").read_text())
    assert "generation" not in in_memory["config"] or in_memory["config"]["generation"] is None
    assert in_memory["content_hash"] != hashes[0]  # legitimate activity comes from the blocks' own streams
