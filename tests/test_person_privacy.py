"""Per-person ε across a run (fedsim.person_privacy): composition over models, group sizes from the data.

The reference for the composition is Google's dp-accounting (an implementation independent of Opacus, which
the runtime path uses): its RDP accountant on the composed Poisson-subsampled Gaussian events.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedsim.person_privacy import (
    ModelExposure,
    group_sizes,
    home_examples,
    person_epsilons,
    recording,
    register_exposure,
    summary_metrics,
    with_joined_context,
)
from fedsim.privacy import epsilon_spent

# Three partners' models, each its own mechanism (σ, q, steps) and δ.
MECHANISMS = {
    "bank_1": ((1.1, 0.02, 400), 1e-5),
    "telco": ((0.9, 0.05, 120), 2e-5),
    "marketplace": ((1.5, 0.01, 900), 5e-6),
}


def _examples(entities: list[tuple[str, int]], example: list[int] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "example": example if example is not None else list(range(len(entities))),
            "partner": [p for p, _ in entities],
            "entity_id": [e for _, e in entities],
        }
    )


def _exposure(model: str, examples: pd.DataFrame, accountant: str = "rdp") -> ModelExposure:
    (sigma, q, steps), delta = MECHANISMS[model]
    history = ((sigma, q, steps),)
    eps = epsilon_spent(history, delta=delta, accountant=accountant)
    return ModelExposure(model, history, delta, eps, accountant, examples)


def _truth(rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["partner", "entity_id", "person_id"])


def _reference_rdp(models: list[str], delta: float) -> float:
    """dp-accounting's RDP accountant on the composition of the models' mechanisms."""
    import dp_accounting

    events = [
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
        )
        for (sigma, q, steps), _ in (MECHANISMS[m] for m in models)
    ]
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return float(acc.get_epsilon(delta))


def test_a_person_at_three_partners_gets_the_composition_of_the_three() -> None:
    # person 7 has one entity at each partner; person 8 only banks
    truth = _truth([("bank_1", 1, 7), ("telco", 10, 7), ("marketplace", 20, 7), ("bank_1", 2, 8)])
    exposures = [
        _exposure("bank_1", _examples([("bank_1", 1), ("bank_1", 2)])),
        _exposure("telco", _examples([("telco", 10)])),
        _exposure("marketplace", _examples([("marketplace", 20)])),
    ]

    persons = person_epsilons(exposures, truth)

    p7 = persons.loc["p7"]
    delta = sum(d for _, d in MECHANISMS.values())
    assert p7["delta"] == pytest.approx(delta) and p7["n_models"] == 3
    assert p7["epsilon_basic"] == sum(e.epsilon for e in exposures)  # basic composition: exactly the sum
    reference = _reference_rdp(["bank_1", "telco", "marketplace"], delta)
    assert p7["epsilon"] == pytest.approx(reference, rel=0.05)
    assert p7["epsilon"] > max(e.epsilon for e in exposures)  # more than any one model's ε
    # person 8 is only in the bank model, stated at the run's δ (the sum of the three): no more than that model's ε
    assert persons.loc["p8", "epsilon"] == pytest.approx(_reference_rdp(["bank_1"], delta), rel=0.05)
    assert persons.loc["p8", "epsilon"] <= exposures[0].epsilon
    m = summary_metrics(persons, n_models=3)
    assert m["dp_epsilon_person_max"] == p7["epsilon"] and m["dp_persons_in_all_models"] == 1
    assert m["dp_persons_share_multi_model"] == 0.5


def test_a_person_in_one_model_once_gets_exactly_that_models_epsilon() -> None:
    exposure = _exposure("bank_1", _examples([("bank_1", 1), ("bank_1", 2)]), accountant="prv")

    persons = person_epsilons([exposure], _truth([("bank_1", 1, 7), ("bank_1", 2, 8)]))

    assert (persons["epsilon"] == exposure.epsilon).all() and (persons["delta"] == exposure.delta).all()


def test_adding_a_model_never_lowers_anyones_epsilon() -> None:
    rng = np.random.default_rng(0)
    partners = list(MECHANISMS)
    truth = _truth([(p, e, int(rng.integers(0, 30))) for p in partners for e in range(40)])
    exposures = []
    for p in partners:
        ents = [(p, int(e)) for e in rng.choice(40, size=25, replace=False)]
        # some examples hold a second, joined entity of another partner
        joined = [(partners[(partners.index(p) + 1) % 3], int(e)) for e in rng.integers(0, 40, size=10)]
        exposures.append(_exposure(p, _examples(ents + joined, list(range(25)) + list(range(10)))))

    # at one stated δ (a larger δ alone buys a smaller ε, so δ is held fixed as the models are added)
    delta = sum(d for _, d in MECHANISMS.values())
    before = person_epsilons(exposures[:1], truth, delta=delta)["epsilon"]
    for n in (2, 3):
        after = person_epsilons(exposures[:n], truth, delta=delta)["epsilon"]
        assert (after.reindex(before.index) >= before - 1e-12).all()
        before = after


def test_group_size_comes_from_the_data_and_joined_entities_count() -> None:
    # person 7 owns bank entities 1 and 2 (two examples); person 8 owns entity 3 only; person 9's telco
    # subscriber 10 was joined into the examples of bank entities 3 and 4 (one telco entity in two examples)
    truth = _truth([("bank_1", 1, 7), ("bank_1", 2, 7), ("bank_1", 3, 8), ("bank_1", 4, 5), ("telco", 10, 9)])
    examples = home_examples(np.array([["bank_1", 1], ["bank_1", 1], ["bank_1", 2], ["bank_1", 3], ["bank_1", 4]]))

    def resolver(partner: str, ids: np.ndarray) -> pd.DataFrame:
        hit = ids[np.isin(ids, [3, 4])]
        return pd.DataFrame({"entity_id": hit, "partner": "telco", "joined_entity_id": 10})

    exposure = _exposure("bank_1", with_joined_context(examples, resolver))
    ks = group_sizes([exposure], truth)["bank_1"]
    persons = person_epsilons([exposure], truth)

    assert ks.to_dict() == {"p5": 1, "p7": 2, "p8": 1, "p9": 2}
    assert persons.loc["p7", "epsilon"] > persons.loc["p8", "epsilon"] == pytest.approx(exposure.epsilon)
    assert persons.loc["p9", "epsilon"] == persons.loc["p7", "epsilon"]
    assert summary_metrics(persons, 1)["dp_max_entities_per_person"] == 2


def test_a_pure_label_mechanism_composes_with_the_gaussian_models() -> None:
    # e.g. labels released by randomized response at ε = 1: pure ε-DP, k·ε for a group of k
    truth = _truth([("bank_1", 1, 7), ("bank_1", 2, 7), ("bank_1", 3, 8)])
    labels = ModelExposure(
        "labels.bank_1",
        (),
        0.0,
        1.0,
        "pure",
        _examples([("bank_1", 1), ("bank_1", 2), ("bank_1", 3)]),
        pure_epsilon=1.0,
    )
    alone = person_epsilons([labels], truth)
    assert alone.loc["p8", "epsilon"] == 1.0 and alone.loc["p7", "epsilon"] == 2.0 and alone.loc["p8", "delta"] == 0

    gaussian = _exposure("bank_1", _examples([("bank_1", 1), ("bank_1", 3)]))
    both = person_epsilons([gaussian, labels], truth)
    assert both.loc["p8", "epsilon"] > max(gaussian.epsilon, 1.0) - 1e-9
    assert both.loc["p8", "epsilon"] <= gaussian.epsilon + 1.0 + 1e-9  # never worse than basic composition


def test_register_outside_a_recording_is_ignored_and_inside_is_kept() -> None:
    exposure = _exposure("bank_1", _examples([("bank_1", 1)]))
    register_exposure(exposure)  # no run being recorded: nothing to keep, no error
    with recording() as log:
        register_exposure(exposure)
    assert [e.model for e in log.exposures] == ["bank_1"]


# --------------------------------------------------------------------------------------------
# Through a real pooled DP run and `fedsim runs --json`
# --------------------------------------------------------------------------------------------
NAME = "person_privacy_test"
SPEC: dict[str, object] = {
    "name": NAME,
    "world": {"preset": "small", "seed": 2, "overrides": {"persons": 1500, "days": 60}},
    "split": {"train_days": 35, "gap_days": 3, "test_days": 22},
    "regimes": ["pooled"],
    "coalitions": [["bank_1", "telco", "marketplace"]],
    "models": ["logistic"],
    "seeds": [0],
    "training": {"epochs": 1, "batch_size": 256},
    "privacy": {"epsilon": [1.0]},
    "metrics": {"bootstrap": 20},
}


@pytest.mark.slow
def test_pooled_dp_run_logs_a_per_person_epsilon_that_runs_json_shows(tmp_path: Path, store_uri: str) -> None:
    import torch
    from typer.testing import CliRunner

    from fedsim.cli import app
    from fedsim.experiment import RunResult, RunSpec, expand, parse_experiment, run_grid
    from fedsim.tracking import Tracker
    from tests.worlds import workspace_for

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning, module="opacus")
    ws = workspace_for(parse_experiment(SPEC), tmp_path)
    cells = [c.model_copy(update={"world_digest": ws.world.content_hash}) for c in expand(ws.spec, list(ws.features))]
    results = []

    def execute(cell: RunSpec) -> RunResult:
        results.append(ws.execute(cell))
        return results[-1]

    tracker = Tracker(store_uri, NAME)
    run_grid(ws.spec, cells, execute, tracker, world_hash=ws.world.content_hash, progress=False)

    m, params = results[0].metrics, results[0].params
    single = {k: v for k, v in m.items() if k.startswith("dp_epsilon.")}
    assert len(single) == 3  # one model per partner kind
    assert m["dp_epsilon_person_max"] >= max(single.values())
    assert m["dp_epsilon_person_max"] <= m["dp_epsilon_person_rdp_max"] + 1e-9  # the reported ε is the smaller bound
    assert m["dp_epsilon_person_median"] <= m["dp_epsilon_person_p90"] <= m["dp_epsilon_person_max"]
    assert m["dp_persons_share_multi_model"] > 0  # joined context puts persons into several models
    assert m["dp_max_entities_per_person"] >= 2  # one joined entity inside two examples
    assert params["dp_unit"].startswith("person")
    out = CliRunner().invoke(app, ["runs", NAME, "--tracking-uri", store_uri, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    run = data["runs"][0]
    assert run["epsilon_person"] == pytest.approx(m["dp_epsilon_person_max"])
    assert run["privacy_unit"].startswith("person")
    assert data["over_seeds"][0]["epsilon_person"] == pytest.approx(m["dp_epsilon_person_max"])
    curve = data["privacy_utility"][0]
    assert curve["odds_factor"] == pytest.approx(math.exp(m["dp_epsilon_person_max"]))
    assert curve["privacy_unit"] == "per person, all models composed"


def test_a_dp_cell_that_trained_no_model_reports_epsilon_zero_not_no_dp() -> None:
    """A silo with no reported fraud in its training window trains nothing: under DP its runs table must say
    ε = 0 per person (nothing was released), not '∞ (no DP)' as if privacy had been switched off."""
    from fedsim.person_privacy import ExposureLog, run_person_privacy
    from fedsim.summary import person_privacy_columns

    metrics, params = run_person_privacy(ExposureLog(), None, dp_cell=True)
    assert metrics["dp_epsilon_person_max"] == 0.0 and metrics["dp_models"] == 0.0
    assert "no DP model was trained" in params["dp_unit"]
    assert run_person_privacy(ExposureLog(), None, dp_cell=False) == ({}, {})  # a non-DP run claims nothing
    shown = person_privacy_columns(pd.DataFrame([{**metrics, **params}, {"dp_unit": ""}]))
    assert shown["epsilon_person"].tolist()[0] == 0.0
    assert math.isinf(shown["epsilon_person"].tolist()[1])  # a run without any DP stays ∞
