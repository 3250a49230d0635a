"""DP-SGD step time ÷ non-private step time for the MLP at the demo batch size (goal: ≤ 2).

Three variants through the one shared loop (``fedsim.training.fit``):

* ``plain``     — no DP, shuffled mini-batches of ``batch`` rows;
* ``dp_rows``   — Opacus DP-SGD, one example per row, Poisson batches of expected ``batch`` rows;
* ``dp_entity`` — entity-level DP-SGD as the regimes run it: rows grouped per entity (``rows_per_entity``
  on average, capped at 16) into padded blocks, Poisson batches of expected ``batch`` entities.

Per-step time = training seconds / optimizer steps; per-epoch time = training seconds / epochs (an
entity-level step covers ~``rows_per_entity`` × more rows, so per epoch is the like-for-like cost).
The variants are run interleaved, ``--repeats`` times, after one warm-up each, and the minimum is
kept (the least disturbed run: this machine is shared).

Run: ``.venv/bin/python benchmarks/bench_dp.py [--rows 20000 --features 60 --batch 512 --threads 1]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from record import emit


def _data(rows: int, features: int, rows_per_entity: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=rows) > 2.5).astype(np.float32)
    groups = rng.integers(0, max(1, int(rows / rows_per_entity)), size=rows)
    return X, y, groups


def _time_plain(X: np.ndarray, y: np.ndarray, cfg: Any) -> tuple[float, float]:
    from fedsim.models import make_model
    from fedsim.training import fit

    model = make_model("mlp", n_features=X.shape[1], seed=0)
    report = fit(model, X, y, config=cfg)
    return report.seconds / report.steps, report.seconds / report.epochs


def _time_dp(X: np.ndarray, y: np.ndarray, groups: np.ndarray | None, cfg: Any) -> tuple[float, float]:
    from fedsim.models import make_model
    from fedsim.privacy import PrivacySettings, make_private_fit

    model = make_model("mlp", n_features=X.shape[1], seed=0)
    out = make_private_fit(
        model, X, y, privacy=PrivacySettings(noise_multiplier=1.0, accountant="rdp"), config=cfg, seed=0, groups=groups
    )
    r = out.report  # fit() time only: no accounting, no wrapping
    return r.seconds / r.steps, r.seconds / r.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=60)
    parser.add_argument("--batch", type=int, default=512, help="demo batch size (experiments/demo.yaml)")
    parser.add_argument("--rows-per-entity", type=float, default=3.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from fedsim.training import TrainConfig

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    X, y, groups = _data(args.rows, args.features, args.rows_per_entity, seed=0)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, learning_rate=0.01, seed=0)
    runs = {
        "plain": lambda: _time_plain(X, y, cfg),
        "dp_rows": lambda: _time_dp(X, y, None, cfg),
        "dp_entity": lambda: _time_dp(X, y, groups, cfg),
    }
    best: dict[str, tuple[float, float]] = {}
    for run in runs.values():
        run()  # warm-up
    for _ in range(args.repeats):
        for name, run in runs.items():
            step, epoch = run()
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], step), min(old[1], epoch))
    print(
        f"[{time.strftime('%Y-%m-%d %H:%M')}] rows={args.rows} features={args.features} batch={args.batch} "
        f"threads={args.threads} rows/entity={args.rows_per_entity}"
    )
    for name, (step, epoch) in best.items():
        print(f"{name:10s} {1000 * step:8.2f} ms/step {1000 * epoch:9.1f} ms/epoch")
    plain_step, plain_epoch = best["plain"]
    for name in ("dp_rows", "dp_entity"):
        step, epoch = best[name]
        print(f"{name} / plain: per step {step / plain_step:.2f}, per epoch {epoch / plain_epoch:.2f} (goal <= 2)")
    size = f"rows={args.rows} features={args.features} batch={args.batch} threads={args.threads}"
    for name, (step, epoch) in best.items():  # the rows run_all.py keeps (benchmarks/results/dp.csv)
        base = {} if name == "plain" else {"goal": "<= 2"}
        emit(f"{name}.per_step", 1000 * step, "ms", **_vs(name, "per_step", plain_step, base), size=size)
        emit(f"{name}.per_epoch", 1000 * epoch, "ms", **_vs(name, "per_epoch", plain_epoch, base), size=size)


def _vs(name: str, per: str, plain: float, extra: dict[str, str]) -> dict[str, Any]:
    """Baseline fields of a DP row: the plain run's same measure, in ms (none for plain itself)."""
    return {} if name == "plain" else {"baseline": f"plain.{per}", "baseline_value": 1000 * plain, **extra}


if __name__ == "__main__":
    main()
