"""A world: the hidden truth plus one view per partner; generate, write, read.

On disk a world is a directory::

    manifest.json                 config, seed, schema version, per-table row counts + sha256, content hash
    partners/<partner>/<table>.parquet
    truth/<table>.parquet          hidden: cases, money-outs, case entities, provenance, persons, ...
    secret/key_salt                only for a world with a secret: the key of its join-key PRF (0600, in 0700)

A world may be generated with a **secret** (:class:`~synthetic.ids.WorldSecret`; ``--secret-file``, the
experiment's ``world.secret_file`` or ``FEDSIM_WORLD_SECRET_FILE``): its randomness and its join keys then
depend on the secret, so the seed and the config (which may travel) do not rebuild it. The manifest names the
secret by its fingerprint only. Without a secret a world is exactly what it always was.

Writing goes to a temporary sibling directory that is renamed into place only when complete, so
an interrupted write never leaves something that looks like a finished world.

Reading verifies the world against its manifest (:func:`verify_world`): the manifest's own digest, every
table present with the sha256 it was written with, no file the manifest does not list. Hashing every
table on every read would cost seconds for a large world, so a table whose hash was checked is
remembered by its file identity (device, inode, size, mtime and ctime in ns) in this process and in a
stamp file ``.verified.json`` in the world directory (when writable); ctime cannot be set back by a user,
so any rewrite of a table — even one that restores its size and mtime — is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synthetic.config import WorldConfig
from synthetic.ids import Keys, WorldSecret
from synthetic.known_answer import generate_known_answer
from synthetic.realistic import generate_realistic
from synthetic.schema import SCHEMA_VERSION, TABLES_BY_KIND, TRUTH_TABLES
from synthetic.world_data import PartnerView, World, to_pandas

MANIFEST = "manifest.json"
STAMP = ".verified.json"
MANIFEST_DIGEST = "manifest_sha256"
SECRET_FIELD = "secret_fingerprint"
"""Manifest field naming a world's secret (:meth:`WorldSecret.fingerprint`); absent for a world without one."""
SECRET_DIR, KEY_SALT = "secret", "key_salt"
SECRET_ENV = "FEDSIM_WORLD_SECRET_FILE"

__all__ = [
    "MANIFEST",
    "PartnerView",
    "World",
    "WorldError",
    "WorldSecret",
    "build_manifest",
    "check_replaceable",
    "generate",
    "generate_to",
    "read_manifest",
    "read_secret",
    "secret_from",
    "secret_suffix",
    "read_world",
    "to_pandas",
    "verify_world",
    "write_world",
]


class WorldError(RuntimeError):
    """A world directory that cannot be written or read; the message says which and why."""


def generate(
    config: WorldConfig, seed: int, *, workers: int = 1, progress: Any = None, secret: WorldSecret | None = None
) -> World:
    """Build a world from (config, seed[, secret]). Same inputs → byte-identical tables, whatever `workers` is.

    Without ``secret`` the streams are rooted in ``seed`` (as always); with it, in ``secret.root(seed)``, and the
    join keys are the keyed PRF under ``secret.key_salt()`` (:mod:`synthetic.ids`). ``world.seed`` stays ``seed``.
    """
    _check_seed(seed)
    if config.generation is not None:  # person blocks: made on disk, read back (small worlds, tests)
        with tempfile.TemporaryDirectory(prefix="fedsim-blocks-") as tmp:
            path = generate_to(config, seed, Path(tmp) / "world", workers=workers, progress=progress, secret=secret)
            world = read_world(path)
            world.blobs = {key: (path / f"{key}.parquet").read_bytes() for key in world.manifest["tables"]}
        return world
    root, keys = (seed, None) if secret is None else (secret.root(seed), Keys.of_secret(secret))
    if config.mode == "known_answer":
        world = generate_known_answer(config, root, keys=keys)
    else:
        world = generate_realistic(config, root, workers=workers, progress=progress, keys=keys)
    world.seed = seed
    _check_schemas(world)
    world.blobs = {k: _parquet_bytes(t) for k, t in _all_tables(world).items()}
    world.manifest = {SECRET_FIELD: secret.fingerprint()} if secret is not None else {}
    world.manifest = build_manifest(world, world.blobs)
    return world


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WorldError(f"seed = {seed!r}: allowed: a whole number >= 0")


