"""Person-block generation of a realistic world, streamed to disk: memory bounded by a block, not the population.

Used when the config has ``generation`` (:class:`~synthetic.config.GenerationConfig`). Three steps:

1. **Global pass** (one process, O(persons) memory): population, accounts, marketplace accounts, young people's
   new accounts, new numbers, crews, mules and every fraud case with its journey — the same code and streams as
   the in-memory generator (:mod:`synthetic.realistic`). The partners' customer/subscriber/user tables, their
   reports and the hidden truth (except provenance) come from here too.
2. **Blocks**: the bulk — each person's legitimate activity — is drawn per block of ``block_persons`` persons
   (block ``b`` = persons ``[b·B, (b+1)·B)``), with streams named by the block index
   (:class:`~synthetic.behaviour.Cohort`), so a block's rows depend on (world root, block index) only, never
   on which process made it or how many ran. The global pass's event rows (fraud, young accounts, new numbers)
   join the block of the account owner that sends (transfers; receiver when no person sends) or of the person
   (logins): every (sender, payee) and (person, device) pair lives in one block, so the history flags
   ``new_payee`` / ``new_device`` are exact. Each block builds its partner event tables (same code as the
   in-memory views) and writes them as Arrow IPC parts, one record batch per time window of ``window_days``.
3. **Merge**: per partner event table, window after window, the blocks' batches are concatenated in block order
   and stably sorted by ``ts`` and written to the final Parquet file (one row group per window; equal times keep
   block order, then the block's own ledger order). The rows a case injected are found on the way and become
   ``truth/provenance`` with their final row numbers.

Local ids of rows made in blocks (``listing_id``, ``order_id``) are a keyed bijection of (block, row)
(:func:`block_ids`): distinct, without order, and independent of the other blocks. Workers are local processes
(``spawn``); each loads the global pass once from a pickle in the work directory.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from synthetic.behaviour import Cohort, activate_new_numbers, legit_shard, open_young_accounts, shards
from synthetic.config import WorldConfig
from synthetic.fraud import INJECTORS
from synthetic.fraud.common import Crews, FraudContext
from synthetic.ids import Keys, rng_for, splitmix64
from synthetic.ledger import LEDGER_COLUMNS, PROVENANCE, Ledger
from synthetic.population import RawIds, build_population
from synthetic.realistic import _market_accounts
from synthetic.schema import DAY, FRAUD_TYPES, TABLES_BY_KIND, TRUTH_TABLES
from synthetic.truth import TruthBuilder, ViewTrace
from synthetic.views import ViewBuilder

EVENT_TABLES: dict[str, tuple[str, ...]] = {
    "bank": ("transactions", "sessions"),
    "telco": ("sim_events", "calls"),
    "marketplace": ("listings", "messages", "orders"),
}
"""Per partner kind, the tables made in blocks (in the order their provenance is written)."""
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": True, "write_statistics": True}
ROW_GROUP = 1 << 20
_CASE, _PHASE = "_case_id", "_phase"  # hidden part columns: the case (and phase) that injected a row
_MARGIN_DAYS = 14  # rows may lie a little before day 0 or after the horizon (logins, chats, late payments)


@dataclass
class Plan:
    """Everything a block needs, made once by the global pass (pickled to the workers)."""

    config: WorldConfig
    root: int
    pop: Any
    views: ViewBuilder  # stripped: lookups only (no ledger, context or finished partners)
    global_rows: list[dict[str, dict[str, np.ndarray]]]  # per block: table -> columns (incl. provenance)
    parts: Path

    @property
    def block_persons(self) -> int:
        assert self.config.generation is not None
        return self.config.generation.block_persons

    @property
    def n_blocks(self) -> int:
        return len(self.global_rows)

    @property
    def windows(self) -> tuple[int, int, int]:
        """(start ts, width in s, count) of the merge windows; every row falls in one (clipped at both ends)."""
        assert self.config.generation is not None
        width = self.config.generation.window_days * DAY
        t0 = -_MARGIN_DAYS * DAY
        end = (self.config.population.days + _MARGIN_DAYS) * DAY
        return t0, width, max(1, -(-(end - t0) // width))


def block_ids(root: int, partner: str, table: str, block: int, n: int) -> np.ndarray:
    """Local ids of rows ``0..n-1`` of a block's part of a table: a keyed 4-round Feistel bijection on 62 bits of
    (block << 36 | row) (Luby & Rackoff 1988), with round keys from the world's streams. Distinct across blocks and
    rows (a bijection), non-negative int64, carrying no order."""
    if n >= 1 << 36:
        raise ValueError(f"a block's {partner}/{table} has {n} rows; allowed: fewer than 2^36")
    keys = rng_for(root, "view", partner, table, "block-ids").integers(0, 1 << 62, 4, dtype=np.int64).astype(np.uint64)
    x = (np.uint64(block) << np.uint64(36)) | np.arange(n, dtype=np.uint64)
    mask = np.uint64((1 << 31) - 1)
    left, right = x >> np.uint64(31), x & mask
    for k in keys:
        left, right = right, left ^ (splitmix64(right ^ k) & mask)
    return ((left << np.uint64(31)) | right).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# 1. Global pass
# ------------------------------------------------------------------------------------------------
def _global_pass(config: WorldConfig, root: int, keys: Keys | None) -> tuple[FraudContext, Any, ViewBuilder]:
    """Population, fraud and the partners' static tables; returns (fraud context, global ledger, views)."""
    ids = RawIds(root, capacity=config.population.persons * 12 + 200_000)
    pop = build_population(config, root, ids)
    market = _market_accounts(pop, ids)
    ledger = Ledger()
    open_young_accounts(config, root, pop, ids, ledger)
    activate_new_numbers(config, root, pop, ledger)
    ctx = FraudContext(config=config, seed=root, pop=pop, ids=ids, ledger=ledger, market_accounts=market, crews=Crews())
    for fraud_type in FRAUD_TYPES:
        INJECTORS[fraud_type](ctx)
    rows = {
        t: {c: np.concatenate([p[c] for p in ledger.chunks[t]]) for c in (*cols, *PROVENANCE)}
        for t, cols in LEDGER_COLUMNS.items()
        if ledger.chunks[t]
    }
    # The partners' static tables (customers, accounts, subscribers, users, reports, flags) need only the global
    # rows (a burner's activation is a fraud row); the event tables built here from them alone are dropped.
    views = ViewBuilder(config, root, pop, market, ctx, _finalized(rows), keys=keys)
    views.build_banks()
    views.build_telcos()
    views.build_marketplaces()
    return ctx, rows, views


