"""World generation speed and peak memory against a raw numpy → Parquet baseline of the same shape.

    .venv/bin/python benchmarks/bench_world.py [--persons 100000] [--days 365] [--workers 1] [--block-persons N]
                                               [--quick]

* **generator** — the default preset with --persons/--days, seed 1, written to disk (Parquet, zstd), in a child
  process: person blocks of ``--block-persons`` (default 20,000) streamed to disk by
  ``synthetic.world.generate_to`` (:mod:`synthetic.blocks`), or with ``--block-persons 0`` the in-memory generator
  (``generate`` then ``write_world``, whose peak memory grows with the world). Events = every row written
  (partner views + hidden truth).
* **baseline** — a child process that draws the same number of rows per table with numpy, with the same
  column count and types (int64 / int32 / float64 / bool / short strings), and writes them with the same
  Parquet settings. It is the speed of "just making that many random rows and saving them".

Prints events/s of each, wall time split in generate / write, peak resident memory of each child
(``ru_maxrss``), and ratio = generator events/s ÷ baseline events/s (goal ≥ 0.5), by wall time and by CPU time.
Both run in the same invocation, one after the other: on a shared machine the load may change between them,
so the CPU-time ratio is the one to quote there. Not part of the test run: speed is measured, never
asserted — shared machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUICK = {"persons": 10_000, "days": 60}
GOAL_RATIO = 0.5


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and its finished workers: unlike wall time, hardly changed by
    other work on a shared machine (the two children may not run under the same load)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------
# Children (each prints one JSON line)
# ------------------------------------------------------------------------------------------------
def child_generate(*, persons: int, days: int, workers: int, blocks: int, out: Path) -> dict[str, float]:
    from synthetic.config import build_config
    from synthetic.world import generate, generate_to, read_manifest, write_world

    overrides: dict[str, object] = {"population": {"persons": persons, "days": days}}
    if blocks:
        overrides["generation"] = {"block_persons": blocks}
    config = build_config(preset="default", overrides=overrides)
    t0 = time.perf_counter()
    if blocks:  # generated and written in one streamed pass
        generate_to(config, 1, out, workers=workers, overwrite=True)
        t1 = time.perf_counter()
    else:
        world = generate(config, 1, workers=workers)
        t1 = time.perf_counter()
        write_world(world, out, overwrite=True)
    t2 = time.perf_counter()
    tables = read_manifest(out)["tables"]
    rows = sum(t["rows"] for t in tables.values())
    partner_rows = sum(t["rows"] for k, t in tables.items() if k.startswith("partners/"))
    return {
        "rows": rows,
        "partner_rows": partner_rows,
        "generate_s": t1 - t0,
        "write_s": t2 - t1,
        "total_s": t2 - t0,
        "cpu_s": _cpu_s(),
        "peak_rss_mb": _peak_rss_mb(),
        "peak_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,  # largest worker
    }


def _random_table(schema: pa.Schema, n: int, rng: np.random.Generator) -> pa.Table:
    """n random rows with the columns and types of `schema`."""
    vocab = pa.array(["app", "web", "transfer", "match", "in", "out", "call", "sms"])
    cols: dict[str, object] = {}
    for field in schema:
        t = field.type
        if pa.types.is_int64(t):
            cols[field.name] = rng.integers(0, 1 << 62, n, dtype=np.int64)
        elif pa.types.is_int32(t):
            cols[field.name] = rng.integers(0, 1 << 30, n, dtype=np.int32)
        elif pa.types.is_floating(t):
            cols[field.name] = np.round(rng.random(n) * 1000, 2)
        elif pa.types.is_boolean(t):
            cols[field.name] = rng.random(n) < 0.5
        else:
            cols[field.name] = pc.take(vocab, pa.array(rng.integers(0, len(vocab), n)))
    return pa.table(cols)


def child_baseline(*, world_dir: Path, out: Path) -> dict[str, float]:
    from synthetic.schema import TABLES_BY_KIND, TRUTH_TABLES

    manifest = json.loads((world_dir / "manifest.json").read_text())
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    rows = 0
    for key, info in manifest["tables"].items():
        parts = key.split("/")
        schema = (
            TRUTH_TABLES[parts[1]] if parts[0] == "truth" else TABLES_BY_KIND[manifest["partners"][parts[1]]][parts[2]]
        )
        table = _random_table(schema, info["rows"], rng)
        path = out / f"{key}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        # the generator's writer settings (synthetic.world._parquet_bytes)
        pq.write_table(
            table, path, compression="zstd", use_dictionary=True, write_statistics=True, row_group_size=1 << 20
        )
        rows += info["rows"]
    return {"rows": rows, "total_s": time.perf_counter() - t0, "cpu_s": _cpu_s(), "peak_rss_mb": _peak_rss_mb()}


# ------------------------------------------------------------------------------------------------
# Parent
# ------------------------------------------------------------------------------------------------
def _run_child(*args: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=100_000, help="persons in the world (default 100,000)")
    ap.add_argument("--days", type=int, default=365, help="horizon in days (default 365)")
    ap.add_argument("--workers", type=int, default=1, help="generator processes for legitimate activity")
    ap.add_argument(
        "--block-persons",
        type=int,
        default=20_000,
        help="persons per block, streamed to disk (default 20,000); 0 = the in-memory generator",
    )
    ap.add_argument("--quick", action="store_true", help=f"{QUICK['persons']:,} persons × {QUICK['days']} days")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, *rest = args.child
        if mode == "generate":
            result = child_generate(
                persons=int(rest[0]), days=int(rest[1]), workers=int(rest[2]), blocks=int(rest[3]), out=Path(rest[4])
            )
        else:
            result = child_baseline(world_dir=Path(rest[0]), out=Path(rest[1]))
        print(json.dumps(result))
        return
    persons, days = (QUICK["persons"], QUICK["days"]) if args.quick else (args.persons, args.days)
    with tempfile.TemporaryDirectory(prefix="bench-world-") as tmp:
        world_dir, base_dir = Path(tmp) / "world", Path(tmp) / "baseline"
        gen = _run_child(
            "generate", str(persons), str(days), str(args.workers), str(args.block_persons), str(world_dir)
        )
        base = _run_child("baseline", str(world_dir), str(base_dir))
        size_gen = sum(p.stat().st_size for p in world_dir.rglob("*.parquet")) / 2**20
        size_base = sum(p.stat().st_size for p in base_dir.rglob("*.parquet")) / 2**20
    gen_rate, base_rate = gen["rows"] / gen["total_s"], base["rows"] / base["total_s"]
    ratio = gen_rate / base_rate
    print(
        f"[{time.strftime('%Y-%m-%d %H:%M')}] world generation, default preset, {persons:,} persons × {days} days, "
        f"workers={args.workers}, "
        + (f"person blocks of {args.block_persons:,} streamed to disk" if args.block_persons else "in memory")
    )
    print(f"  events (rows written) {gen['rows']:>14,.0f}   of which partner views {gen['partner_rows']:,.0f}")
    print(
        f"  generator  {gen_rate:>12,.0f} events/s   {gen['total_s']:7.1f} s (generate {gen['generate_s']:.1f} + "
        f"write {gen['write_s']:.1f})   peak {gen['peak_rss_mb']:,.0f} MiB (largest worker "
        f"{gen['peak_worker_rss_mb']:,.0f} MiB)   {size_gen:,.0f} MiB on disk"
    )
    print(
        f"  baseline   {base_rate:>12,.0f} events/s   {base['total_s']:7.1f} s (numpy draw + Parquet)"
        f"              peak {base['peak_rss_mb']:,.0f} MiB   {size_base:,.0f} MiB on disk"
    )
    verdict = "meets" if ratio >= GOAL_RATIO else "below"
    print(f"  ratio generator / baseline = {ratio:.2f} by wall time ({verdict} the goal of ≥ {GOAL_RATIO})")
    cpu_ratio = (gen["rows"] / gen["cpu_s"]) / (base["rows"] / base["cpu_s"])
    verdict = "meets" if cpu_ratio >= GOAL_RATIO else "below"
    print(
        f"  ratio generator / baseline = {cpu_ratio:.2f} by CPU time ({gen['cpu_s']:.0f} s vs {base['cpu_s']:.0f} s; "
        f"{verdict} the goal; the fairer figure on a shared machine)"
    )


if __name__ == "__main__":
    main()
