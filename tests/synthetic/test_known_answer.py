"""Known-answer worlds: the closed forms, the generated world against them, and the placebo partner."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from synthetic.config import ConfigError, WorldConfig, build_config
from synthetic.ids import DOMAIN_PHONE, salted_hash
from synthetic.known_answer import (
    DECISION_OFFSET_S,
    coalition_optimal_auc,
    generate_known_answer,
    grouped_optimal_auc,
    optimal_auc,
    partner_shifts,
    placebo_partner,
)
from synthetic.schema import DAY, SIGNALS_TABLES, TRUTH_TABLES
from synthetic.world import PartnerView, World, build_manifest, generate

PHI = NormalDist().cdf
SMALL = {"entities": 20_000, "days": 14, "prevalence": 0.05}


def _config(**known_answer: object) -> WorldConfig:
    return WorldConfig(mode="known_answer", known_answer={**SMALL, **known_answer})


@pytest.fixture(scope="module")
def iid_world() -> World:
    return generate_known_answer(_config(), seed=7)


@pytest.fixture(scope="module")
def skewed_world() -> World:
    # Non-IID and unequal banks: the bank a person is at carries information about the label.
    config = _config(bank_shifts=[1.0, 2.0, 0.5], bank_case_shares=[0.6, 0.3, 0.1])
    return generate_known_answer(config, seed=3)


@pytest.fixture(scope="module")
def iid_frame(iid_world: World) -> pd.DataFrame:
    return _entity_days(iid_world)


@pytest.fixture(scope="module")
def skewed_frame(skewed_world: World) -> pd.DataFrame:
    return _entity_days(skewed_world)


# ------------------------------------------------------------------------------------------------
# Helpers: entity-day table joined by phone_hash, Bayes scores, AUC with a bootstrap CI
# ------------------------------------------------------------------------------------------------
def _entity_days(world: World) -> pd.DataFrame:
    """One row per (phone_hash, ts) with one x column per partner (NaN where it does not hold the person)."""
    wide = None
    bank_of = []
    for name, view in world.partners.items():
        ents = view.tables["entities"].to_pandas()
        sig = view.tables["signals"].to_pandas().merge(ents, on="entity_id", validate="many_to_one")
        col = sig.set_index(["phone_hash", "ts"])["x"].rename(name)
        wide = col.to_frame() if wide is None else wide.join(col, how="outer")
        if name.startswith("bank_"):
            bank_of.append(pd.Series(name, index=ents["phone_hash"]))
    assert wide is not None
    wide = wide.reset_index()
    wide["bank"] = pd.concat(bank_of).reindex(wide["phone_hash"]).to_numpy()
    telco = world.truth_table("entities").query("partner == 'telco'")
    phone_of_person = telco.merge(world.table("telco", "entities"), on="entity_id").set_index("person_id")
    phone_of_person = phone_of_person["phone_hash"]
    cases = world.truth_table("cases")
    positive = pd.MultiIndex.from_arrays(
        [phone_of_person.loc[cases["victim_person_id"]].to_numpy(), cases["ts_contact"].to_numpy() + 1_800]
    )
    wide["y"] = pd.MultiIndex.from_frame(wide[["phone_hash", "ts"]]).isin(positive).astype(int)
    return wide


def _bayes_score(frame: pd.DataFrame, shifts: dict[str, float], coalition: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Log posterior odds of each entity-day the coalition holds: Σ d_p x_p − δ_g²/2 + log(pos_g / neg_g)."""
    held = frame[coalition].notna().any(axis=1)
    sub = frame[held]
    group = np.where(sub["bank"].isin(coalition), sub["bank"], "outside")
    xs = sub[coalition].fillna(0.0).to_numpy()
    d = np.array([shifts[p] for p in coalition])
    has = sub[coalition].notna().to_numpy()
    llr = xs @ d - 0.5 * (has * d**2).sum(axis=1)
    counts = sub.groupby(group)["y"].agg(["sum", "count"])
    prior = np.log(counts["sum"] / (counts["count"] - counts["sum"]))
    return llr + prior.reindex(group).to_numpy(), sub["y"].to_numpy()


