"""Horizontal FL pieces without a Flower run: federated standardisation, FedAvg, local training (± FedProx,
± DP-SGD), partner data, kind grouping and the deployment helpers."""

from __future__ import annotations

import math
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fedsim.errors import FedsimError
from fedsim.federation.deployment import FlowerApp, format_node_config, write_app_dir
from fedsim.federation.horizontal import HorizontalSettings
from fedsim.federation.horizontal.protocol import from_legacy_config, to_legacy_config
from fedsim.federation.horizontal.task import partner_summary, round_seed, train_locally
from fedsim.federation.partner_data import (
    build_partner_data,
    export_partner_world,
    load_partner_context,
    partner_only,
)
from fedsim.federation.standardize import (
    column_moments,
    combine_moments,
    standardizer_from_lists,
    standardizer_from_moments,
    standardizer_to_lists,
)
from fedsim.models import Standardizer, make_model
from fedsim.privacy import PrivacySettings
from fedsim.regimes import get_regime
from fedsim.regimes.horizontal import kind_groups
from fedsim.rows import TrainingSettings
from fedsim.settings import FederationSettings
from fedsim.training import get_weights, weight_names
from tests.federation.horizontal_worlds import BANKS, context, workspace


# ---------------------------------------------------------------------------------------------------
# Federated standardisation
# ---------------------------------------------------------------------------------------------------
def test_combined_moments_match_a_hand_computed_mean_and_variance() -> None:
    # prepare: partner A holds 1 and 3, partner B holds 5 and a missing value
    a, b = column_moments(np.array([[1.0], [3.0]])), column_moments(np.array([[5.0], [np.nan]]))
    # execute
    std = standardizer_from_moments(combine_moments([a, b]))
    # assert: mean 3, population variance ((1-3)² + 0 + (5-3)²) / 3 = 8/3, one missing indicator
    assert std.mean_[0] == pytest.approx(3.0)
    assert std.scale_[0] == pytest.approx(math.sqrt(8 / 3))
    assert list(std.missing_columns_) == [0]


def test_federated_standardizer_equals_the_pooled_one_for_any_split() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(5, 3, size=(500, 4)) * np.array([1, 100, 0.01, 0])  # last column constant
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 2] = np.where(np.isnan(X[:, 2]), 0.3, X[:, 2])  # a column without missing values
    pooled = Standardizer().fit(X)
    for cuts in ([100, 350], [1, 2], [250]):
        parts = np.split(X, cuts)
        fed = standardizer_from_moments(combine_moments([column_moments(p) for p in parts[::-1]]))
        np.testing.assert_allclose(fed.mean_, pooled.mean_, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fed.scale_, pooled.scale_, rtol=1e-10)
        np.testing.assert_array_equal(fed.missing_columns_, pooled.missing_columns_)
        np.testing.assert_allclose(fed.transform(X), pooled.transform(X), atol=1e-5)
    roundtrip = standardizer_from_lists(standardizer_to_lists(pooled))
    np.testing.assert_array_equal(roundtrip.transform(X), pooled.transform(X))


def test_moments_refuse_partners_with_different_columns() -> None:
    with pytest.raises(ValueError, match="one common width"):
        combine_moments([column_moments(np.zeros((2, 2))), column_moments(np.zeros((2, 3)))])


# ---------------------------------------------------------------------------------------------------
# Local training (the client's part of a round)
# ---------------------------------------------------------------------------------------------------
def _client_data():
    ws = workspace()
    return build_partner_data(partner_only(context(ws), "bank_1"), "bank_1")


def _round_config(data, **extra):
    m, positive, negative = partner_summary(data)
    std = standardizer_from_moments(m)
    settings = HorizontalSettings.build(
        model="logistic",
        seed=0,
        federation=FederationSettings(rounds=1),
        training=TrainingSettings(batch_size=128, learning_rate=0.05),
    )
    model = make_model("logistic", n_features=std.n_features_out_, seed=0)
    config = {
        **settings.client_config(),
        **standardizer_to_lists(std),
        "pos-weight": negative / positive,
        "server-round": 1,
        **extra,
    }
    return config, get_weights(model), weight_names(model)


