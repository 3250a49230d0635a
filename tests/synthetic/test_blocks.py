"""Person-block generation streamed to disk (``generation.block_persons``, :mod:`synthetic.blocks`).

One small world (3,000 persons x 30 days, two blocks of 1,500) made three ways — one process, two processes,
and the in-memory generator without blocks — and compared: bytes, what the global pass shares with the
in-memory generator, provenance, time order, and that fedsim's feature builders read it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from synthetic.blocks import EVENT_TABLES, block_ids
from synthetic.config import ConfigError, WorldConfig, build_config, shorthand_overrides
from synthetic.schema import DAY
from synthetic.world import MANIFEST, World, generate, generate_to, read_world

SIZE = {"population": {"persons": 3000, "days": 30}}
BLOCKS = {"generation": {"block_persons": 1500}}
SEED = 4


def _config(**extra: object) -> WorldConfig:
    return build_config(preset="default", overrides={**SIZE, **extra})


@pytest.fixture(scope="module")
def block_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("blocks")
    return {w: generate_to(_config(**BLOCKS), SEED, root / f"workers{w}", workers=w) for w in (1, 2)}


@pytest.fixture(scope="module")
def blocked(block_dirs: dict[int, Path]) -> World:
    return read_world(block_dirs[1])


@pytest.fixture(scope="module")
def in_memory() -> World:
    return generate(_config(), SEED)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_and_two_workers_write_the_same_bytes(block_dirs: dict[int, Path]) -> None:
    one, two = block_dirs[1], block_dirs[2]
    files = sorted(p.relative_to(one).as_posix() for p in one.rglob("*.parquet"))
    assert files == sorted(p.relative_to(two).as_posix() for p in two.rglob("*.parquet")) and len(files) == 31
    assert [f for f in files if _sha(one / f) != _sha(two / f)] == []
    assert (one / MANIFEST).read_bytes() == (two / MANIFEST).read_bytes()
    manifest = json.loads((one / MANIFEST).read_text())
    assert manifest["config"]["generation"] == {"block_persons": 1500, "window_days": 7}  # recorded, fixes bytes
    for f in files:  # the manifest's sha256 is the hash of the streamed file
        assert manifest["tables"][f.removesuffix(".parquet")]["sha256"] == _sha(one / f)


def test_global_pass_is_the_in_memory_generators(blocked: World, in_memory: World) -> None:
    # Population, fraud and the partners' static tables come from the same streams as before: same bytes.
    same = {"truth/persons", "truth/cases", "truth/money_outs", "truth/crews", "truth/case_entities", "truth/entities"}
    same |= {f"partners/{p}/customers" for p in blocked.partner_names("bank")}
    same |= {f"partners/{p}/accounts" for p in blocked.partner_names("bank")}
    same |= {"partners/telco/subscribers", "partners/marketplace/users"}
    for key in sorted(same):
        assert blocked.manifest["tables"][key]["sha256"] == in_memory.manifest["tables"][key]["sha256"], key
    assert blocked.truth["cases"].num_rows > 10
    # legitimate activity has the block streams: other rows, about as many (same rates)
    key = "partners/bank_1/transactions"
    assert blocked.manifest["tables"][key]["sha256"] != in_memory.manifest["tables"][key]["sha256"]
    rows_b, rows_m = blocked.manifest["tables"][key]["rows"], in_memory.manifest["tables"][key]["rows"]
    assert abs(rows_b - rows_m) < 0.05 * rows_m


def _injected(world: World) -> pd.DataFrame:
    """Every row a case injected, with the row's content (local ids and history flags dropped), sorted."""
    prov = world.truth_table("provenance")
    out = []
    for (partner, table), grp in prov.groupby(["partner", "table"]):
        frame = world.table(partner, table).iloc[grp["row"].to_numpy()].reset_index(drop=True)
        frame = frame.drop(columns=[c for c in ("listing_id", "order_id", "new_payee", "new_device") if c in frame])
        content = ["|".join(map(str, row)) for row in frame.itertuples(index=False)]
        out.append(pd.DataFrame({"where": f"{partner}/{table}", "case": grp["case_id"].to_numpy(), "row": content}))
    return pd.concat(out).sort_values(["where", "case", "row"]).reset_index(drop=True)