def _auc_ci(score: np.ndarray, y: np.ndarray, *, n_boot: int = 400, level: float = 0.99) -> tuple[float, float, float]:
    """Empirical AUC and a percentile bootstrap CI (positives and negatives resampled separately).

    A resample's AUC is Σ_i u_i W(s_i) / (m n), with u, w the resample multiplicities and W(s) the weight of
    negatives scoring below s — computed by cumulative sums over the once-sorted negatives.
    """
    pos, neg = np.sort(score[y == 1]), np.sort(score[y == 0])
    below = np.searchsorted(neg, pos)
    rng = np.random.default_rng(0)
    m, n = pos.size, neg.size
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        cum = np.concatenate([[0], np.cumsum(np.bincount(rng.integers(0, n, n), minlength=n))])
        u = np.bincount(rng.integers(0, m, m), minlength=m)
        aucs[b] = (u * cum[below]).sum() / (m * n)
    lo, hi = np.quantile(aucs, [(1 - level) / 2, (1 + level) / 2])
    return float(roc_auc_score(y, score)), float(lo), float(hi)


# ------------------------------------------------------------------------------------------------
# Closed forms
# ------------------------------------------------------------------------------------------------
def test_optimal_auc_known_values() -> None:
    assert optimal_auc([1.0]) == pytest.approx(0.7602, abs=1e-4)
    assert optimal_auc([3.0, 4.0]) == pytest.approx(PHI(5 / math.sqrt(2)), abs=1e-12)
    assert optimal_auc([]) == 0.5


def test_optimal_auc_monotone_in_partners_and_zero_shift_adds_nothing() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        shifts = list(rng.uniform(-2, 2, size=rng.integers(1, 6)))
        extra = float(rng.uniform(-2, 2))
        assert optimal_auc([*shifts, extra]) >= optimal_auc(shifts)
        assert optimal_auc([*shifts, 0.0]) == optimal_auc(shifts)


def test_grouped_optimal_auc_reduces_to_one_group_and_counts_group_information() -> None:
    one = grouped_optimal_auc(separations=[1.3, 1.3], positives=[10, 30], negatives=[100, 300])
    assert one == pytest.approx(optimal_auc([1.3]), abs=1e-12)
    # No evidence, but group A has prevalence 1/2 and group B 1/4: by hand (Mann-Whitney with ties) 0.625.
    assert grouped_optimal_auc(separations=[0, 0], positives=[1, 1], negatives=[1, 3]) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="negatives"):
        grouped_optimal_auc(separations=[1.0], positives=[1.0], negatives=[-1.0])


def test_coalition_optimal_auc_known_values() -> None:
    config = _config(bank_shifts=[1.0, 1.0, 1.0], telco_shift=0.8, marketplace_shift=0.5)
    everyone = list(partner_shifts(config))
    assert everyone == ["bank_1", "bank_2", "bank_3", "telco", "marketplace", "placebo"]
    assert coalition_optimal_auc(config, ["bank_2"]) == pytest.approx(optimal_auc([1.0]), abs=1e-9)
    assert coalition_optimal_auc(config, everyone) == pytest.approx(optimal_auc([1.0, 0.8, 0.5]), abs=1e-6)
    assert coalition_optimal_auc(config, ["placebo"]) == 0.5
    without_placebo = coalition_optimal_auc(config, ["bank_1", "telco"])
    assert coalition_optimal_auc(config, ["bank_1", "telco", "placebo"]) == pytest.approx(without_placebo)
    # Over everyone, people bank_1 does not hold add only noise: lower than over its own customers.
    over_all = coalition_optimal_auc(config, ["bank_1"], population="all")
    assert over_all < coalition_optimal_auc(config, ["bank_1"])
    with pytest.raises(ValueError, match="bank_9"):
        coalition_optimal_auc(config, ["bank_9"])