def test_fedprox_term_keeps_local_weights_near_the_global_ones() -> None:
    data = _client_data()
    config, start, _ = _round_config(data)
    moved = {}
    for mu in (0.0, 50.0):
        done = train_locally(data, start, {**config, "proximal-mu": mu, "local-epochs": 3})
        moved[mu] = sum(float(np.sum((a - b) ** 2)) for a, b in zip(done.weights, start, strict=True))
        assert done.n_examples == data.n_rows and math.isfinite(done.loss) and done.dp_state is None
    assert moved[50.0] < 0.5 * moved[0.0]


def test_local_training_learns_the_known_answer_signal() -> None:
    data = _client_data()
    config, start, names = _round_config(data)
    done = train_locally(data, start, {**config, "local-epochs": 5})
    weight = dict(zip(names, done.weights, strict=True))["net.weight"].ravel()
    x_column = data.columns.index("bank__x")
    assert weight[x_column] > 0.5  # evidence x is shifted up for fraud: a positive weight


def test_round_seed_is_stable_and_distinct_per_partner_and_round() -> None:
    assert round_seed(0, 1, "bank_1") == round_seed(0, 1, "bank_1")
    assert len({round_seed(0, r, p) for r in (1, 2) for p in BANKS}) == 6


def test_legacy_config_roundtrip_keeps_lists_and_scalars() -> None:
    config = {"std-mean": [0.1, 1 / 3], "model": "mlp", "seed": 4, "pos-weight": 12.5}
    legacy = to_legacy_config(config)
    assert all(not isinstance(v, list) for v in legacy.values())
    assert from_legacy_config(legacy) == config


# ---------------------------------------------------------------------------------------------------
# Partner data: each partner sees only its own rows
# ---------------------------------------------------------------------------------------------------
def test_partner_directory_holds_one_partner_and_rebuilds_the_same_rows(tmp_path: Path) -> None:
    from tests.federation.test_deployment_horizontal import secret_workspace

    ws = secret_workspace(tmp_path / "ws")  # exports are refused for a world without a secret
    ctx = context(ws)
    # execute: export bank_2's directory, then build its rows there as a SuperNode would
    export_partner_world(ws.world, ws.truth, "bank_2", tmp_path / "bank_2")
    node_ctx = load_partner_context(
        tmp_path / "bank_2", "bank_2", split=ctx.split, training=ctx.training, seed=ctx.seed, model=ctx.model
    )
    at_node = build_partner_data(node_ctx, "bank_2")
    in_driver = build_partner_data(partner_only(ctx, "bank_2"), "bank_2")
    # assert: only bank_2's tables, no truth folder, and exactly the rows the simulation engine builds
    assert [p.name for p in (tmp_path / "bank_2" / "partners").iterdir()] == ["bank_2"]
    assert not (tmp_path / "bank_2" / "truth").exists()
    np.testing.assert_array_equal(at_node.y, in_driver.y)
    np.testing.assert_allclose(at_node.X, in_driver.X)
    assert at_node.y.sum() > 0
    with pytest.raises(FedsimError, match="bank_1"):
        load_partner_context(
            tmp_path / "bank_2", "bank_1", split=ctx.split, training=ctx.training, seed=0, model="logistic"
        )


# ---------------------------------------------------------------------------------------------------
# Coalitions: grouping by kind, and refusing coalitions without a same-kind pair
# ---------------------------------------------------------------------------------------------------
def test_kind_groups_and_grid_filter() -> None:
    ws = workspace()
    ctx = context(ws, ("bank_1", "bank_2", "telco"))
    assert kind_groups(ctx) == {"bank": ["bank_1", "bank_2"], "telco": ["telco"]}
    kinds = {p: f.block for p, f in ws.features.items()}
    horizontal, federation = get_regime("horizontal"), FederationSettings()
    assert horizontal.admits(("bank_1", "bank_3"), kinds, federation) is None
    assert horizontal.admits(("bank_1", "telco"), kinds, federation) is not None
    assert get_regime("pooled").admits(("bank_1", "telco"), kinds, federation) is None


def test_coalition_without_two_partners_of_one_kind_is_refused() -> None:
    ws = workspace()
    with pytest.raises(FedsimError, match="at least two partners of one kind"):
        get_regime("horizontal").run(context(ws, ("bank_1", "telco", "marketplace")))


