"""Split learning on real Flower engines: simulation (Ray) and deployment (SuperLink + SuperNodes).

* on the known-answer world, vertical FL lands inside the bootstrap CIs of the same network trained
  centrally on the same rows (and, being the same computation, on the same scores);
* every message that crosses a partner's boundary, in a vertical and a hybrid run, is a PSI message,
  an embedding, a gradient, a model array or one of the declared small channels — no feature rows,
  no identifiers;
* an experiment run on the deployment engine produces the same kind of MLflow run as on the
  simulation engine.
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedsim.alignment import key_elements
from fedsim.evaluation import compare, evaluate
from fedsim.federation.engine import read_capture
from fedsim.federation.vertical.boundary import VerticalBoundaryRules, channels_seen, check_messages
from fedsim.regimes.hybrid import Hybrid
from fedsim.regimes.vertical import Vertical, holder_data
from tests.federation.split_reference import central_split_scores, scores_frame
from tests.federation.vertical_worlds import CHAIN_1, context, known_answer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("flower")]


def _evaluate(ws, scores):  # type: ignore[no-untyped-def]
    return evaluate(
        scores,
        ws.truth,
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        n_boot=500,
    )


def test_vertical_on_flower_is_within_the_ci_of_central_training() -> None:
    ws = known_answer()
    ctx = context(ws, rounds=4, engine="simulation")

    vertical = Vertical().run(ctx)
    central = scores_frame(central_split_scores(ctx, "bank_1", ("telco", "marketplace")))

    ev_v, ev_c = _evaluate(ws, vertical.scores), _evaluate(ws, central.scores)
    for metric in ("roc_auc", "ap"):
        lo, hi = ev_v.value(metric, column="lo"), ev_v.value(metric, column="hi")
        assert lo <= ev_c.value(metric) <= hi, f"central {metric} {ev_c.value(metric):.4f} outside [{lo:.4f}, {hi:.4f}]"
    diff = compare(
        vertical.scores,
        central.scores,
        ws.truth,
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        n_boot=500,
    )
    for metric in ("roc_auc", "ap"):
        # Not "the paired CI holds 0": the two are the same computation up to float rounding, so a tiny
        # but consistent difference would already exclude 0. The difference itself must be negligible.
        assert abs(diff.value(metric)) < 0.005
        assert diff.value(metric, column="hi") - diff.value(metric, column="lo") < 0.02
    # and it learned: the telco and marketplace carry signal beyond the bank's (AUC well above chance)
    assert ev_v.value("roc_auc", column="lo") > 0.6
    m = vertical.scores.merge(central.scores, on=["partner", "entity_id", "day"])
    assert np.abs(m["score_x"] - m["score_y"]).max() < 1e-5


# ------------------------------------------------------------------------------------------------
# Boundary
# ------------------------------------------------------------------------------------------------
def _rules(ws, coalition: tuple[str, ...]) -> VerticalBoundaryRules:  # type: ignore[no-untyped-def]
    feats = {p: ws.features[p] for p in coalition}
    keys = [f.keys() for f in feats.values()]
    hashes = np.concatenate([k[c].dropna().to_numpy(np.int64) for k in keys for c in k.columns if c != "entity_id"])
    ids = np.concatenate([f.entities for f in feats.values()])
    raw = np.concatenate([f.tables["signals"]["x"].to_numpy() for f in feats.values()])
    elements = [e for k in keys for e in key_elements(k, [c for c in k.columns if c != "entity_id"])["element"][:50]]
    rows = max(len(f.decision_rows().entity) for f in feats.values())
    return VerticalBoundaryRules(
        entity_ids=ids, key_hashes=hashes, raw_values=raw, key_elements=elements, position_limit=rows
    )


@pytest.mark.parametrize("regime", ["vertical", "hybrid"])
def test_only_declared_channels_cross_a_partner_boundary(regime: str) -> None:
    ws = known_answer(banks=2, entities=600)
    coalition = ("bank_1", "bank_2", "telco", "marketplace")
    capture = tempfile.mkdtemp(prefix=f"cap-{regime}-")
    ctx = context(ws, coalition, rounds=1, engine="simulation", capture_dir=capture)

    (Vertical() if regime == "vertical" else Hybrid()).run(ctx)

    messages = read_capture(capture)
    assert len(messages) > 20
    assert check_messages(messages, _rules(ws, coalition)) == []
    seen = channels_seen(messages)
    assert {"psi", "embedding", "gradient", "model", "schedule", "batch"} <= seen
    # the decision times that travel are the holders' own decision times (a registered leak), nothing else
    sent = np.concatenate([np.asarray(v) for m in messages for k, v in m.arrays.items() if "schedule_ts/" in k])
    own = np.concatenate([np.r_[d.ts_train, d.ts_test] for d in (holder_data(ctx, b) for b in ("bank_1", "bank_2"))])
    assert np.isin(sent, own).all()
    # labels never travel: no integer array equals a holder's training labels
    labels = {b: holder_data(ctx, b).y_train for b in ("bank_1", "bank_2")}
    for m in messages:
        for v in m.arrays.values():
            assert not any(np.asarray(v).shape == y.shape and np.array_equal(v, y) for y in labels.values())


def test_a_planted_identifier_is_caught() -> None:
    """The checker can fail: an entity id in a row-position array and a raw value in an embedding."""
    from fedsim.federation.engine import CapturedMessage
    from fedsim.federation.vertical.boundary import check_message

    ws = known_answer(banks=1, entities=400)
    rules = _rules(ws, CHAIN_1)
    hash_value = int(ws.features["telco"].keys()["phone_hash"].iloc[0])
    raw = float(ws.features["telco"].tables["signals"]["x"].iloc[0])
    bad = CapturedMessage(
        "from_partner",
        "query.step",
        {},
        arrays={
            "arrays/emb/bank_1": np.array([[raw, 0.5]]),
            "arrays/rows/telco": np.array([hash_value]),
            "arrays/features/telco": np.zeros(3),
        },
    )

    problems = check_message(bad, rules)

    assert any("raw feature" in p for p in problems)
    assert any("key hash" in p for p in problems)
    assert any("no declared channel" in p for p in problems)


# ------------------------------------------------------------------------------------------------
# Deployment engine through the experiment runner
# ------------------------------------------------------------------------------------------------
EXPERIMENT = textwrap.dedent("""\
    name: {name}
    world: {{preset: known-answer, seed: 5, overrides: {{known_answer: {{entities: 300, days: 14,
            bank_shifts: [1.5], prevalence: 0.2, placebo: false}}}}}}
    split: {{train_days: 7, gap_days: 0, test_days: 7}}
    regimes: [vertical]
    coalitions: [[bank_1, telco, marketplace]]
    models: [mlp]
    seeds: [0]
    training: {{epochs: 1, batch_size: 4096, learning_rate: 0.01, negative_rate: 0.5}}
    federation: {{rounds: 1, engine: {engine}, embedding_dim: 4}}
    metrics: {{bootstrap: 50}}
    """)


def _run_experiment(tmp: Path, engine: str) -> pd.Series:
    import mlflow

    from fedsim.runner import run_experiment
    from fedsim.tracking import Tracker

    path = tmp / f"{engine}.yaml"
    path.write_text(EXPERIMENT.format(name=f"vfl-{engine}", engine=engine))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    summary = run_experiment(path, tracking_uri=uri, workdir=tmp / "work", progress=False)
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[f"vfl-{engine}"])
    assert summary.executed == 1 and len(runs) == 1
    row = runs.iloc[0].copy()
    # MLflow holds the headline metrics; the tidy artifact holds the rest: compare every metric
    for name, value in Tracker(uri, f"vfl-{engine}").run_metrics(row["run_id"]).items():
        row[f"metrics.{name}"] = value
    return row


@pytest.mark.science  # ~140 s on 2 cores: `make science` runs it (make test must stay under 15 minutes)
def test_deployment_engine_gives_the_same_mlflow_run_as_simulation(tmp_path: Path) -> None:
    sim = _run_experiment(tmp_path, "simulation")
    dep = _run_experiment(tmp_path, "deployment")

    assert dep["status"] == sim["status"] == "FINISHED"
    assert dep["params.fl_engine"] == "deployment" and sim["params.fl_engine"] == "simulation"
    metric_names = lambda r: {c for c in r.index if c.startswith("metrics.") and pd.notna(r[c])}  # noqa: E731
    assert metric_names(dep) - {"metrics.federation_seconds"} == metric_names(sim) - {"metrics.federation_seconds"}
    # Same world, rows, seed and batches: the two engines compute the same model.
    for m in ("metrics.roc_auc", "metrics.ap", "metrics.psi.bank_1.telco.match_rate"):
        assert dep[m] == pytest.approx(sim[m], abs=1e-6)
    assert dep["metrics.psi.bank_1.telco.match_rate"] == 1.0