def test_bad_known_answer_config_names_the_field() -> None:
    # Refused when the config is built (validation at the boundary), before any generation.
    with pytest.raises((ConfigError, ValidationError), match="bank_case_shares"):
        generate_known_answer(_config(bank_case_shares=[0.5, 0.5]), seed=0)
    with pytest.raises((ConfigError, ValidationError), match="bank_shifts"):
        generate_known_answer(_config(bank_shifts=[]), seed=0)


# ------------------------------------------------------------------------------------------------
# The generated world against the closed forms
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coalition", [["bank_1"], ["bank_1", "bank_2", "bank_3", "telco", "marketplace"]])
def test_optimal_score_auc_matches_closed_form(iid_world: World, iid_frame: pd.DataFrame, coalition: list[str]) -> None:
    frame = iid_frame
    shifts = partner_shifts(iid_world.config)
    held = frame[coalition].notna().any(axis=1)
    score = sum(shifts[p] * frame.loc[held, p].fillna(0.0) for p in coalition)
    auc, lo, hi = _auc_ci(np.asarray(score), frame.loc[held, "y"].to_numpy())
    expected = coalition_optimal_auc(iid_world.config, coalition)
    assert lo <= expected <= hi, (auc, lo, hi, expected)


@pytest.mark.parametrize("coalition", [["bank_1", "bank_2"], ["bank_3", "telco"]])
def test_bayes_score_auc_matches_grouped_closed_form_on_non_iid_world(
    skewed_world: World, skewed_frame: pd.DataFrame, coalition: list[str]
) -> None:
    score, y = _bayes_score(skewed_frame, partner_shifts(skewed_world.config), coalition)
    auc, lo, hi = _auc_ci(score, y)
    expected = coalition_optimal_auc(skewed_world.config, coalition)
    assert lo <= expected <= hi, (auc, lo, hi, expected)


def test_placebo_signal_carries_no_information(iid_world: World, iid_frame: pd.DataFrame) -> None:
    assert 0.47 <= roc_auc_score(iid_frame["y"], iid_frame["placebo"]) <= 0.53
    assert iid_world.truth_table("provenance").query("partner == 'placebo'").empty


def test_every_person_at_exactly_one_bank_and_joinable_by_phone(iid_world: World) -> None:
    ents = iid_world.truth_table("entities")
    at_banks = ents[ents["partner"].str.startswith("bank_")]["person_id"]
    n = iid_world.config.known_answer.entities
    assert at_banks.is_unique and set(at_banks) == set(range(n))
    banks = ("bank_1", "bank_2", "bank_3")
    bank_phones = pd.concat([iid_world.table(b, "entities")["phone_hash"] for b in banks])
    assert set(bank_phones) == set(iid_world.table("telco", "entities")["phone_hash"])
    # Same person, different pseudonyms at different partners.
    ids = ents.pivot(index="person_id", columns="partner", values="entity_id")
    assert (ids["telco"] == ids["marketplace"]).mean() < 0.01


def test_non_iid_split_puts_the_given_share_of_cases_at_each_bank(skewed_world: World) -> None:
    ce = skewed_world.truth_table("case_entities")
    n_cases = len(skewed_world.truth_table("cases"))
    per_bank = ce[ce["partner"].str.startswith("bank_")].groupby("partner")["case_id"].nunique()
    assert abs(per_bank["bank_1"] / n_cases - 0.6) <= 1 / n_cases
    assert abs(per_bank["bank_3"] / n_cases - 0.1) <= 1 / n_cases
    customers = pd.Series({b: skewed_world.partners[b].tables["entities"].num_rows for b in per_bank.index})
    others = customers - per_bank
    assert others.max() - others.min() <= 1


def test_provenance_points_at_the_shifted_rows_on_the_decision_day(iid_world: World) -> None:
    prov = iid_world.truth_table("provenance").query("partner == 'telco'")
    cases = iid_world.truth_table("cases").set_index("case_id")
    victim = iid_world.truth_table("case_entities").query("partner == 'telco'").set_index("case_id")
    signals = iid_world.table("telco", "signals")
    rows = signals.iloc[prov["row"].to_numpy()]
    assert len(prov) == len(cases)
    np.testing.assert_array_equal(rows["ts"].to_numpy(), cases.loc[prov["case_id"], "ts_contact"] + 1_800)
    np.testing.assert_array_equal(rows["entity_id"].to_numpy(), victim.loc[prov["case_id"], "entity_id"])
    assert rows["x"].mean() > 0.5  # shifted by 0.8 on average
    assert set((signals["ts"] - DECISION_OFFSET_S) % DAY) == {0}