def test_tree_models_are_refused_with_the_allowed_values() -> None:
    ws = workspace()
    from dataclasses import replace

    with pytest.raises(FedsimError, match="allowed: logistic, mlp"):
        HorizontalSettings.from_context(replace(context(ws), model="gbt"))


# ---------------------------------------------------------------------------------------------------
# Deployment helpers
# ---------------------------------------------------------------------------------------------------
def test_app_directory_and_node_config_are_valid_toml(tmp_path) -> None:
    config: dict[str, str | int | float | bool] = {
        "rounds": 2,
        "strategy": "fedprox",
        "proximal-mu": 0.1,
        "secure-aggregation": False,
        "out-dir": '/tmp/a "quoted" dir',
    }
    write_app_dir(tmp_path, app=FlowerApp("fedsim-x", {"serverapp": "m:s", "clientapp": "m:c"}), config=config)
    parsed = tomllib.loads((tmp_path / "pyproject.toml").read_text())
    assert parsed["tool"]["flwr"]["app"]["config"] == config
    assert parsed["tool"]["flwr"]["app"]["components"]["clientapp"] == "m:c"
    node = format_node_config({"partner": "bank_1", "world-dir": "/d/bank_1"})
    assert node == 'partner="bank_1" world-dir="/d/bank_1"'
    assert tomllib.loads(node.replace(" ", "\n").replace("world-dir", '"world-dir"')) == {
        "partner": "bank_1",
        "world-dir": "/d/bank_1",
    }


def test_a_written_app_carries_every_setting_privacy_included(tmp_path) -> None:
    from fedsim.federation.horizontal import write_app
    from fedsim.federation.horizontal.deployment_config import settings_from
    from fedsim.privacy import PrivacySettings

    # prepare: a FedProx run with DP-SGD and non-default federation settings, as the regime would build it
    privacy = PrivacySettings(target_epsilon=2.0, max_rows_per_entity=3, accountant="rdp")
    ctx = context(workspace(), rounds=3, strategy="fedprox", secure=True, privacy=privacy)
    settings = HorizontalSettings.from_context(ctx)
    # execute: the app directory a cross-machine run is started from, read back as a SuperNode would
    app = write_app(ctx, settings, tmp_path / "app", num_partners=3, out_dir=tmp_path / "out")
    run_config = tomllib.loads((app / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    # assert: the same settings come back, DP included (the old launcher dropped it)
    assert settings.privacy == privacy
    assert settings_from(run_config) == settings
    assert HorizontalSettings.build(model="logistic", seed=0).privacy is None
    assert settings_from({**run_config, "privacy": ""}).privacy is None  # control: no DP is also carried


def test_dp_rounds_carry_the_accountant_and_end_within_the_target_epsilon() -> None:
    from fedsim.privacy import PrivacySettings

    data = _client_data()
    privacy = PrivacySettings(target_epsilon=2.0, max_rows_per_entity=4)
    config, start, _ = _round_config(data, **{"rounds": 2, "dp-settings": privacy.model_dump_json()})
    # execute: two rounds at one partner, the second resuming the first's accountant state
    first = train_locally(data, start, config)
    second = train_locally(data, first.weights, {**config, "server-round": 2}, dp_state=first.dp_state)
    # assert: ε grows over the rounds and the planned schedule ends at (or under) the target
    eps1, eps2 = first.dp_metrics["dp_epsilon"], second.dp_metrics["dp_epsilon"]
    assert 0 < eps1 < eps2 <= 2.0 * (1 + 1e-6)
    assert second.dp_metrics["dp_rounds"] == 2.0 and second.dp_state is not None
    assert second.dp_state["rounds_done"] == 2


_SIGMA_CELL = {"noise_multiplier": [1.3], "delta": 1e-5, "max_grad_norm": 0.7, "accountant": "rdp"}


@pytest.mark.parametrize(
    ("privacy", "expected"),
    [
        (
            {**_SIGMA_CELL, "max_rows_per_entity": 5},
            PrivacySettings(
                noise_multiplier=1.3, delta=1e-5, max_grad_norm=0.7, accountant="rdp", max_rows_per_entity=5
            ),
        ),
        ({"epsilon": [2.5], "max_grad_norm": 2.0}, PrivacySettings(target_epsilon=2.5, max_grad_norm=2.0)),
    ],
)
def test_written_app_run_config_carries_every_privacy_field_of_the_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, privacy: dict[str, object], expected: PrivacySettings
) -> None:
    import yaml
    from typer.testing import CliRunner

    from fedsim.cli import app
    from fedsim.federation.horizontal.deployment_config import settings_from
    from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

    (tmp_path / "world.secret").write_bytes(bytes(range(32)))
    spec = {
        "name": "write-app-dp",
        "world": {**KNOWN_ANSWER_WORLD, "secret_file": "world.secret"},
        "split": KNOWN_ANSWER_SPLIT,
        "regimes": ["horizontal"],
        "coalitions": [list(BANKS)],
        "models": ["logistic"],
        "seeds": [0],
        "federation": {"rounds": 2, "secure_aggregation": True},
        "privacy": privacy,
    }
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "write-app", "exp.yaml", "--out", "app"])
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    # the ServerApp and every ClientApp read their settings back from this run config: σ or target ε, C, δ,
    # accountant and row cap must all survive, and with them SecAgg+ and the schedule that fixes the ledger
    settings = settings_from(config)
    assert settings.privacy == expected
    assert settings.secure_aggregation and settings.rounds == 2


