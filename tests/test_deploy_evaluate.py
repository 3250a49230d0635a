"""`fedsim deploy evaluate`: a deployment's partner scores become the same MLflow run a simulated cell makes.

Scores here come from the in-process engine (the same rounds and task code as the Flower apps, written per
partner as each ClientApp writes them); tests/federation/test_deployment_recipe.py runs the real recipe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from fedsim.cli import app
from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

# the module's worlds are built once: keep its tests in one xdist worker
pytestmark = pytest.mark.xdist_group("test_deploy_evaluate")

BANKS = ["bank_1", "bank_2"]


def write_experiment(tmp_path: Path, **federation: Any) -> Path:
    # a deployment's world has a secret (its partners' exports carry no seed that could rebuild it)
    (tmp_path / "world.secret").write_bytes(b"deploy-evaluate-test-secret-0123456789")
    spec = {
        "name": "deploy-eval",
        "world": {**KNOWN_ANSWER_WORLD, "secret_file": "world.secret"},
        "split": KNOWN_ANSWER_SPLIT,
        "regimes": ["horizontal"],
        "coalitions": [BANKS],
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "negative_rate": 0.2},
        "federation": {"rounds": 2, **federation},
        "metrics": {"bootstrap": 20},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def in_process_scores(experiment: Path, workdir: Path, dest: Path) -> None:
    """Federate the cell without Flower and lay its results out as a deployment's out-dir:
    ``<partner>/scores_test.parquet`` and ``server/outcome.json``."""
    from fedsim.deploy import deployment_world, horizontal_cell
    from fedsim.experiment import expand, load_experiment
    from fedsim.federation.horizontal import HorizontalSettings, run_horizontal
    from fedsim.runner import Workspace, partners_of

    spec = load_experiment(experiment)
    partners = partners_of(spec)
    kinds = {p: p.rstrip("0123456789").rstrip("_") for p in partners}
    ws = Workspace.build(spec, deployment_world(spec, workdir / "worlds"), workdir / "artifacts")
    ctx = ws.context(horizontal_cell(expand(spec, partners, kinds=kinds), seed=None, epsilon=None))
    run = run_horizontal(ctx, BANKS, HorizontalSettings.from_context(ctx), engine="in_process")
    for partner, frame in run.scores.groupby("partner"):
        (dest / str(partner)).mkdir(parents=True, exist_ok=True)
        frame.reset_index(drop=True).to_parquet(dest / str(partner) / "scores_test.parquet", index=False)
    run.outcome.write(dest / "server" / "outcome.json")


def re_evaluated(experiment: Path, workdir: Path, scores: pd.DataFrame) -> dict[str, float]:
    """The evaluation metrics of ``scores``, computed here from the evaluator's API (not through the command)."""
    from fedsim.deploy import deployment_world
    from fedsim.evaluation.api import evaluate_calibrated
    from fedsim.experiment import load_experiment
    from fedsim.runner import Workspace

    spec = load_experiment(experiment)
    ws = Workspace.build(spec, deployment_world(spec, workdir / "worlds"), workdir / "artifacts")
    m = spec.metrics
    ev = evaluate_calibrated(
        scores,
        ws.truth,
        capacity=ws.capacity(),
        scales=m.capacity_scales,
        partner_sizes=ws.partner_sizes,
        test_window_ts=(ws.split.test_start, ws.split.test_end),
        seed=0,
        horizons_h=m.horizons_h,
        latencies_h=m.latencies_h,
        interdiction=m.interdiction,
        n_boot=m.bootstrap,
    )
    return ev.flat()


def evaluate_cli(experiment: Path, scores: Path, uri: str, workdir: Path) -> Any:
    args = ["deploy", "evaluate", str(experiment), "--scores", str(scores), "--tracking-uri", uri]
    return CliRunner().invoke(app, [*args, "--workdir", str(workdir)])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(experiment, workdir, out-dir) with the in-process federation's scores laid out as a deployment's."""
    tmp = tmp_path_factory.mktemp("deploy-eval")
    experiment = write_experiment(tmp)
    in_process_scores(experiment, tmp / "work", tmp / "out")
    return experiment, tmp / "work", tmp / "out"


def test_the_logged_run_is_the_evaluation_of_the_partners_scores(
    deployed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import mlflow

    from fedsim.tracking import Tracker

    experiment, workdir, out = deployed
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # execute
    result = evaluate_cli(experiment, out, uri, workdir)
    # assert: one finished run, tagged as a deployment, whose metrics are those of the partners' scores
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("deploy-eval").experiment_id])  # type: ignore[union-attr]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["fl_engine"] == "deployment" and params["federation.engine"] == "deployment"
    assert params["deployment_scores"] == str(out.resolve()) and params["fl_groups"] == "bank: bank_1+bank_2"
    scores = pd.concat([pd.read_parquet(out / p / "scores_test.parquet") for p in BANKS], ignore_index=True)
    expected = re_evaluated(experiment, workdir, scores)
    metrics = Tracker(uri, "deploy-eval").run_metrics(run.info.run_id)  # headline + the tidy metric table
    assert expected and {k: metrics[k] for k in expected} == pytest.approx(expected, nan_ok=True)
    assert len(client.get_metric_history(run.info.run_id, "train_loss.bank")) == 2
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"scores", "metrics", "case_alerts", "config"} <= logged


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("drop bank_2", "no test scores from partner(s) bank_2"),
        ("shift bank_1", "outside the test window"),
        ("drop outcome", "outcome.json"),
        ("foreign rows", "rows of partner(s) ['bank_2'] in bank_1"),
    ],
)
def test_incomplete_or_wrong_scores_exit_2_naming_what_is_wrong(
    deployed: tuple[Path, Path, Path], tmp_path: Path, damage: str, says: str
) -> None:
    import shutil

    experiment, workdir, out = deployed
    broken = tmp_path / "out"
    shutil.copytree(out, broken)
    bank_1 = broken / "bank_1" / "scores_test.parquet"
    if damage == "drop bank_2":
        shutil.rmtree(broken / "bank_2")
    elif damage == "shift bank_1":  # the second test window's scores handed in as the test window's
        frame = pd.read_parquet(bank_1)
        frame["decision_ts"] += 30 * 86400
        frame.to_parquet(bank_1, index=False)
    elif damage == "drop outcome":
        (broken / "server" / "outcome.json").unlink()
    else:
        frame = pd.read_parquet(bank_1)
        frame.loc[0, "partner"] = "bank_2"
        frame.to_parquet(bank_1, index=False)
    result = evaluate_cli(experiment, broken, f"sqlite:///{tmp_path}/mlflow.db", workdir)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split()) and "Traceback" not in result.output