def test_schemas_match_the_data_contract(iid_world: World) -> None:
    for view in iid_world.partners.values():
        assert view.kind == "signals"
        for name, table in view.tables.items():
            assert table.schema.equals(SIGNALS_TABLES[name]), (view.name, name)
    assert set(iid_world.truth) == set(TRUTH_TABLES)
    for name, table in iid_world.truth.items():
        assert table.schema.equals(TRUTH_TABLES[name]), name


def test_same_seed_same_bytes_other_seed_different() -> None:
    config = _config(entities=2_000)
    first = build_manifest(generate_known_answer(config, seed=11))["content_hash"]
    again = build_manifest(generate_known_answer(config, seed=11))["content_hash"]
    other = build_manifest(generate_known_answer(config, seed=12))["content_hash"]
    assert first == again
    assert first != other


def test_generate_from_the_known_answer_preset() -> None:
    config = build_config(preset="known-answer", overrides={"known_answer": {"days": 14, "entities": 5_000}})
    world = generate(config, 5)
    assert world.manifest["mode"] == "known_answer"
    assert world.partner_names("signals") == list(partner_shifts(config))
    n_cases = round(5_000 * config.known_answer.prevalence)
    assert len(world.truth_table("cases")) == n_cases
    assert world.content_hash == generate(config, 5).content_hash


# ------------------------------------------------------------------------------------------------
# Placebo partner for realistic worlds
# ------------------------------------------------------------------------------------------------
def _placebo(seed: int = 4, days: int = 20) -> tuple[np.ndarray, np.ndarray, tuple[PartnerView, pa.Table]]:
    rng = np.random.default_rng(0)
    phones = 31_600_000_000 + rng.choice(10**8, size=1_000, replace=False)
    phones[::10] = -1  # every tenth person has no phone
    persons = np.arange(100, 1_100)
    return phones, persons, placebo_partner(phones, persons, days=days, seed=seed, salt=99, active_rate=0.3)


def test_placebo_partner_holds_everyone_with_a_phone_under_the_shared_key() -> None:
    phones, persons, (view, truth) = _placebo()
    truth = truth.to_pandas()
    ents = view.tables["entities"].to_pandas().merge(truth, on="entity_id")
    assert len(ents) == 900 and set(ents["person_id"]) == set(persons[phones >= 0])
    expected = salted_hash(phones[ents["person_id"].to_numpy() - 100], 99, DOMAIN_PHONE)
    np.testing.assert_array_equal(ents["phone_hash"].to_numpy(), expected)
    assert view.kind == "signals" and set(truth["partner"]) == {"placebo"}


def test_placebo_signals_rate_time_and_noise() -> None:
    _, _, (view, _) = _placebo(days=20)
    sig = view.tables["signals"].to_pandas()
    assert 0.28 <= len(sig) / (900 * 20) <= 0.32
    assert sig["ts"].between(0, 20 * DAY - 1).all() and sig["ts"].is_monotonic_increasing
    assert not sig.assign(day=sig["ts"] // DAY).duplicated(["entity_id", "day"]).any()  # ≤ 1 per entity-day
    assert abs(sig["x"].mean()) < 0.05 and abs(sig["x"].std() - 1) < 0.05
    assert view.tables["signals"].schema.equals(SIGNALS_TABLES["signals"])


def test_placebo_partner_is_deterministic_and_validates_input() -> None:
    a = _placebo(seed=4)[2][0].tables["signals"]
    assert a.equals(_placebo(seed=4)[2][0].tables["signals"])
    assert not a.equals(_placebo(seed=5)[2][0].tables["signals"])
    with pytest.raises(ValueError, match="active_rate"):
        placebo_partner(np.array([1]), np.array([0]), days=3, seed=0, salt=1, active_rate=1.5)