def test_outcome_metrics_log_no_loss_when_the_partners_kept_it_and_every_ledger_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from fedsim.federation.horizontal import HorizontalOutcome
    from fedsim.regimes.horizontal import outcome_metrics

    ledger = {"dp_epsilon": 0.9, "dp_delta": 1e-4, "dp_sigma": 2.0, "dp_sample_rate": 0.25, "dp_steps": 8.0}
    nan = [math.nan, math.nan]
    out = HorizontalOutcome(
        partners=["bank_1", "bank_2"],
        rounds=2,
        round_loss=nan,
        partner_loss={"bank_1": nan, "bank_2": nan},
        dropouts={},
        n_examples={"bank_1": 10, "bank_2": 12},
        n_features=3,
        pos_weight=5.0,
        uninformative=False,
        secure_aggregation=True,
        strategy="fedavg",
        dp={"bank_1": ledger, "bank_2": ledger},
        loss_released=False,
    )
    with caplog.at_level("WARNING", logger="fedsim.regimes"):
        metrics, steps = outcome_metrics("bank", out)
    assert steps == {} and "fl_final_train_loss.bank" not in metrics
    assert "still falling" not in caplog.text and "cannot be judged" not in caplog.text
    assert {k for k in metrics if k.endswith(".bank_2") and k.startswith("dp_")} == {f"{k}.bank_2" for k in ledger}
    released, _ = outcome_metrics("bank", replace(out, round_loss=[0.7, 0.6], loss_released=True))
    assert released["fl_final_train_loss.bank"] == 0.6


def test_each_banks_dp_model_is_registered_for_per_person_accounting() -> None:
    from fedsim.person_privacy import recording

    ws = workspace()
    privacy = PrivacySettings(target_epsilon=2.0, max_rows_per_entity=4)
    ctx = context(ws, ("bank_1", "bank_2"), rounds=2, epochs=1, engine="in_process", privacy=privacy)
    with recording() as log:
        result = get_regime("horizontal").run(ctx)
    # one model per bank: its own training entities, and the (σ, q, steps), δ, ε it logged
    assert [e.model for e in log.exposures] == ["horizontal.bank_1", "horizontal.bank_2"]
    for exposure, bank in zip(log.exposures, ("bank_1", "bank_2"), strict=True):
        m = result.metrics
        assert exposure.history == ((m[f"dp_sigma.{bank}"], m[f"dp_sample_rate.{bank}"], int(m[f"dp_steps.{bank}"])),)
        assert (exposure.epsilon, exposure.delta) == (m[f"dp_epsilon.{bank}"], m[f"dp_delta.{bank}"])
        assert set(exposure.examples["partner"]) == {bank}
        entities = np.unique(build_partner_data(partner_only(ctx, bank), bank).entity)
        np.testing.assert_array_equal(np.sort(exposure.examples["entity_id"].to_numpy()), entities)
        assert len(entities) == m[f"dp_examples.{bank}"]
