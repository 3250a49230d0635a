"""gather_report on a real tracked experiment (tests/report/conftest.py): every number on page one traced to its
runs and recomputed from their own metrics and artifacts; missing and failed runs named; a property per table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report.conftest import DELETED, EXPERIMENT, FAILED

pytestmark = [pytest.mark.xdist_group("report"), pytest.mark.slow]  # the shared fixture: 22 real runs
CAL = "_cal1"


@pytest.fixture(scope="module")
def report(tracked_experiment: tuple[Path, str, Path]):  # noqa: ANN201 - a ReportModel
    from fedsim.report.gather import gather_report

    path, uri, workdir = tracked_experiment
    return gather_report(path, tracking_uri=uri, workdir=workdir)


@pytest.fixture(scope="module")
def runs(tracked_experiment: tuple[Path, str, Path]) -> pd.DataFrame:
    from fedsim.tracking import Tracker

    return Tracker(tracked_experiment[1], EXPERIMENT).runs_table(EXPERIMENT).set_index("run_id", drop=False)


@pytest.fixture(scope="module")
def case_alerts(tracked_experiment: tuple[Path, str, Path], tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """run id → its case_alerts artifact at the calibrated capacity, downloaded through the Tracker."""
    from fedsim.tracking import Tracker

    tracker = Tracker(tracked_experiment[1], EXPERIMENT)
    tmp = tmp_path_factory.mktemp("alerts")

    def read(run_id: str) -> pd.DataFrame:
        local = tracker.download_artifact(run_id, "case_alerts/case_alerts.parquet", tmp / run_id)
        alerts = pd.read_parquet(local)
        return alerts[alerts["k"] == 1.0]

    return read


def _sides(runs: pd.DataFrame, ids: tuple[str, ...], regime: str) -> pd.DataFrame:
    named = runs.loc[list(ids)]
    return named[named["regime"] == regime]


def _world_config(path: Path):  # noqa: ANN202
    from fedsim.experiment import load_experiment

    return load_experiment(path).world.world_config()


# -- page one: traceable ----------------------------------------------------------------------------------------


def test_page_one_share_and_cases_recomputed_from_the_runs(report, runs, case_alerts) -> None:  # noqa: ANN001
    p = report.page_one
    assert p.contrast == ("pooled", "status_quo") and p.fraud_type == "all"
    ids = p.extra_share.run_ids
    a, b = _sides(runs, ids, "pooled"), _sides(runs, ids, "status_quo")
    assert len(a) == len(b) == 2 and set(a["seed"]) == set(b["seed"]) == {"0", "1"}
    assert set(a["epsilon"]) == set(b["epsilon"]) == {"inf"} and set(a["coalition"]) == {"bank_1+telco"}
    # ED(0) of each run from its own case alerts: alerted strictly before the first money-out
    ed = {i: float((case_alerts(i)["t_alert"] < case_alerts(i)["t_loss"]).mean()) for i in ids}
    for i in ids:
        assert ed[i] == pytest.approx(float(runs.loc[i, f"ed_h0{CAL}"]), abs=1e-12)
    diff = np.mean([ed[i] for i in a.index]) - np.mean([ed[i] for i in b.index])
    assert p.extra_share.value.estimate == pytest.approx(diff, abs=1e-12)
    n_cases = case_alerts(ids[0])["case_id"].nunique()
    assert n_cases == runs.loc[ids[0], "n_cases"] > 0
    assert p.extra_cases.value.estimate == pytest.approx(diff * n_cases, abs=1e-9)
    assert p.extra_cases.value.lo == pytest.approx(p.extra_share.value.lo * n_cases)
    assert p.extra_cases.value.hi == pytest.approx(p.extra_share.value.hi * n_cases)
    assert p.extra_cases.run_ids == ids and p.euros_world.run_ids == ids and p.euros_nl.run_ids == ids


def test_page_one_cis_are_those_of_fedsim_compare(report, tracked_experiment) -> None:  # noqa: ANN001
    """pooled runs only on the full chain here, so `fedsim compare`'s own contrast is the report's."""
    from fedsim.contrast import primary_contrast

    path, uri, workdir = tracked_experiment
    table = primary_contrast(path, tracking_uri=uri, workdir=workdir)
    row = table[(table["fraud_type"] == "all") & (table["epsilon"] == "inf")].set_index("metric")
    p = report.page_one
    for traced, metric in ((p.extra_share, "ed_h0"), (p.euros_world, "prevented_eur_d0_r1.0")):
        r = traced.value
        assert (r.estimate, r.lo, r.hi) == pytest.approx(tuple(row.loc[metric, ["diff", "lo", "hi"]]))
        assert r.lo <= r.estimate <= r.hi


def test_page_one_euros_recomputed_from_the_runs_metrics(report, runs, tracked_experiment) -> None:  # noqa: ANN001
    from fedsim.report.gather_page_one import NL_VICTIMS_PER_YEAR

    p = report.page_one
    ids = p.euros_world.run_ids
    a, b = _sides(runs, ids, "pooled"), _sides(runs, ids, "status_quo")

    def diff(column: str) -> float:
        return float(a[column].astype(float).mean() - b[column].astype(float).mean())

    assert p.euros_world.value.estimate == pytest.approx(diff(f"prevented_eur_d0_r1.0{CAL}"), abs=1e-6)
    # NL: € per case at real prevalence (each type's € and cases divided by its multiplier) × Dutch victims a year
    multipliers = {t: c.multiplier for t, c in _world_config(tracked_experiment[0]).fraud.items()}
    types = [c.removesuffix(".n_cases") for c in runs.columns if c.endswith(".n_cases")]
    cases = {t: float(runs.loc[ids[0], f"{t}.n_cases"]) for t in types}
    assert sum(cases.values()) == runs.loc[ids[0], "n_cases"]
    euros = sum(diff(f"{t}.prevented_eur_d0_r1.0{CAL}") / multipliers[t] for t in types if cases[t] > 0)
    real_cases = sum(cases[t] / multipliers[t] for t in types)
    assert p.euros_nl.value.estimate == pytest.approx(euros / real_cases * NL_VICTIMS_PER_YEAR, rel=1e-9)
    assert p.nl_assumptions["victims_per_year"] == NL_VICTIMS_PER_YEAR
    assert p.nl_assumptions["world_cases_at_real_prevalence"] == pytest.approx(real_cases)
    assert p.euros_nl.value.lo <= p.euros_nl.value.estimate <= p.euros_nl.value.hi
    assert "multiplier" in p.euros_nl.how and "victims" in p.euros_nl.how


def test_page_one_privacy_odds_recomputed_from_the_dp_runs(report, runs) -> None:  # noqa: ANN001
    p = report.page_one
    assert p.privacy_odds is not None and p.epsilon_person is not None
    named = runs.loc[list(p.privacy_odds.run_ids)]
    assert set(named["regime"]) == {"pooled"} and set(named["epsilon"]) == {"4"} and len(named) == 2
    assert set(named["coalition"]) == {"bank_1+telco"}
    eps = named["dp_epsilon_person_max"].astype(float)
    assert p.epsilon_person.value.estimate == pytest.approx(eps.max())
    assert p.privacy_odds.value.estimate == pytest.approx(math.exp(eps.max()))
    assert p.privacy_odds.value.lo == pytest.approx(math.exp(eps.min())) and p.privacy_odds.value.hi >= 1.0
    # per person, all models composed: never below the target ε of one model
    assert p.epsilon_person.value.lo >= 0.98 * 4.0


def test_every_page_one_run_is_in_the_methods_box(report, runs) -> None:  # noqa: ANN001
    p = report.page_one
    boxed = set(report.methods.run_ids.values())
    for traced in (p.extra_cases, p.extra_share, p.euros_world, p.euros_nl, p.privacy_odds, p.epsilon_person):
        assert traced is not None and traced.run_ids and set(traced.run_ids) <= boxed
    m = report.methods
    assert boxed == set(runs.index) and len(boxed) == 22
    assert all(runs.loc[i, "run_name"] == name for name, i in m.run_ids.items())
    assert m.seeds == [0, 1] and len(m.world_hashes) == 1 and len(m.git_commits) >= 1
    assert set(m.config_hashes) == set(runs["config_hash"])


# -- missing and failed runs --------------------------------------------------------------------------------------


def test_complete_grid_has_no_problems(report) -> None:  # noqa: ANN001
    assert report.page_one.problems == []


def test_missing_and_failed_runs_are_named(tracked_experiment_with_problems, runs) -> None:  # noqa: ANN001
    from fedsim.report.gather import gather_report

    path, uri, workdir = tracked_experiment_with_problems
    broken = gather_report(path, tracking_uri=uri, workdir=workdir)
    problems = {p.kind: p for p in broken.page_one.problems}
    assert len(broken.page_one.problems) == 2 and set(problems) == {"missing", "failed"}

    def name_of(regime: str, eps: str, seed: str) -> tuple[str, str]:
        hit = runs[(runs["regime"] == regime) & (runs["epsilon"] == eps) & (runs["seed"] == seed)]
        first = hit.sort_values("coalition").iloc[0]
        return str(first["run_name"]), str(first["run_id"])

    assert problems["missing"].cell == name_of(*DELETED)[0] and problems["missing"].run_id is None
    assert (problems["failed"].cell, problems["failed"].run_id) == name_of(*FAILED)
    assert "FAILED" in problems["failed"].detail
    assert len(broken.methods.run_ids) == 20  # only finished runs are read
    assert broken.page_one.extra_share == pytest.approx(broken.page_one.extra_share)  # the headline still stands


# -- a property per table -----------------------------------------------------------------------------------------


def _section(report, fraud_type: str = "all"):  # noqa: ANN001, ANN202
    return next(s for s in report.sections if s.fraud_type == fraud_type)


def test_sections_cover_all_and_every_fraud_type(report, runs) -> None:  # noqa: ANN001
    types = sorted(c.removesuffix(".n_cases") for c in runs.columns if c.endswith(".n_cases"))
    assert [s.fraud_type for s in report.sections] == ["all", *types]
    assert all(s.metric == "ed_h0" for s in report.sections)


def test_sharing_forms_are_the_contrasts_with_status_quo(report) -> None:  # noqa: ANN001
    forms = _section(report).sharing_forms.set_index("regime")
    assert list(forms.index) == ["reports", "pooled"]
    assert (forms["lo"] <= forms["estimate"]).all() and (forms["estimate"] <= forms["hi"]).all()
    # the pooled form is the primary contrast itself
    assert forms.loc["pooled", "estimate"] == pytest.approx(report.page_one.extra_share.value.estimate)


def test_steps_are_seed_means_of_the_logged_metric(report, runs) -> None:  # noqa: ANN001
    steps = _section(report).steps.set_index("step")
    assert list(steps.index) == ["rules", "own_models", "sharing"]
    assert steps.loc["sharing", "regime"] in ("reports", "pooled")
    for step, row in steps.iterrows():
        mine = runs[(runs["regime"] == row["regime"]) & (runs["epsilon"] == "inf")]
        assert row["estimate"] == pytest.approx(mine[f"ed_h0{CAL}"].astype(float).mean()), step
        assert 0 <= row["estimate"] <= 1 and row["lo"] <= row["estimate"] <= row["hi"]


def test_ed_curve_falls_with_the_horizon(report) -> None:  # noqa: ANN001
    for section in report.sections:
        curve = section.ed_curve
        assert set(curve["horizon_h"]) == {0.0, 24.0}
        assert curve["estimate"].between(0, 1).all()
        for _, g in curve.groupby("regime"):
            assert g.sort_values("horizon_h")["estimate"].is_monotonic_decreasing


def test_phases_sum_to_one_and_match_detection(report, runs) -> None:  # noqa: ANN001
    phases = _section(report).phases
    assert phases["share"].between(0, 1).all()
    for regime, g in phases.groupby("regime"):
        assert g["share"].sum() == pytest.approx(1.0)
        mine = runs[(runs["regime"] == regime) & (runs["epsilon"] == "inf") & (runs["coalition"].str.count(r"\+") >= 1)]
        detected = mine[f"detected{CAL}"].astype(float).mean()
        assert 1 - g.set_index("phase").loc["undetected", "share"] == pytest.approx(detected)


def test_lead_times_are_one_row_per_alerted_case(report, runs) -> None:  # noqa: ANN001
    lead = _section(report).lead_times
    assert lead["lead_time_h"].notna().all()
    for regime, g in lead.groupby("regime"):
        mine = runs[(runs["regime"] == regime) & (runs["epsilon"] == "inf")]
        assert len(g) == pytest.approx((mine[f"detected{CAL}"].astype(float) * mine["n_cases"].astype(float)).sum())
        # early alerts (lead > 0) over cases and seeds is ED(0)
        early = (g["lead_time_h"] > 0).sum() / mine["n_cases"].astype(float).sum()
        assert early == pytest.approx(mine[f"ed_h0{CAL}"].astype(float).mean())


def test_partner_values_are_efficient_and_the_heatmap_is_v(report, runs) -> None:  # noqa: ANN001
    s = _section(report)
    values = s.partner_values.set_index("partner")
    assert set(values.index) == {"bank_1", "telco"}
    heat = s.heatmap.set_index(["regime", "coalition"])["value"]
    full = heat.loc[("pooled", "bank_1+telco")]
    # Shapley values add up to v(N) − v(∅) (v(∅) = 0 for ED(0)); v(N) is the pooled runs' own logged ED(0)
    assert values["shapley"].sum() == pytest.approx(full)
    pooled = runs[(runs["regime"] == "pooled") & (runs["epsilon"] == "inf")]
    assert full == pytest.approx(pooled[f"ed_h0{CAL}"].astype(float).mean())
    assert heat.between(0, 1).all()
    for concept in ("shapley", "banzhaf", "loo"):
        assert (values[f"{concept}_lo"] <= values[concept]).all() and (values[concept] <= values[f"{concept}_hi"]).all()
    assert s.best_coalition is not None and set(s.smallest_near_best or ()) <= set(s.best_coalition) | {
        "bank_1",
        "telco",
    }


def test_waterfall_gains_add_up_to_the_last_coalition(report) -> None:  # noqa: ANN001
    s = _section(report)
    w = s.waterfall
    assert w["step"].iloc[0].startswith("best silo") and w["coalition"].iloc[-1] == "bank_1+telco"
    assert w["gain"].sum() == pytest.approx(w["value"].iloc[-1])
    assert ((w["lo"] <= w["gain"]) & (w["gain"] <= w["hi"])).all()


def test_privacy_utility_reports_epsilon_per_person(report) -> None:  # noqa: ANN001
    pu = _section(report).privacy_utility
    private = pu[np.isfinite(pu["target_epsilon"])]
    assert (np.isinf(pu.loc[~np.isfinite(pu["target_epsilon"]), "epsilon"])).all()
    # ε per person composes every model holding the person: never below one model's (≤ target, Opacus stops at or under)
    assert (private["epsilon"] >= 0.98 * private["target_epsilon"]).all()
    pooled = private[(private["regime"] == "pooled")]["epsilon"].iloc[0]
    assert pooled == pytest.approx(report.page_one.epsilon_person.value.estimate)
    assert ((pu["lo"] <= pu["estimate"]) & (pu["estimate"] <= pu["hi"])).all()


def test_limitations_register_and_parameters(report, tracked_experiment) -> None:  # noqa: ANN001
    lim = report.limitations
    config = _world_config(tracked_experiment[0])
    assert lim.prevalence_multipliers == {t: c.multiplier for t, c in config.fraud.items()}
    assert (lim.train_window_days, lim.test_window_days, lim.world_persons, lim.world_days) == (50, 20, 1500, 90)
    reg = report.leakage_register
    assert set(reg["regime"]) <= {"rules", "status_quo", "siloed", "reports", "pooled", "all DP regimes"}
    assert "all DP regimes" in set(reg["regime"]) and reg["what_leaves"].str.len().gt(0).all()
    params = report.parameters
    assert params["experiment.name"] == EXPERIMENT and params["experiment.seeds"] == "[0, 1]"
    assert params["experiment.coalitions.lattice"] == '["bank_1", "telco"]'
    assert list(report.audit.columns) == ["check", "regime", "epsilon", "statistic", "bound", "passed"]


def test_a_contrast_against_siloed_takes_the_best_silo(tracked_experiment, runs, tmp_path) -> None:  # noqa: ANN001
    from fedsim.experiment import load_experiment
    from fedsim.report.gather_store import open_store

    path, uri, workdir = tracked_experiment
    store = open_store(load_experiment(path), uri, workdir, tmp_path)
    table = store.contrast("pooled", "siloed", ("logistic", "inf"))
    silo_side = runs.loc[list(table["run_ids"].iloc[0])].query("regime == 'siloed'")
    silos = runs[(runs["regime"] == "siloed") & (runs["epsilon"] == "inf")]
    best = silos.groupby("coalition")[f"ed_h0{CAL}"].apply(lambda v: v.astype(float).mean()).idxmax()
    assert set(silo_side["coalition"]) == {best} and len(silo_side) == 2
    ed = table[(table["metric"] == "ed_h0") & (table["fraud_type"] == "all")].iloc[0]
    assert ed["value_b"] == pytest.approx(silo_side[f"ed_h0{CAL}"].astype(float).mean())
