"""A world: the hidden truth plus one view per partner; generate, write, read.

On disk a world is a directory::

    manifest.json                 config, seed, schema version, per-table row counts + sha256, content hash
    partners/<partner>/<table>.parquet
    truth/<table>.parquet          hidden: cases, money-outs, case entities, provenance, persons, ...

Writing goes to a temporary sibling directory that is renamed into place only when complete, so
an interrupted write never leaves something that looks like a finished world.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthetic.config import WorldConfig
from synthetic.known_answer import generate_known_answer
from synthetic.realistic import generate_realistic
from synthetic.schema import SCHEMA_VERSION, TABLES_BY_KIND, TRUTH_TABLES
from synthetic.world_data import PartnerView, World, to_pandas

MANIFEST = "manifest.json"

__all__ = [
    "MANIFEST",
    "PartnerView",
    "World",
    "WorldError",
    "build_manifest",
    "generate",
    "read_manifest",
    "read_world",
    "to_pandas",
    "write_world",
]


class WorldError(RuntimeError):
    """A world directory that cannot be written or read; the message says which and why."""


def generate(config: WorldConfig, seed: int, *, workers: int = 1, progress: Any = None) -> World:
    """Build a world from (config, seed). Same inputs → byte-identical tables, whatever `workers` is."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WorldError(f"seed = {seed!r}: allowed: a whole number >= 0")
    if config.mode == "known_answer":
        world = generate_known_answer(config, seed)
    else:
        world = generate_realistic(config, seed, workers=workers, progress=progress)
    _check_schemas(world)
    world.blobs = {k: _parquet_bytes(t) for k, t in _all_tables(world).items()}
    world.manifest = build_manifest(world, world.blobs)
    return world


def _check_schemas(world: World) -> None:
    for p in world.partners.values():
        expected = TABLES_BY_KIND[p.kind]
        for name, table in p.tables.items():
            if name not in expected:
                raise WorldError(f"partner {p.name} ({p.kind}) produced unknown table {name!r}")
            if table.schema.names != expected[name].names:
                raise WorldError(f"{p.name}/{name}: columns {table.schema.names} != schema {expected[name].names}")
    for name, table in world.truth.items():
        if name in TRUTH_TABLES and table.schema.names != TRUTH_TABLES[name].names:
            raise WorldError(f"truth/{name}: columns {table.schema.names} != schema {TRUTH_TABLES[name].names}")


# ------------------------------------------------------------------------------------------------
# Bytes, hashes and the manifest
# ------------------------------------------------------------------------------------------------
def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    # Fixed writer options so the same table always gives the same bytes.
    pq.write_table(table, sink, compression="zstd", use_dictionary=True, write_statistics=True, row_group_size=1 << 20)
    return sink.getvalue().to_pybytes()


def _all_tables(world: World) -> dict[str, pa.Table]:
    out = {f"partners/{p}/{t}": tbl for p, pv in sorted(world.partners.items()) for t, tbl in sorted(pv.tables.items())}
    out.update({f"truth/{t}": tbl for t, tbl in sorted(world.truth.items())})
    return out


def build_manifest(world: World, blobs: dict[str, bytes] | None = None) -> dict[str, Any]:
    blobs = blobs if blobs is not None else {k: _parquet_bytes(t) for k, t in _all_tables(world).items()}
    tables = {
        k: {"rows": _all_tables(world)[k].num_rows, "sha256": hashlib.sha256(b).hexdigest()}
        for k, b in sorted(blobs.items())
    }
    partner_hash = hashlib.sha256(
        "".join(f"{k}:{v['sha256']}" for k, v in tables.items() if k.startswith("partners/")).encode()
    ).hexdigest()
    content_hash = hashlib.sha256("".join(f"{k}:{v['sha256']}" for k, v in tables.items()).encode()).hexdigest()
    return {
        "schema_version": SCHEMA_VERSION,
        "seed": world.seed,
        "mode": world.config.mode,
        "start_date": world.config.population.start_date,
        "partners": {n: p.kind for n, p in world.partners.items()},
        "multipliers": {ft: c.multiplier for ft, c in world.config.fraud.items()},
        "tables": tables,
        "partner_views_hash": partner_hash,
        "content_hash": content_hash,
        "config": world.config.model_dump(mode="json"),
    }


def write_world(world: World, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write atomically: a temp sibling directory renamed into place when complete."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise WorldError(f"output directory {str(out)!r} already exists; pass --overwrite to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise WorldError(f"cannot write to {str(parent)!r}: {exc.strerror or exc}") from None
    try:
        # The bytes hashed by generate() are the bytes written: serialise once.
        blobs = world.blobs or {k: _parquet_bytes(t) for k, t in _all_tables(world).items()}
        for key, blob in blobs.items():
            path = tmp / f"{key}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        world.manifest = build_manifest(world, blobs)
        (tmp / MANIFEST).write_text(json.dumps(world.manifest, indent=2, sort_keys=True))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise WorldError(
            f"{str(path)!r} is not a world directory (no {MANIFEST}); make one with `fedsim world generate`"
        )
    data: dict[str, Any] = json.loads(mf.read_text())
    if data.get("schema_version") != SCHEMA_VERSION:
        raise WorldError(
            f"{str(path)!r} has schema version {data.get('schema_version')!r}; "
            f"this fedsim reads {SCHEMA_VERSION!r} — regenerate the world"
        )
    return data


def read_world(path: str | Path, *, partners: list[str] | None = None, truth: bool = True) -> World:
    """Load a world (optionally only some partners — a partner process loads only its own)."""
    path = Path(path)
    manifest = read_manifest(path)
    config = WorldConfig.model_validate(manifest["config"])
    names = partners if partners is not None else list(manifest["partners"])
    views = {}
    for name in names:
        if name not in manifest["partners"]:
            raise WorldError(
                f"partner {name!r} is not in world {str(path)!r}; it has: {', '.join(manifest['partners'])}"
            )
        kind = manifest["partners"][name]
        tables = {
            t: pq.read_table(path / "partners" / name / f"{t}.parquet")
            for t in TABLES_BY_KIND[kind]
            if (path / "partners" / name / f"{t}.parquet").exists()
        }
        views[name] = PartnerView(name=name, kind=kind, tables=tables)
    truth_tables = {p.stem: pq.read_table(p) for p in sorted((path / "truth").glob("*.parquet"))} if truth else {}
    return World(config=config, seed=int(manifest["seed"]), partners=views, truth=truth_tables, manifest=manifest)
