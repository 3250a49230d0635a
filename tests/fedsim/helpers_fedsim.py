"""Shared helpers for fedsim tests: running a regime on a built world, and the known-answer oracle (no mocks).

Worlds come from tests/worlds.py (``build_workspace``) and the fixtures of tests/conftest.py."""

from __future__ import annotations

from fedsim.regimes import RunContext, TrainingSettings, get_regime
from fedsim.runner import Workspace


def run_regime(
    ws: Workspace, regime: str, coalition: list[str], *, model: str = "logistic", epochs: int = 30, seed: int = 0
):  # type: ignore[no-untyped-def]
    ctx = RunContext(
        world=ws.world,
        coalition=tuple(coalition),
        model=model,
        seed=seed,
        split=ws.split,
        training=TrainingSettings(epochs, 512, 0.01, 0.1),
        features=ws.features,
        truth=ws.truth,
    )
    return get_regime(regime).run(ctx)


def oracle_scores(ws: Workspace, coalition: list[str], home_prefix: str = "bank"):  # type: ignore[no-untyped-def]
    """Bayes-optimal score Σ d_p x_p of a known-answer coalition on the test rows of the `home` partners."""
    import pandas as pd

    from synthetic.known_answer import partner_shifts

    shifts = partner_shifts(ws.world.config)
    ent = ws.truth["entities"]
    frames = []
    for p in coalition:
        sg = (
            ws.features[p].tables["signals"].merge(ent[ent["partner"] == p][["entity_id", "person_id"]], on="entity_id")
        )
        frames.append(sg.assign(dx=sg["x"] * shifts[p], partner=p))
    allx = pd.concat(frames)
    total = allx.groupby(["person_id", "ts"])["dx"].sum()
    home = allx[allx["partner"].str.startswith(home_prefix)]
    home = home[(home["ts"] >= ws.split.test_start) & (home["ts"] < ws.split.test_end)]
    score = total.reindex(pd.MultiIndex.from_frame(home[["person_id", "ts"]])).to_numpy()
    return pd.DataFrame(
        {
            "partner": home["partner"].to_numpy(),
            "entity_id": home["entity_id"].to_numpy(),
            "day": home["ts"].to_numpy() // 86_400,
            "decision_ts": home["ts"].to_numpy(),
            "score": score,
        }
    )
