"""World integrity: every kind of damage to a world on disk is refused (a user world) or rebuilt (a cached one).

The corruption matrix takes one real world written by ``fedsim run``'s cache code, damages a copy in one way
per case, then checks the three readers: ``read_world`` raises :class:`WorldError` naming what is wrong,
``fedsim world describe`` exits 2 with one error line, and ``load_or_generate_world`` (what ``fedsim run``
does) rebuilds the cached world — the world it then returns is byte-identical to the undamaged one. A damaged
world is never used silently.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fedsim.cli import app
from fedsim.experiment import ExperimentSpec, parse_experiment
from fedsim.runner import load_or_generate_world, world_dir
from synthetic.world import MANIFEST, STAMP, WorldError, read_world, verify_world
from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

runner = CliRunner()


def _spec() -> ExperimentSpec:
    return parse_experiment(
        {
            "name": "integrity",
            "world": KNOWN_ANSWER_WORLD,
            "split": KNOWN_ANSWER_SPLIT,
            "regimes": ["pooled"],
            "coalitions": "all",
            "models": ["logistic"],
            "seeds": [0],
        }
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity") / "worlds"
    load_or_generate_world(_spec(), root)
    return world_dir(_spec(), root)


# ------------------------------------------------------------------------------------------------
# One function per kind of damage; each returns the word(s) the error must name
# ------------------------------------------------------------------------------------------------
def _flip_bytes(w: Path) -> str:
    f = w / "partners/bank_1/signals.parquet"
    data = bytearray(f.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    f.write_bytes(bytes(data))
    return "partners/bank_1/signals"


def _truncate(w: Path) -> str:
    f = w / "truth/cases.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return "truth/cases"


def _empty_table(w: Path) -> str:
    (w / "truth/money_outs.parquet").write_bytes(b"")
    return "truth/money_outs"


def _delete(w: Path) -> str:
    (w / "truth/case_entities.parquet").unlink()
    return "truth/case_entities"


def _delete_partner(w: Path) -> str:
    shutil.rmtree(w / "partners/telco")
    return "partners/telco"


def _delete_truth_half(w: Path) -> str:
    for name in ("cases", "money_outs", "provenance", "persons"):
        (w / f"truth/{name}.parquet").unlink()
    return "missing"


def _swap(w: Path) -> str:
    a, b = w / "partners/bank_1/signals.parquet", w / "partners/bank_2/signals.parquet"
    tmp = w / "swap.tmp"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    return "partners/bank_1/signals"


def _swap_truth(w: Path) -> str:
    a, b = w / "truth/cases.parquet", w / "truth/money_outs.parquet"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    return "truth/cases"


def _amounts_x10(w: Path) -> str:
    f = w / "truth/money_outs.parquet"
    table = pq.read_table(f)
    i = table.schema.get_field_index("amount_eur")
    table = table.set_column(i, table.schema.field(i), pc.multiply(table["amount_eur"], 10.0))
    pq.write_table(table, f, compression="zstd")  # a perfectly valid Parquet file
    return "truth/money_outs"


def _rows_dropped(w: Path) -> str:
    f = w / "partners/telco/entities.parquet"
    pq.write_table(pq.read_table(f).slice(0, 10), f)
    return "partners/telco/entities"


def _same_rows_other_bytes(w: Path) -> str:
    f = w / "partners/placebo/signals.parquet"
    pq.write_table(pq.read_table(f), f, compression="snappy")  # same values, other bytes: not the hashed world
    return "partners/placebo/signals"


def _extra_table(w: Path) -> str:
    pq.write_table(pa.table({"x": [1, 2]}), w / "partners/bank_1/leak.parquet")
    return "partners/bank_1/leak.parquet"


def _extra_truth_file(w: Path) -> str:
    (w / "truth/notes.txt").write_text("hello")
    return "truth/notes.txt"


def _manifest(w: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads((w / MANIFEST).read_text())
    edit(data)
    (w / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True))


def _manifest_seed(w: Path) -> str:
    _manifest(w, lambda m: m.__setitem__("seed", 99))
    return MANIFEST


def _manifest_config(w: Path) -> str:
    _manifest(w, lambda m: m["config"]["known_answer"].__setitem__("prevalence", 0.5))
    return MANIFEST


def _manifest_sha(w: Path) -> str:
    # Tamper with a table and write its new hash into the manifest: the content hash no longer adds up.
    _amounts_x10(w)
    import hashlib

    sha = hashlib.sha256((w / "truth/money_outs.parquet").read_bytes()).hexdigest()
    _manifest(w, lambda m: m["tables"]["truth/money_outs"].__setitem__("sha256", sha))
    return MANIFEST


def _manifest_rows(w: Path) -> str:
    _manifest(w, lambda m: m["tables"]["truth/cases"].__setitem__("rows", 7))
    return MANIFEST


def _manifest_table_dropped(w: Path) -> str:
    _manifest(w, lambda m: m["tables"].pop("truth/persons"))
    return MANIFEST


def _manifest_no_digest(w: Path) -> str:
    _manifest(w, lambda m: m.pop("manifest_sha256"))
    return MANIFEST


def _manifest_not_json(w: Path) -> str:
    (w / MANIFEST).write_text('{"schema_version": ')
    return MANIFEST


def _manifest_not_utf8(w: Path) -> str:
    (w / MANIFEST).write_bytes(b"\xff\xfe\x00garbage")
    return MANIFEST


def _manifest_a_list(w: Path) -> str:
    (w / MANIFEST).write_text("[1, 2, 3]")
    return MANIFEST


def _manifest_deleted(w: Path) -> str:
    (w / MANIFEST).unlink()
    return MANIFEST


def _changed_after_verified_read(w: Path) -> str:
    read_world(w)  # verified: remembered in this process and in the stamp
    assert (w / STAMP).is_file()
    f = w / "truth/money_outs.parquet"
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime: only the ctime tells
    return "truth/money_outs"


DAMAGE: dict[str, Callable[[Path], str]] = {
    f.__name__.lstrip("_"): f
    for f in (
        _flip_bytes,
        _truncate,
        _empty_table,
        _delete,
        _delete_partner,
        _delete_truth_half,
        _swap,
        _swap_truth,
        _amounts_x10,
        _rows_dropped,
        _same_rows_other_bytes,
        _extra_table,
        _extra_truth_file,
        _manifest_seed,
        _manifest_config,
        _manifest_sha,
        _manifest_rows,
        _manifest_table_dropped,
        _manifest_no_digest,
        _manifest_not_json,
        _manifest_not_utf8,
        _manifest_a_list,
        _manifest_deleted,
        _changed_after_verified_read,
    )
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_corruption_matrix_every_kind_is_refused_or_rebuilt(
    pristine: Path, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    original = json.loads((pristine / MANIFEST).read_text())["content_hash"]
    root = tmp_path / "worlds"
    damaged = root / pristine.name
    shutil.copytree(pristine, damaged)
    named = DAMAGE[kind](damaged)

    # A user world: read_world refuses, naming what is wrong.
    with pytest.raises(WorldError) as err:
        read_world(damaged)
    assert named in str(err.value), str(err.value)

    # `fedsim world describe`: exit 2, one line, no traceback.
    result = runner.invoke(app, ["world", "describe", str(damaged), "--no-screen"])
    text = re.sub(r"\s+", " ", result.output)
    assert result.exit_code == 2, text
    assert text.count("error:") == 1 and "Traceback" not in text, text

    # The cache under `fedsim run`: rebuilt with a message, and the rebuilt world is the undamaged one.
    with caplog.at_level(logging.INFO, logger="fedsim.run"):
        world = load_or_generate_world(_spec(), root)
    assert "rebuilding" in caplog.text or "generating world" in caplog.text
    assert world.content_hash == original
    verify_world(damaged)  # the rebuilt cache is whole again


def test_an_undamaged_world_is_hashed_once_then_checked_by_stat(pristine: Path, tmp_path: Path) -> None:
    import synthetic.world as sw

    copy = tmp_path / "w"
    shutil.copytree(pristine, copy)
    (copy / STAMP).unlink(missing_ok=True)
    sw._VERIFIED.clear()
    hashed: list[Path] = []
    real = sw._sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    sw._sha256_file = counting
    try:
        read_world(copy)
        first = len(hashed)
        read_world(copy)  # same process: remembered
        sw._VERIFIED.clear()
        read_world(copy)  # "another process": the stamp file vouches for unchanged files
    finally:
        sw._sha256_file = real
    tables = len(json.loads((copy / MANIFEST).read_text())["tables"])
    assert first == tables and len(hashed) == tables


# ------------------------------------------------------------------------------------------------
# --overwrite
# ------------------------------------------------------------------------------------------------
def _generate(out: Path | str, *extra: str, cwd: Path | None = None) -> tuple[int, str]:
    args = ["world", "generate", "--preset", "known-answer", "--seed", "1", "--persons", "600", "--days", "14"]
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = runner.invoke(app, [*args, "--out", str(out), *extra])
    finally:
        os.chdir(old)
    return result.exit_code, re.sub(r"\s+", " ", result.output)


def test_overwrite_refuses_a_folder_with_an_unrelated_file_and_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "w"
    out.mkdir()
    (out / "thesis.tex").write_text("three years of work")
    code, text = _generate(out, "--overwrite")
    assert code == 2 and text.count("error:") == 1 and "thesis.tex" in text, text
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]
    assert (out / "thesis.tex").read_text() == "three years of work"


def test_overwrite_refuses_a_world_with_an_unrelated_file_in_it(tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert _generate(out)[0] == 0
    (out / "partners" / "notes.md").write_text("mine")
    code, text = _generate(out, "--overwrite")
    assert code == 2 and "notes.md" in text, text
    assert (out / "partners" / "notes.md").read_text() == "mine"


@pytest.mark.parametrize("target", [".", "..", "/", "~"])
def test_overwrite_never_replaces_cwd_a_parent_root_or_home(tmp_path: Path, target: str) -> None:
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    (cwd / "keep.txt").write_text("x")
    out = os.path.expanduser(target)
    code, text = _generate(out, "--overwrite", cwd=cwd)
    assert code == 2 and text.count("error:") == 1 and "--overwrite refuses" in text, text
    assert (cwd / "keep.txt").read_text() == "x"


def test_overwrite_replaces_a_world_and_an_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "w"
    assert _generate(out)[0] == 0
    before = json.loads((out / MANIFEST).read_text())["content_hash"]
    read_world(out)  # leaves the stamp file, which belongs to the world
    code, text = _generate(out, "--overwrite")
    assert code == 0, text
    assert json.loads((out / MANIFEST).read_text())["content_hash"] == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _generate(empty, "--overwrite")[0] == 0
    read_world(empty)


def test_a_world_another_process_finished_first_is_never_removed(pristine: Path, tmp_path: Path) -> None:
    # Two `fedsim run` building the same cached world: the one that finishes second used to remove the first
    # one's world (while that process was reading it: KeyError 'entities', seen in the two-process store test).
    # Now the second write is refused and leaves the first world and nothing else behind.
    from synthetic.world import _move_into_place

    out = tmp_path / "cached"
    shutil.copytree(pristine, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    late = tmp_path / ".cached.tmp-late"
    late.mkdir()
    (late / MANIFEST).write_text("{}")
    with pytest.raises(WorldError, match="created by another process meanwhile"):
        _move_into_place(late, out)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    verify_world(out)  # still the first process's intact world
    _move_into_place(late, out, overwrite=True)  # only an explicit overwrite replaces it
    assert (out / MANIFEST).read_text() == "{}"