def test_provenance_points_at_the_rows_the_cases_injected(blocked: World, in_memory: World) -> None:
    # Fraud rows come from the global pass (same as in memory); only their row numbers change with the merge.
    # Provenance must still point at exactly those rows: same content, same cases, table by table.
    got, want = _injected(blocked), _injected(in_memory)
    assert len(got) == len(want) > 50
    pd.testing.assert_frame_equal(got, want)


def test_event_tables_are_in_time_order(blocked: World) -> None:
    for name, view in blocked.partners.items():
        for table in EVENT_TABLES[view.kind]:
            ts = view.tables[table].column("ts").to_numpy()
            assert len(ts) and np.all(np.diff(ts) >= 0), f"{name}/{table}"


def test_history_flags_hold_across_blocks(blocked: World) -> None:
    # new_payee: the first transfer of an account to a payee, in time order over the whole table (a pair's rows
    # all lie in one block, the one of the sending account's owner).
    tr = blocked.table("bank_1", "transactions")
    out = tr[tr["direction"] == "out"]
    first = ~out.duplicated(["account_id", "counterparty_iban_hash"])
    assert not out.loc[~first, "new_payee"].any()  # never new twice
    assert out.loc[first, "new_payee"].mean() > 0.05


def test_fedsim_features_read_a_block_world(blocked: World, in_memory: World) -> None:
    from fedsim.features import PartnerFeatures

    horizon = 30 * DAY
    for name in blocked.partners:
        rows, frame = PartnerFeatures.for_view(blocked.partners[name]).window(0, horizon)
        _, frame_m = PartnerFeatures.for_view(in_memory.partners[name]).window(0, horizon)
        assert list(frame.columns) == list(frame_m.columns) and len(frame) == len(rows.ts) > 100, name


def test_block_ids_are_distinct_across_blocks() -> None:
    ids = np.concatenate([block_ids(7, "marketplace", "listings", b, 5000) for b in range(4)])
    assert len(np.unique(ids)) == len(ids) and ids.min() >= 0
    assert not np.all(np.diff(ids[:5000]) > 0)  # no order
    assert np.array_equal(ids[:10], block_ids(7, "marketplace", "listings", 0, 10))  # a function of the block


def test_block_size_is_in_the_config_and_checked() -> None:
    assert "generation" not in _config().model_dump(mode="json")  # configs without it dump (and hash) as before
    short = shorthand_overrides(persons=3000, days=30, block_persons=1500)  # what a --block-persons flag passes
    assert build_config(preset="default", overrides=short).generation == _config(**BLOCKS).generation
    with pytest.raises(ConfigError, match="placebo"):
        build_config(preset="placebo", overrides={**SIZE, **BLOCKS})
    with pytest.raises(ConfigError, match="block_persons"):
        build_config(preset="default", overrides={**SIZE, "generation": {"block_persons": 10}})


def test_parquet_files_are_readable_by_pyarrow_alone(block_dirs: dict[int, Path]) -> None:
    path = block_dirs[1] / "partners" / "telco" / "calls.parquet"
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups >= 4  # one row group per 7-day window of a 30-day world
    assert meta.num_rows == json.loads((block_dirs[1] / MANIFEST).read_text())["tables"]["partners/telco/calls"]["rows"]


def test_generate_in_memory_gives_the_streamed_world(block_dirs: dict[int, Path], tmp_path: Path) -> None:
    # generate() with blocks (what `fedsim run` calls) returns the world generate_to() streamed; written again
    # with write_world it keeps its bytes.
    from synthetic.world import write_world

    world = generate(_config(**BLOCKS), SEED)
    assert world.content_hash == json.loads((block_dirs[1] / MANIFEST).read_text())["content_hash"]
    again = write_world(world, tmp_path / "again")
    files = sorted(p.relative_to(again).as_posix() for p in again.rglob("*.parquet"))
    assert len(files) == 31 and [f for f in files if _sha(again / f) != _sha(block_dirs[1] / f)] == []
