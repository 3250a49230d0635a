"""DP through the regimes: an ε sweep from an experiment spec runs end to end on a small real world."""

from __future__ import annotations

import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fedsim.experiment import expand, parse_experiment
from fedsim.privacy import PrivacyError, PrivacySettings
from fedsim.regimes import RunContext, TrainingSettings, get_regime
from fedsim.runner import Workspace
from tests.worlds import workspace_for

SPEC = {
    "name": "dp",
    "world": {"preset": "known-answer", "seed": 3, "overrides": {"persons": 3000, "days": 20}},
    "split": {"train_days": 10, "gap_days": 0, "test_days": 10},
    "regimes": ["siloed"],
    "coalitions": [["bank_1"]],
    "models": ["logistic"],
    "seeds": [0],
    "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "negative_rate": 0.1},
    "privacy": {"epsilon": [1.0, "inf"]},
    "metrics": {"bootstrap": 20},
}


@pytest.fixture(scope="module")
def ws() -> Workspace:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning, module="opacus")
    return workspace_for(parse_experiment(SPEC), Path(tempfile.mkdtemp()))


def test_epsilon_sweep_runs_end_to_end_and_logs_the_dp_ledger(ws: Workspace) -> None:
    cells = {c.epsilon: c for c in expand(ws.spec, list(ws.features))}

    private, plain = ws.execute(cells[1.0]), ws.execute(cells[math.inf])

    m = private.metrics
    n_entities = m["dp_examples.bank_1"]
    assert m["dp_epsilon.bank_1"] <= 1.0 and m["dp_target_epsilon.bank_1"] == 1.0
    assert m["dp_delta.bank_1"] == pytest.approx(1 / (10 * n_entities))
    assert 0 < n_entities <= m["train_rows.bank_1"]
    assert m["train_rows.bank_1"] == m["dp_rows_kept.bank_1"] + m["dp_rows_dropped_by_cap.bank_1"]
    assert m["dp_sample_rate.bank_1"] == pytest.approx(1 / math.ceil(n_entities / 64))
    assert m["dp_sigma.bank_1"] > 0 and m["dp_max_grad_norm.bank_1"] == 1.0 and m["dp_steps.bank_1"] > 0
    assert m["dp_max_entities_per_person.bank_1"] >= 1
    # one model in the run: a person in it once gets exactly its ε; the run's unit is the person
    assert m["dp_models"] == 1 and m["dp_persons"] > 0
    assert m["dp_epsilon_person_median"] == pytest.approx(m["dp_epsilon.bank_1"])
    assert m["dp_epsilon_person_max"] >= m["dp_epsilon.bank_1"]
    assert private.params["dp_unit"].startswith("person") and plain.params["dp_unit"].startswith("none")
    assert not any(k.startswith("dp_") for k in plain.metrics)
    for result in (private, plain):  # the evaluation ran on the DP scores like on any other
        assert 0.0 <= result.metrics["ed_h0_cal1"] <= 1.0


def test_noise_mode_from_the_privacy_settings_and_gbt_refused_before_training(ws: Workspace) -> None:
    def ctx(model: str, epsilon: float, privacy: PrivacySettings | None) -> RunContext:
        return RunContext(
            world=ws.world,
            coalition=("bank_1",),
            model=model,
            seed=0,
            split=ws.split,
            training=TrainingSettings(1, 64, 0.01, 0.1),
            features=ws.features,
            truth=ws.truth,
            epsilon=epsilon,
            privacy=privacy,
        )

    noise_mode = PrivacySettings(noise_multiplier=2.0, accountant="rdp")
    result = get_regime("siloed").run(ctx("logistic", math.inf, noise_mode))

    assert result.metrics["dp_sigma.bank_1"] == 2.0 and np.isnan(result.metrics["dp_target_epsilon.bank_1"])
    assert 0 < result.metrics["dp_epsilon.bank_1"] < math.inf
    with pytest.raises(PrivacyError, match="gbt"):
        get_regime("siloed").run(ctx("gbt", 1.0, None))