def _finalized(rows: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    led = Ledger()
    for t in LEDGER_COLUMNS:
        led.chunks[t].append(dict(rows[t]) if t in rows else _empty_chunk(t))
    return led.finalize()


_FLOATS = {"amount", "price", "ratio"}
_STRINGS = {"kind", "channel", "name_check", "event", "category", "method", "phase"}
_BOOLS = {"is_instant", "known_payee", "known_device", "remote_access", "intl", "photos_reused", "contains_phone"}
_BOOLS |= {"contains_iban", "contains_url", "off_platform"}


def _empty_chunk(table: str) -> dict[str, np.ndarray]:
    """Zero rows of a ledger table with the column types the generators write (not float64 everywhere)."""

    def dtype(c: str) -> Any:
        return float if c in _FLOATS else object if c in _STRINGS else bool if c in _BOOLS else np.int64

    return {c: np.zeros(0, dtype=dtype(c)) for c in (*LEDGER_COLUMNS[table], *PROVENANCE)}


def _split_by_block(config: WorldConfig, pop: Any, rows: dict[str, dict[str, np.ndarray]], n_blocks: int) -> list:
    """The global event rows of each block (see the module notes for which block a row joins)."""
    assert config.generation is not None
    size = config.generation.block_persons
    owner = pop.accounts.owner
    out: list[dict[str, dict[str, np.ndarray]]] = [{} for _ in range(n_blocks)]
    for t, cols in rows.items():
        if t == "transfers":
            frm, to = cols["from_acct"], cols["to_acct"]
            person = np.where(frm >= 0, owner[np.maximum(frm, 0)], -1)
            person = np.where(person >= 0, person, np.where(to >= 0, owner[np.maximum(to, 0)], -1))
        elif t == "logins":
            person = cols["person"]
        else:  # no history flag: any block will do
            person = np.zeros(len(cols["ts"]), dtype=np.int64)
        block = np.minimum(np.maximum(person, 0) // size, n_blocks - 1)
        for b in np.unique(block):
            sel = block == b
            out[int(b)][t] = {c: v[sel] for c, v in cols.items()}
    return out


# ------------------------------------------------------------------------------------------------
# 2. Blocks
# ------------------------------------------------------------------------------------------------
_PLAN: Plan | None = None  # the plan of this worker process


def _init_worker(path: str) -> None:
    global _PLAN
    with open(path, "rb") as fh:
        _PLAN = pickle.load(fh)


def _run_in_worker(block: int) -> dict[str, list[int]]:
    assert _PLAN is not None
    return run_block(_PLAN, block)


def run_block(plan: Plan, block: int) -> dict[str, list[int]]:
    """Make block ``block``: its ledger, its partner event tables as IPC parts; returns rows per window per table."""
    config, pop, size = plan.config, plan.pop, plan.block_persons
    lo, hi = block * size, min((block + 1) * size, pop.n)
    cohort = Cohort(lo, hi, ("block", block))
    led = Ledger()
    for d0, d1 in shards(config.population.days):
        for table, chunks in legit_shard(config, plan.root, pop, d0, d1, cohort).chunks.items():
            led.chunks[table].extend(chunks)
    for table, cols in plan.global_rows[block].items():
        led.chunks[table].append(dict(cols))
    views = _block_views(plan, led.finalize(), block)
    out: dict[str, list[int]] = {}
    folder = plan.parts / f"{block:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    dummy = np.random.default_rng(0)  # block ids draw nothing: the market builder's rng is not used
    for name, kind, index in _partners(config):
        if kind == "bank":
            tables = views.bank_events(index, name)
        elif kind == "telco":
            tables = views.telco_events(index, name)
        else:
            tables = views.market_events(index, name, dummy)
        hidden = _hidden_columns(views.trace, name, tables)
        for table, data in tables.items():
            out[f"{name}/{table}"] = _write_part(plan, folder / f"{name}__{table}.arrow", data, hidden[table])
    return out


def _partners(config: WorldConfig) -> list[tuple[str, str, int]]:
    """(name, kind, index among its kind) of each partner with event tables, in the world's order."""
    seen: dict[str, int] = {}
    out = []
    for name, kind in config.partner_kinds().items():
        if kind in EVENT_TABLES:
            out.append((name, kind, seen.get(kind, 0)))
            seen[kind] = seen.get(kind, 0) + 1
    return out


def _block_views(plan: Plan, ledger: dict[str, dict[str, np.ndarray]], block: int) -> ViewBuilder:
    views = plan.views
    views.led = ledger
    views.trace = ViewTrace(person_entity=views.trace.person_entity, market_uid=views.trace.market_uid)
    views.local_ids = lambda _rng, partner, table, n: block_ids(plan.root, partner, table, block, n)
    return views


def _hidden_columns(trace: ViewTrace, partner: str, tables: dict[str, pa.Table]) -> dict[str, dict[str, np.ndarray]]:
    """Per table: the case id (-1: none) and phase of each row, from the provenance the view builder recorded."""
    out = {
        t: {_CASE: np.full(tbl.num_rows, -1, np.int64), _PHASE: np.full(tbl.num_rows, "", object)}
        for t, tbl in tables.items()
    }
    for rec in trace.provenance:
        if rec["partner"][0] == partner:
            t = str(rec["table"][0])
            out[t][_CASE][rec["row"]] = rec["case_id"]
            out[t][_PHASE][rec["row"]] = rec["phase"]
    return out


def _write_part(plan: Plan, path: Path, table: pa.Table, hidden: dict[str, np.ndarray]) -> list[int]:
    ts = table.column("ts").to_numpy()
    if len(ts) > 1 and np.any(ts[1:] < ts[:-1]):
        raise RuntimeError(f"{path.name}: a block's table is not in time order")  # the views keep ledger order
    t0, width, count = plan.windows
    edges = np.searchsorted(ts, t0 + width * np.arange(1, count), side="left")
    bounds = np.r_[0, edges, len(ts)]
    full = table.append_column(_CASE, pa.array(hidden[_CASE])).append_column(
        _PHASE, pa.array(hidden[_PHASE], type=pa.string())
    )
    options = ipc.IpcWriteOptions(compression="lz4")  # parts are temporary: fast over small
    with ipc.new_file(str(path), full.schema, options=options) as writer:
        for w in range(count):
            part = full.slice(int(bounds[w]), int(bounds[w + 1] - bounds[w]))
            writer.write_batch(part.combine_chunks().to_batches()[0] if part.num_rows else _empty_batch(full.schema))
    return np.diff(bounds).astype(int).tolist()


def _empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


# ------------------------------------------------------------------------------------------------
# 3. Merge, and the whole run
# ------------------------------------------------------------------------------------------------
def merge_table(parts: Path, n_blocks: int, windows: int, name: str, kind: str, table: str, out: Path) -> dict:
    """One partner event table from the blocks' parts: window by window, blocks in order, stably sorted by ts.

    Returns its row count, its file's sha256 and the provenance of the rows cases injected (final row numbers).
    """
    schema = TABLES_BY_KIND[kind][table]
    # Plain file reads, not memory maps: mapped pages of the parts stay resident (and count as the process's RSS)
    # until the kernel needs them, so a memory-mapped merge of a 1M-person table looked like gigabytes in use.
    readers = [ipc.open_file(pa.OSFile(str(parts / f"{b:06d}" / f"{name}__{table}.arrow"))) for b in range(n_blocks)]
    prov: list[dict[str, np.ndarray]] = []
    offset = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(str(out), schema, **PARQUET_OPTIONS) as writer:
        for w in range(windows):
            batches = [b for b in (r.get_batch(w) for r in readers) if b.num_rows]
            if not batches:
                continue
            merged = pa.Table.from_batches(batches)
            merged = merged.take(np.argsort(merged.column("ts").to_numpy(), kind="stable"))
            case = merged.column(_CASE).to_numpy()
            hit = np.flatnonzero(case >= 0)
            if len(hit):
                prov.append(
                    {
                        "partner": np.full(len(hit), name, dtype=object),
                        "table": np.full(len(hit), table, dtype=object),
                        "row": (offset + hit).astype(np.int64),
                        "case_id": case[hit],
                        "phase": merged.column(_PHASE).take(hit).to_numpy(zero_copy_only=False).astype(object),
                    }
                )
            writer.write_table(merged.select(schema.names), row_group_size=ROW_GROUP)
            offset += merged.num_rows
    return {"rows": offset, "sha256": sha256_file(out), "provenance": prov}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_parquet(table: pa.Table, path: Path) -> dict[str, Any]:
    """The in-memory generator's writer settings (:func:`synthetic.world._parquet_bytes`): same table, same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, str(path), row_group_size=ROW_GROUP, **PARQUET_OPTIONS)
    return {"rows": table.num_rows, "sha256": sha256_file(path)}


def _merge_in_worker(args: tuple[Any, ...]) -> dict:
    return merge_table(*args)


def write_blocks(
    config: WorldConfig, root: int, out: Path, *, keys: Keys | None = None, workers: int = 1, progress: Any = None
) -> dict[str, dict[str, Any]]:
    """Generate the world of (config, root) block by block into the (new, empty) directory ``out``.

    Writes ``partners/<p>/<t>.parquet`` and ``truth/<t>.parquet`` (no manifest) and returns, per table key,
    its rows and sha256. ``workers`` local processes make the blocks and merge the tables; the bytes do not
    depend on it. ``keys``: the join keys of a world with a secret (``root`` is then its secret root).
    """
    assert config.generation is not None
    ctx, rows, views = _global_pass(config, root, keys)
    pop = ctx.pop
    n_blocks = -(-pop.n // config.generation.block_persons)
    parts = out / ".parts"
    parts.mkdir(parents=True)
    info: dict[str, dict[str, Any]] = {}
    for name, pv in views.partners.items():  # the static tables
        for table, data in sorted(pv.tables.items()):
            if table not in EVENT_TABLES.get(pv.kind, ()):
                info[f"partners/{name}/{table}"] = _write_parquet(data, out / "partners" / name / f"{table}.parquet")
    worker_views = _stripped(views)
    plan = Plan(config, root, pop, worker_views, _split_by_block(config, pop, rows, n_blocks), parts)
    del rows
    jobs = [
        (parts, n_blocks, plan.windows[2], name, kind, table, out / "partners" / name / f"{table}.parquet")
        for name, kind, _ in _partners(config)
        for table in EVENT_TABLES[kind]
    ]
    block_task = progress.add_task("person blocks", total=n_blocks) if progress is not None else None
    merge_task = progress.add_task("merging tables", total=len(jobs)) if progress is not None else None
    merged: list[dict] = []
    if workers > 1:
        with open(parts / "plan.pkl", "wb") as fh:
            pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
        ctx_spawn = get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=ctx_spawn, initializer=_init_worker, initargs=(str(parts / "plan.pkl"),)
        ) as pool:
            for _ in pool.map(_run_in_worker, range(n_blocks)):
                _advance(progress, block_task)
            for result in pool.map(_merge_in_worker, jobs):
                merged.append(result)
                _advance(progress, merge_task)
    else:
        for b in range(n_blocks):
            run_block(plan, b)
            _advance(progress, block_task)
        plan.views.led, plan.views.trace = {}, ViewTrace()  # the last block's ledger is not needed by the merge
        for job in jobs:
            merged.append(merge_table(*job))
            _advance(progress, merge_task)
    shutil.rmtree(parts)
    trace = views.trace
    trace.provenance = [p for result in merged for p in result.pop("provenance")]
    for job, result in zip(jobs, merged, strict=True):
        info[f"partners/{job[3]}/{job[5]}"] = result
    truth = TruthBuilder(config, pop, ctx, views.cases, views.keys, trace).tables(views.partners)
    for table, data in truth.items():
        if data.schema.names != TRUTH_TABLES[table].names:
            raise RuntimeError(f"truth/{table}: columns {data.schema.names} != schema {TRUTH_TABLES[table].names}")
        info[f"truth/{table}"] = _write_parquet(data, out / "truth" / f"{table}.parquet")
    return dict(sorted(info.items()))


def _advance(progress: Any, task: Any) -> None:
    if progress is not None:
        progress.advance(task)


def _stripped(views: ViewBuilder) -> ViewBuilder:
    """A copy of the view builder with only what event tables need (what the workers are sent)."""
    out = copy.copy(views)
    out.ctx = None  # type: ignore[assignment]
    out.partners, out.led, out.cases = {}, {}, {}
    out.trace = ViewTrace(person_entity=views.trace.person_entity, market_uid=views.trace.market_uid)
    return out