def generate_to(
    config: WorldConfig,
    seed: int,
    out: str | Path,
    *,
    workers: int = 1,
    progress: Any = None,
    secret: WorldSecret | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate the world of (config, seed[, secret]) straight into directory ``out``; returns ``out``.

    With ``config.generation`` (person blocks, :mod:`synthetic.blocks`) the tables are streamed to disk as they
    are made — memory is bounded by a block, not by the population — and the bytes do not depend on ``workers``.
    Without it this is :func:`generate` then :func:`write_world`. Written atomically like :func:`write_world`.
    """
    _check_seed(seed)
    if config.generation is None:
        return write_world(
            generate(config, seed, workers=workers, progress=progress, secret=secret),
            out,
            overwrite=overwrite,
            secret=secret,
        )
    from synthetic.blocks import write_blocks  # imports the generators; world.py stays light for readers

    out = Path(out)
    tmp = _temp_sibling(out, overwrite)
    with _removed_on_failure(tmp, out):
        root, keys = (seed, None) if secret is None else (secret.root(seed), Keys.of_secret(secret))
        tables = write_blocks(config, root, tmp, keys=keys, workers=workers, progress=progress)
        if secret is not None:
            _write_private(tmp / SECRET_DIR / KEY_SALT, secret.key_salt())
        manifest = _manifest(
            config, seed, config.partner_kinds(), tables, secret.fingerprint() if secret is not None else None
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _move_into_place(tmp, out, overwrite=overwrite)
    _stamp_verified(out, manifest)
    return out


def _temp_sibling(out: Path, overwrite: bool) -> Path:
    """A new temporary directory beside ``out`` (after checking ``out`` may be written or replaced)."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise WorldError(f"output directory {str(out)!r} already exists; pass --overwrite to replace it")
        check_replaceable(out)
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as exc:
        raise WorldError(f"cannot write to {str(parent)!r}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _removed_on_failure(tmp: Path, out: Path) -> Iterator[None]:
    """Remove the temporary directory ``tmp`` if writing the world fails: nothing half-written is left behind;
    an OSError (disk full, no permission, ...) becomes a WorldError naming ``out``."""
    try:
        yield
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WorldError(
            f"cannot write the world to {str(out)!r}: {exc.strerror or exc}; nothing was written"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _stamp_verified(out: Path, manifest: dict[str, Any]) -> None:
    """Remember the tables just written as verified (known good: written from these very bytes) and stamp ``out``."""
    stamp = {}
    for key, entry in manifest["tables"].items():
        ident = _identity(out / f"{key}.parquet")
        _VERIFIED[ident] = entry["sha256"]
        stamp[key] = [*ident, entry["sha256"]]
    _write_stamp(out, stamp)


def _move_into_place(tmp: Path, out: Path, *, overwrite: bool = False) -> None:
    """Rename the finished ``tmp`` to ``out``. An ``out`` that appeared since the caller checked is another
    process's world (e.g. two `fedsim run` building the same cached world): it is never removed unless
    ``overwrite``, since that process may be reading it."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise WorldError(f"output directory {str(out)!r} was created by another process meanwhile")
        shutil.rmtree(out)
    try:
        os.replace(tmp, out)
    except OSError:
        if not out.exists():
            raise
        raise WorldError(f"output directory {str(out)!r} was created by another process meanwhile") from None


def secret_suffix(secret: WorldSecret) -> str:
    """What a world's cache folder name gets for its secret (by fingerprint): two secrets, two folders."""
    return f"-secret{secret.fingerprint()[:12]}"


def read_secret(path: str | Path) -> WorldSecret:
    """The world secret in file ``path``: its bytes as they are, at least 32 (e.g. ``openssl rand -hex 32 > FILE``)."""
    try:
        return WorldSecret(Path(path).read_bytes())
    except OSError as exc:
        raise WorldError(f"world secret file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise WorldError(
            f"world secret file {str(path)!r}: {exc}; make one with `openssl rand -hex 32 > {path}`"
        ) from None


def secret_from(path: str | Path | None) -> WorldSecret | None:
    """The world secret from ``path``, else from the file named by ``FEDSIM_WORLD_SECRET_FILE``, else None."""
    chosen = path if path is not None else os.environ.get(SECRET_ENV) or None
    return read_secret(chosen) if chosen is not None else None


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
    partners = {n: p.kind for n, p in world.partners.items()}
    return _manifest(world.config, world.seed, partners, tables, world.manifest.get(SECRET_FIELD))


def _manifest(
    config: WorldConfig, seed: int, partners: dict[str, str], tables: dict[str, Any], secret_fp: str | None
) -> dict[str, Any]:
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "mode": config.mode,
        "start_date": config.population.start_date,
        "partners": partners,
        "multipliers": {ft: c.multiplier for ft, c in config.fraud.items()},
        "tables": tables,
        "partner_views_hash": _table_digests(tables, "partners/"),
        "content_hash": _table_digests(tables),
        "config": config.model_dump(mode="json"),
    }
    if secret_fp:  # only a world with a secret has the field: other manifests stay as they were
        manifest[SECRET_FIELD] = secret_fp
    manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    return manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON without its own digest: an edited manifest no longer matches."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _table_digests(tables: dict[str, Any], prefix: str = "") -> str:
    return hashlib.sha256(
        "".join(f"{k}:{v['sha256']}" for k, v in sorted(tables.items()) if k.startswith(prefix)).encode()
    ).hexdigest()


def write_world(world: World, out: str | Path, *, overwrite: bool = False, secret: WorldSecret | None = None) -> Path:
    """Write atomically: a temp sibling directory renamed into place when complete.

    An existing ``out`` is replaced only with ``overwrite`` and only if :func:`check_replaceable` allows it.
    A world generated with a secret is written with that ``secret`` (its key salt is kept in ``secret/``).
    """
    out = Path(out)
    _check_secret(world, secret)
    tmp = _temp_sibling(out, overwrite)
    with _removed_on_failure(tmp, out):
        # The bytes hashed by generate() are the bytes written: serialise once.
        blobs = world.blobs or {k: _parquet_bytes(t) for k, t in _all_tables(world).items()}
        for key, blob in blobs.items():
            path = tmp / f"{key}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        if secret is not None:
            _write_private(tmp / SECRET_DIR / KEY_SALT, secret.key_salt())
        world.manifest = build_manifest(world, blobs)
        (tmp / MANIFEST).write_text(json.dumps(world.manifest, indent=2, sort_keys=True))
        _move_into_place(tmp, out, overwrite=overwrite)
    _stamp_verified(out, world.manifest)
    return out


def _check_secret(world: World, secret: WorldSecret | None) -> None:
    wanted = world.manifest.get(SECRET_FIELD)
    given = secret.fingerprint() if secret is not None else None
    if wanted != given:
        raise WorldError(
            f"the world was generated {'with a secret' if wanted else 'without a secret'} and is written "
            f"{'with another one' if wanted and given else 'with one' if given else 'without it'}; "
            "write it with the secret it was generated with"
        )


def _write_private(path: Path, data: bytes) -> None:
    """A file only its owner can read (0600) in a folder only its owner can enter (0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def check_replaceable(out: str | Path) -> None:
    """Raise :class:`WorldError` unless ``--overwrite`` may delete ``out``.

    Allowed: an empty directory, or a fedsim world (a manifest listing tables) holding nothing but its
    manifest, its verification stamp and the tables the manifest lists. Never the working directory, one of
    its parents, the home directory or a filesystem root, whatever they hold; never a file or a symlink.
    """
    out = Path(out)
    refuse = f"--overwrite refuses to replace {str(out)!r}"
    if out.is_symlink() or not out.is_dir():
        raise WorldError(f"{refuse}: it is not a directory")
    resolved, cwd, home = out.resolve(), Path.cwd().resolve(), Path.home().resolve()
    if resolved in (cwd, home, Path(resolved.anchor)) or resolved in cwd.parents:
        raise WorldError(f"{refuse}: it is the working directory, one of its parents, home or a root")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    if not files:
        return
    try:
        tables = json.loads((out / MANIFEST).read_text())["tables"]
        allowed = {MANIFEST, STAMP, f"{SECRET_DIR}/{KEY_SALT}"} | {f"{key}.parquet" for key in tables}
    except (OSError, ValueError, TypeError, KeyError):
        raise WorldError(
            f"{refuse}: it holds {files[0]!r} and is not a fedsim world (no valid {MANIFEST}); "
            "move the files or pick another --out"
        ) from None
    extra = [f for f in files if f not in allowed and not f.startswith(STAMP)]  # incl. a stamp's temp file
    if extra:
        raise WorldError(
            f"{refuse}: it holds {extra[0]!r}, which is not part of the world; move it or pick another --out"
        )


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mf = path / MANIFEST
    if not mf.is_file():
        raise WorldError(
            f"{str(path)!r} is not a world directory (no {MANIFEST}); make one with `fedsim world generate`"
        )
    try:
        data = json.loads(mf.read_text())
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and bytes that are not UTF-8
        raise WorldError(f"world {str(path)!r} is corrupt: {MANIFEST} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise WorldError(f"world {str(path)!r} is corrupt: {MANIFEST} is not a JSON object")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise WorldError(
            f"{str(path)!r} has schema version {data.get('schema_version')!r}; "
            f"this fedsim reads {SCHEMA_VERSION!r} — regenerate the world"
        )
    return data


# ------------------------------------------------------------------------------------------------
# Verification: the manifest's digest, every table's sha256, nothing extra
# ------------------------------------------------------------------------------------------------
_VERIFIED: dict[tuple[int, ...], str] = {}  # file identity → sha256 checked in this process


def _identity(path: Path) -> tuple[int, ...]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _corrupt(path: Path, what: str) -> WorldError:
    return WorldError(f"world {str(path)!r} is corrupt: {what}; regenerate it with `fedsim world generate`")


def _check_manifest(path: Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise _corrupt(path, f"{MANIFEST} lists no tables")
    if manifest.get(MANIFEST_DIGEST) != manifest_digest(manifest):
        raise _corrupt(path, f"{MANIFEST} was edited (its {MANIFEST_DIGEST} does not match its content)")
    try:
        if _table_digests(tables) != manifest.get("content_hash"):
            raise _corrupt(path, f"{MANIFEST}: content_hash does not match the table hashes")
    except (TypeError, KeyError):
        raise _corrupt(path, f"{MANIFEST}: a table entry has no sha256") from None
    return tables


def verify_world(path: str | Path, manifest: dict[str, Any] | None = None, *, keys: set[str] | None = None) -> None:
    """Raise :class:`WorldError` naming the table unless the world at ``path`` is exactly what its manifest says.

    Checks the manifest digest and content hash, that no file under ``partners/`` or ``truth/`` is missing or
    unlisted, and the sha256 and row count of each table in ``keys`` (default: all). Hashes are remembered
    (see the module notes), so reading an unchanged world again costs a ``stat`` per table.
    """
    path = Path(path)
    manifest = manifest if manifest is not None else read_manifest(path)
    tables = _check_manifest(path, manifest)
    on_disk = {
        p.relative_to(path).as_posix()
        for top in ("partners", "truth")
        for p in (path / top).rglob("*")
        if not p.is_dir()
    }
    listed = {f"{key}.parquet" for key in tables}
    for name in sorted(on_disk - listed):
        raise _corrupt(path, f"file {name!r} is not in the manifest")
    for name in sorted(listed - on_disk):
        raise _corrupt(path, f"table {name[: -len('.parquet')]!r} is missing")
    stamp = _read_stamp(path)
    fresh: dict[str, Any] = {}
    for key in sorted(keys if keys is not None else tables):
        _verify_table(path, key, tables[key], stamp, fresh)
    if fresh:
        _write_stamp(path, {**stamp, **fresh})


def _verify_table(path: Path, key: str, entry: dict[str, Any], stamp: dict[str, Any], fresh: dict[str, Any]) -> None:
    file = path / f"{key}.parquet"
    ident = _identity(file)
    expected = entry.get("sha256")
    known = stamp.get(key)
    if _VERIFIED.get(ident) == expected or (known and known == [*ident, expected]):
        _VERIFIED[ident] = str(expected)
        return
    if _sha256_file(file) != expected:
        raise _corrupt(path, f"table {key!r} does not match the sha256 in the manifest (changed or replaced)")
    try:
        rows = pq.ParquetFile(file).metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise _corrupt(path, f"table {key!r} cannot be read ({exc})") from None
    if rows != entry.get("rows"):
        raise _corrupt(path, f"table {key!r} has {rows} rows; the manifest says {entry.get('rows')}")
    _VERIFIED[ident] = str(expected)
    fresh[key] = [*ident, expected]


def _read_stamp(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_stamp(path: Path, stamp: dict[str, Any]) -> None:
    # Best effort: a read-only world is simply hashed again by the next process.
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{STAMP}.", dir=path)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(stamp, fh)
        os.replace(tmp, path / STAMP)
    except OSError:
        Path(tmp).unlink(missing_ok=True)  # a full disk leaves no temp stamp behind


def read_world(path: str | Path, *, partners: list[str] | None = None, truth: bool = True) -> World:
    """Load a world (optionally only some partners — a partner process loads only its own), verified first.

    A partner export (``fedsim.federation.partner_data.export_partner_world``: manifest ``partner_export_of``, no
    config, no seed) is not a world: it is refused with a pointer to ``read_partner_export``.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if "partner_export_of" in manifest and "config" not in manifest:
        raise WorldError(
            f"{str(path)!r} is a partner export (one partner's tables and received reports, no config or seed), "
            "not a world; read it with fedsim.federation.partner_data.read_partner_export"
        )
    if not isinstance(manifest.get("partners"), dict):
        raise _corrupt(path, f"{MANIFEST} has no partners")
    names = partners if partners is not None else list(manifest["partners"])
    for name in names:
        if name not in manifest["partners"]:
            raise WorldError(
                f"partner {name!r} is not in world {str(path)!r}; it has: {', '.join(manifest['partners'])}"
            )
    if "partner_export_of" not in manifest or "tables" in manifest:
        wanted = {k for k in manifest.get("tables") or {} if k.startswith(tuple(f"partners/{n}/" for n in names))}
        if truth:
            wanted |= {k for k in manifest.get("tables") or {} if k.startswith("truth/")}
        verify_world(path, manifest, keys=wanted)
    try:
        config = WorldConfig.model_validate(manifest["config"])
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError or a missing key: one line either way
        raise _corrupt(path, f"{MANIFEST}: config is not valid ({str(exc).splitlines()[0]})") from None
    views = {}
    for name in names:
        kind = manifest["partners"][name]
        tables = {
            t: pq.read_table(path / "partners" / name / f"{t}.parquet")
            for t in TABLES_BY_KIND[kind]
            if (path / "partners" / name / f"{t}.parquet").exists()
        }
        views[name] = PartnerView(name=name, kind=kind, tables=tables)
    truth_tables = {p.stem: pq.read_table(p) for p in sorted((path / "truth").glob("*.parquet"))} if truth else {}
    return World(config=config, seed=int(manifest["seed"]), partners=views, truth=truth_tables, manifest=manifest)
