"""Feature building speed and the demo's wall time, and how both grow from 10k to 100k persons.

    .venv/bin/python benchmarks/bench_pipeline.py [--quick]

Prints decision rows per second of feature building per partner kind at each size, the growth
factor of time against the growth of rows (1.0 = linear), and the wall time of experiments/demo.yaml
(a full `fedsim run` into a temporary MLflow store) — the number a researcher waits for.
Speed is measured here, never asserted in tests: machines are noisy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from record import emit  # noqa: E402


def feature_speed(persons: int, days: int) -> dict[str, tuple[int, float]]:
    from fedsim.features import PartnerFeatures
    from synthetic.config import build_config
    from synthetic.world import generate

    world = generate(build_config(preset="default", overrides={"population": {"persons": persons, "days": days}}), 1)
    out: dict[str, tuple[int, float]] = {}
    for name, view in world.partners.items():
        t0 = time.perf_counter()
        f = PartnerFeatures.for_view(view)
        rows = f.decision_rows()
        f.own(rows)
        out[name] = (len(rows.entity), time.perf_counter() - t0)
    return out


def demo_wall_time() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("fedsim")),
                "run",
                str(ROOT / "experiments/demo.yaml"),
                "--tracking-uri",
                f"sqlite:///{tmp}/mlflow.db",
                "--workdir",
                f"{tmp}/w",
                "--quiet",
            ],
            check=True,
            cwd=tmp,
            capture_output=True,
        )
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="2k and 20k persons, 60 days")
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    days = 60 if args.quick else args.days
    print(f"feature building, default preset, {days} days")
    results = {n: feature_speed(n, days) for n in (small, large)}
    for partner in results[small]:
        (r1, t1), (r2, t2) = results[small][partner], results[large][partner]
        print(
            f"  {partner:12s} {small:>7,d} persons: {r1:>10,d} rows {r1 / t1:>12,.0f} rows/s | "
            f"{large:>7,d}: {r2:>11,d} rows {r2 / t2:>12,.0f} rows/s | time x{t2 / t1:5.1f} for rows x{r2 / r1:5.1f}"
            f" (scaling {(t2 / t1) / (r2 / r1):.2f}; 1.0 = linear)"
        )
        # kept by run_all.py (benchmarks/results/pipeline.csv); scaling = time growth ÷ row growth (1 = linear)
        for persons, (rows, seconds) in ((small, (r1, t1)), (large, (r2, t2))):
            emit(f"features.{partner}", rows / seconds, "rows/s", size=f"persons={persons} days={days}")
        emit(f"features.{partner}.scaling", (t2 / t1) / (r2 / r1), "x", size=f"persons={small}->{large} days={days}")
    demo = demo_wall_time()
    print(f"demo (experiments/demo.yaml, end to end incl. world + MLflow): {demo:.1f} s")
    emit("demo.wall_time", demo, "s", size="experiments/demo.yaml")


if __name__ == "__main__":
    main()
