"""Known-answer worlds and the placebo partner: worlds whose best achievable detection is known exactly.

In a known-answer world every partner holds one piece of ready-made evidence per entity and day, a
unit-variance Gaussian ``x``. On the decision day of a fraud case the victim's ``x`` at partner p is
shifted by ``d_p``; everywhere else it is pure noise, independent across partners and days. Then the
Bayes-optimal score of any coalition and its ROC-AUC have a closed form (:func:`optimal_auc`,
:func:`coalition_optimal_auc`), which the test suite uses to prove the pipeline measures the value of
sharing correctly: no gain from the placebo, the closed-form gain from the others, and no model above
the optimum (that would mean a leak).

Layout (partner names): ``bank_1 .. bank_B`` split the people horizontally (each person at exactly one
bank); ``telco`` and ``marketplace`` hold everyone (vertical partners); ``placebo`` (optional) holds
everyone with d = 0. All are of kind :data:`~synthetic.schema.SIGNALS_KIND` (:data:`synthetic.schema.SIGNALS_TABLES`).

:func:`placebo_partner` builds the placebo for realistic worlds: evidence independent of everything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pyarrow as pa

from synthetic.config import ConfigError, KnownAnswerConfig, WorldConfig
from synthetic.ids import DOMAIN_PHONE, Keys, id_pool, rng_for, salted_hash
from synthetic.population import REGIONS
from synthetic.schema import DAY, HOUR, PHASES, PLACEBO, SIGNALS_KIND, SIGNALS_TABLES, TRUTH_TABLES, partner_names
from synthetic.world_data import PartnerView, World

DECISION_OFFSET_S = 12 * HOUR
"""Decisions happen daily at noon: decision ts = day · DAY + 12 h (seconds since world start)."""

LOSS_EUR = 1_000.0

# Rough population weights (millions, CBS 2024) so regions look plausible; nothing depends on them.
_PROVINCE_WEIGHTS = np.array([0.59, 0.66, 0.50, 1.18, 0.44, 2.13, 1.39, 2.95, 3.83, 0.39, 2.63, 1.12])


# ------------------------------------------------------------------------------------------------
# Closed forms
# ------------------------------------------------------------------------------------------------
def normal_cdf(z: float) -> float:
    """Standard normal CDF Φ(z) = (1 + erf(z/√2)) / 2."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def optimal_auc(shifts: Sequence[float]) -> float:
    """Bayes-optimal ROC-AUC when each partner holds one independent N(d_p, 1) / N(0, 1) feature.

    Given the label, the features x_p are independent and unit-variance, with mean d_p for positives and
    0 for negatives. The log-likelihood ratio is Σ d_p x_p − ½Σ d_p², so the optimal score (Neyman–Pearson)
    is s = Σ d_p x_p, which is Gaussian with variance δ² = Σ d_p² in both classes and means δ² (positives)
    and 0 (negatives). For the binormal model with equal variances the AUC is
    Φ(Δμ / √(σ₀² + σ₁²)) (Hanley & McNeil 1982, Radiology 143:29; Pepe 2003, §4.4), here
    Φ(δ² / √(2δ²)) = Φ(√(Σ d_p²) / √2). No shifts (or all zero) give 0.5.

    Args:
        shifts: d_p per partner (standard deviations of the feature; any sign).
    Returns:
        AUC in [0.5, 1).
    """
    d = np.asarray(list(shifts), dtype=np.float64)
    if d.ndim != 1 or not np.all(np.isfinite(d)):
        raise ValueError(f"shifts = {list(shifts)!r}: allowed: a flat list of finite numbers")
    return normal_cdf(math.sqrt(float(np.sum(d**2))) / math.sqrt(2.0))


def grouped_optimal_auc(
    *, separations: Sequence[float], positives: Sequence[float], negatives: Sequence[float]
) -> float:
    """Bayes-optimal ROC-AUC over a population made of observable groups with their own evidence.

    Group g has a share of the positives w⁺_g and of the negatives w⁻_g (so its own prevalence), and within
    it the evidence is the equal-variance binormal model of :func:`optimal_auc` with separation δ_g
    (δ_g² = Σ d_p² over the features the group's members have). The group is observable, so the likelihood
    ratio of the whole observation (x, g) is LR_g(x) · w⁺_g / w⁻_g, and by Neyman–Pearson its logarithm
    s = ℓ_g(x) + c_g with c_g = log(w⁺_g / w⁻_g) is the AUC-optimal score. Within g the log-LR ℓ_g is
    N(+δ_g²/2, δ_g²) for positives and N(−δ_g²/2, δ_g²) for negatives, so

        AUC = Σ_g Σ_h w⁺_g w⁻_h Φ((δ_g²/2 + δ_h²/2 + c_g − c_h) / √(δ_g² + δ_h²)),

    the Mann–Whitney probability P(s⁺ > s⁻) (Hanley & McNeil 1982) split over the pair of groups; a pair
    with δ_g = δ_h = 0 compares two constants (1, ½ for a tie, or 0). One group gives Φ(δ/√2).

    Args:
        separations: δ_g per group (≥ 0, in standard deviations).
        positives: positive units per group (counts or weights ≥ 0; some > 0).
        negatives: negative units per group (counts or weights ≥ 0; some > 0).
    """
    delta = np.asarray(separations, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    for name, arr in (("separations", delta), ("positives", pos), ("negatives", neg)):
        if arr.shape != delta.shape or arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"{name} = {arr.tolist()!r}: allowed: one finite number >= 0 per group ({delta.size} groups)"
            )
    if pos.sum() <= 0 or neg.sum() <= 0:
        raise ValueError(f"positives = {pos.tolist()}, negatives = {neg.tolist()}: allowed: each sums to > 0")
    w_pos, w_neg = pos / pos.sum(), neg / neg.sum()
    with np.errstate(divide="ignore"):
        c = np.log(w_pos) - np.log(w_neg)  # ±inf for groups holding only one class
    auc = 0.0
    for g in np.flatnonzero(w_pos > 0):
        for h in np.flatnonzero(w_neg > 0):
            auc += w_pos[g] * w_neg[h] * _pair_win_probability(delta[g], c[g], delta[h], c[h])
    return float(auc)


def _pair_win_probability(delta_g: float, c_g: float, delta_h: float, c_h: float) -> float:
    """P(s⁺ > s⁻) + ½P(s⁺ = s⁻) for a positive of group g against a negative of group h."""
    gap = c_g - c_h  # may be +inf (h holds no positives); never -inf for groups that hold each class
    if math.isinf(gap):
        return 1.0 if gap > 0 else 0.0
    mean = (delta_g**2 + delta_h**2) / 2.0 + gap
    sd = math.sqrt(delta_g**2 + delta_h**2)
    if sd == 0.0:
        return 1.0 if mean > 0 else (0.5 if mean == 0 else 0.0)
    return normal_cdf(mean / sd)


def partner_shifts(config: WorldConfig) -> dict[str, float]:
    """Partner name → d_p of a known-answer world, in the order the world lists its partners."""
    ka = config.known_answer
    shifts = [*ka.bank_shifts, ka.telco_shift, ka.marketplace_shift] + ([0.0] if ka.placebo else [])
    return dict(zip(ka.partner_names(), shifts, strict=True))


def coalition_optimal_auc(
    config: WorldConfig, partners: Sequence[str], *, population: Literal["held", "all"] = "held"
) -> float:
    """Best achievable entity-day ROC-AUC of a coalition of partners in a known-answer world.

    Units: entity-days (person × day); the positives are the cases' decision days, all other days of all
    people are negatives. ``population="held"`` scores the people held by at least one coalition partner;
    ``"all"`` scores everyone (people the coalition does not hold have no evidence, δ = 0).

    A person at bank b has the evidence of the coalition's vertical partners plus bank b's feature if b is
    in the coalition, so people fall into groups the coalition can tell apart: one per coalition bank, plus
    "at a bank outside the coalition". With equal bank shifts and the (near-exactly) even case split this
    is :func:`optimal_auc` of the shifts one person has; with a non-IID case split the group itself carries
    information and :func:`grouped_optimal_auc` counts it. A model that cannot tell the groups apart (one
    horizontal model without a bank indicator) may stay below it. Because the population changes with the
    coalition, a larger coalition can have a lower AUC (more people, some with weaker evidence).
    """
    ka = _validated(config.known_answer)
    shifts = partner_shifts(config)
    chosen = list(dict.fromkeys(partners))
    unknown = [p for p in chosen if p not in shifts]
    if unknown or not chosen:
        raise ValueError(f"partners = {list(partners)!r}: allowed: a non-empty subset of {', '.join(shifts)}")
    if population not in ("held", "all"):
        raise ValueError(f"population = {population!r}: allowed: 'held' or 'all'")
    banks = partner_names("bank", len(ka.bank_shifts))
    vertical = [p for p in chosen if p not in banks]
    vertical_sq = sum(shifts[p] ** 2 for p in vertical)
    cases, others = _bank_counts(ka)
    person_days = (cases + others) * ka.days
    groups: list[tuple[float, float, float]] = []  # (δ, positives, negatives)
    outside = np.zeros(2)
    for i, name in enumerate(banks):
        if name in chosen:
            groups.append((math.sqrt(vertical_sq + shifts[name] ** 2), cases[i], person_days[i] - cases[i]))
        else:
            outside += (cases[i], person_days[i] - cases[i])
    if (vertical or population == "all") and outside.sum() > 0:
        groups.append((math.sqrt(vertical_sq), outside[0], outside[1]))
    delta, pos, neg = (list(col) for col in zip(*groups, strict=True))
    return grouped_optimal_auc(separations=delta, positives=pos, negatives=neg)


# ------------------------------------------------------------------------------------------------
# Validation and the split of people over banks
# ------------------------------------------------------------------------------------------------
def _validated(ka: KnownAnswerConfig) -> KnownAnswerConfig:
    """Checks KnownAnswerConfig cannot express in field bounds alone (lengths, sums)."""
    n = len(ka.bank_shifts)
    if not 1 <= n <= 10:
        raise ConfigError(f"known_answer.bank_shifts = {ka.bank_shifts}: allowed: 1 to 10 banks")
    if any(not (0.0 <= d <= 10.0) for d in ka.bank_shifts):  # also rejects NaN
        raise ConfigError(f"known_answer.bank_shifts = {ka.bank_shifts}: allowed: each in [0, 10]")
    shares = ka.bank_case_shares
    if shares is not None:
        if len(shares) != n:
            raise ConfigError(
                f"known_answer.bank_case_shares = {shares}: has {len(shares)} entries; "
                f"allowed: exactly {n} (one per bank in bank_shifts)"
            )
        if any(not (s >= 0.0) for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
            raise ConfigError(f"known_answer.bank_case_shares = {shares}: allowed: each >= 0, summing to 1")
    if ka.entities < 10 * n:
        raise ConfigError(f"known_answer.entities = {ka.entities}: allowed: at least 10 per bank ({10 * n})")
    return ka


def _apportion(total: int, shares: Sequence[float]) -> np.ndarray:
    """Split `total` into whole counts proportional to `shares` (largest remainder / Hamilton method)."""
    w = np.asarray(shares, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact + 1e-9).astype(np.int64)
    rest = total - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def n_cases(ka: KnownAnswerConfig) -> int:
    """Number of case persons: round(entities · prevalence), at least 1."""
    return max(1, round(ka.entities * ka.prevalence))


def _bank_counts(ka: KnownAnswerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(cases, non-case persons) per bank: cases by bank_case_shares (default equal), the rest evenly."""
    n_banks = len(ka.bank_shifts)
    c = n_cases(ka)
    case_shares = ka.bank_case_shares if ka.bank_case_shares is not None else [1.0] * n_banks
    return _apportion(c, case_shares), _apportion(ka.entities - c, [1.0] * n_banks)


# ------------------------------------------------------------------------------------------------
# The world
# ------------------------------------------------------------------------------------------------
def generate_known_answer(config: WorldConfig, seed: int, *, keys: Keys | None = None) -> World:
    """Known-answer world from (config, seed); same inputs → identical tables. See the module docstring.

    ``keys``: the join keys of a world with a secret (``seed`` is then its secret root); default: a salt from
    the seed.

    Persons are 0..N−1 (N = known_answer.entities); round(N · prevalence) of them are cases, each on one
    decision day drawn uniformly from [0, days). Every partner has one ``signals`` row per entity and day at
    the decision time (noon), x ~ N(0, 1), plus d_p on a case's decision day.
    """
    ka = _validated(config.known_answer)
    n, days = ka.entities, ka.days
    case_person, case_day = _draw_cases(ka, seed)
    bank_of = _assign_banks(ka, seed, case_person)
    phone_hash = _phone_hashes(n, seed, keys)
    shifts = partner_shifts(config)
    n_banks = len(ka.bank_shifts)
    held = {name: np.flatnonzero(bank_of == i) for i, name in enumerate(partner_names("bank", n_banks))}
    held.update({name: np.arange(n, dtype=np.int64) for name in shifts if name not in held})

    partners: dict[str, PartnerView] = {}
    prov, case_ents, truth_ents = [], [], []
    case_id = np.arange(case_person.size, dtype=np.int64)
    for name, persons in held.items():
        ids = np.full(n, -1, dtype=np.int64)
        ids[persons] = id_pool(rng_for(seed, "known_answer", "ids", name), persons.size)
        persons = persons[np.argsort(ids[persons], kind="stable")]  # tables list entities by id
        view, shifted_rows, shifted_cases = _signals_partner(
            name=name,
            persons=persons,
            entity_ids=ids,
            phone_hash=phone_hash,
            days=days,
            shift=shifts[name],
            case_person=case_person,
            case_day=case_day,
            rng=rng_for(seed, "known_answer", "signals", name),
        )
        partners[name] = view
        prov.append(_provenance_rows(name, shifted_rows, shifted_cases))
        mine = ids[case_person] >= 0
        case_ents.append((case_id[mine], _strings(int(mine.sum()), name), ids[case_person][mine]))
        truth_ents.append((name, ids[persons], persons))

    truth = {
        "cases": _cases_table(case_person, case_day),
        "money_outs": _money_outs_table(case_day),
        "case_entities": _case_entities_table(case_ents),
        "provenance": pa.concat_tables(prov),
        "entities": _truth_entities_table(truth_ents),
        "persons": _persons_table(n, seed, config.population.start_date),
        "crews": TRUTH_TABLES["crews"].empty_table(),
    }
    return World(config=config, seed=seed, partners=partners, truth=truth)


def _draw_cases(ka: KnownAnswerConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Case persons and decision days, ordered by (day, person) so case_id = position follows time."""
    rng = rng_for(seed, "known_answer", "cases")
    person = rng.permutation(ka.entities)[: n_cases(ka)].astype(np.int64)
    day = rng.integers(0, ka.days, size=person.size, dtype=np.int64)
    order = np.lexsort((person, day))
    return person[order], day[order]


def _assign_banks(ka: KnownAnswerConfig, seed: int, case_person: np.ndarray) -> np.ndarray:
    """Bank index per person: exact counts from _bank_counts, shuffled within cases and within the rest."""
    rng = rng_for(seed, "known_answer", "banks")
    cases, others = _bank_counts(ka)
    is_case = np.zeros(ka.entities, dtype=bool)
    is_case[case_person] = True
    bank_of = np.empty(ka.entities, dtype=np.int64)
    bank_of[np.flatnonzero(is_case)] = rng.permutation(np.repeat(np.arange(cases.size), cases))
    bank_of[np.flatnonzero(~is_case)] = rng.permutation(np.repeat(np.arange(others.size), others))
    return bank_of


def _phone_hashes(n: int, seed: int, keys: Keys | None) -> np.ndarray:
    """Salted hash of each person's (distinct, Dutch-mobile-like) phone number, shared by all partners."""
    rng = rng_for(seed, "known_answer", "phones")
    raw = 31_600_000_000 + rng.choice(100_000_000, size=n, replace=False).astype(np.int64)
    if keys is not None:
        return keys.phone(raw)
    salt = int(rng_for(seed, "known_answer", "salt").integers(0, 1 << 62))
    return salted_hash(raw, salt, DOMAIN_PHONE)


def _signals_partner(
    *,
    name: str,
    persons: np.ndarray,
    entity_ids: np.ndarray,
    phone_hash: np.ndarray,
    days: int,
    shift: float,
    case_person: np.ndarray,
    case_day: np.ndarray,
    rng: np.random.Generator,
) -> tuple[PartnerView, np.ndarray, np.ndarray]:
    """One signals partner; rows are day-major, entities in the order of `persons` within a day.

    Returns: (view, row numbers of the shifted ``signals`` rows, the case id of each).
    """
    eid = entity_ids[persons]
    k = persons.size
    entities = pa.table({"entity_id": eid, "phone_hash": phone_hash[persons]}, schema=SIGNALS_TABLES["entities"])
    position = np.full(entity_ids.size, -1, dtype=np.int64)
    position[persons] = np.arange(k)
    ts = np.repeat(np.arange(days, dtype=np.int64) * DAY + DECISION_OFFSET_S, k)
    x = rng.standard_normal(k * days)
    mine = np.flatnonzero(position[case_person] >= 0)  # case ids this partner holds
    rows = case_day[mine] * k + position[case_person[mine]]
    if shift != 0.0:
        x[rows] += shift
    else:
        rows, mine = rows[:0], mine[:0]  # a zero shift injects nothing
    signals = pa.table({"ts": ts, "entity_id": np.tile(eid, days), "x": x}, schema=SIGNALS_TABLES["signals"])
    view = PartnerView(name=name, kind=SIGNALS_KIND, tables={"entities": entities, "signals": signals})
    return view, rows.astype(np.int64), mine.astype(np.int64)


def _strings(n: int, value: str) -> np.ndarray:
    return np.full(n, value, dtype=object)


def _provenance_rows(partner: str, rows: np.ndarray, case_ids: np.ndarray) -> pa.Table:
    m = rows.size
    return pa.table(
        {
            "partner": _strings(m, partner),
            "table": _strings(m, "signals"),
            "row": rows,
            "case_id": case_ids,
            "phase": _strings(m, "contact"),
        },
        schema=TRUTH_TABLES["provenance"],
    )


def _cases_table(case_person: np.ndarray, case_day: np.ndarray) -> pa.Table:
    c = case_person.size
    decision = case_day * DAY + DECISION_OFFSET_S
    t_loss = decision + HOUR  # one hour after the decision: detecting at the decision is in time
    phase_ts = {
        "orientation": decision - 1_800,
        "preparation": decision - 1_800,
        "contact": decision - 1_800,
        "convincing": decision - 1_800,
        "money_transfer": t_loss,
        "cash_out": decision + 7_200,
    }
    cols = {
        "case_id": np.arange(c, dtype=np.int64),
        "fraud_type": _strings(c, "known_answer"),
        "variant": _strings(c, "closed_form"),
        "crew_id": np.full(c, -1, dtype=np.int64),
        "victim_person_id": case_person,
        **{f"ts_{p}": phase_ts[p] for p in PHASES},
        "t_loss": t_loss,
        "loss_eur": np.full(c, LOSS_EUR),
        "reported": np.ones(c, dtype=bool),
        "report_ts": t_loss + HOUR,
    }
    return pa.table(cols, schema=TRUTH_TABLES["cases"])


def _money_outs_table(case_day: np.ndarray) -> pa.Table:
    c = case_day.size
    t_loss = case_day * DAY + DECISION_OFFSET_S + HOUR
    return pa.table(
        {
            "case_id": np.arange(c, dtype=np.int64),
            "ts": t_loss,
            "amount_eur": np.full(c, LOSS_EUR),
            "cashout_ts": t_loss + HOUR,
        },
        schema=TRUTH_TABLES["money_outs"],
    )


def _case_entities_table(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> pa.Table:
    case_id, partner, entity = (np.concatenate(col) for col in zip(*parts, strict=True))
    order = np.argsort(case_id, kind="stable")  # by case, partners in world order
    return pa.table(
        {
            "case_id": case_id[order],
            "partner": partner[order],
            "entity_id": entity[order],
            "role": _strings(case_id.size, "victim"),
        },
        schema=TRUTH_TABLES["case_entities"],
    )


def _truth_entities_table(parts: list[tuple[str, np.ndarray, np.ndarray]]) -> pa.Table:
    partner = np.concatenate([_strings(e.size, name) for name, e, _ in parts])
    entity = np.concatenate([e for _, e, _ in parts])
    person = np.concatenate([p for _, _, p in parts])
    return pa.table(
        {"partner": partner, "entity_id": entity, "person_id": person, "role": _strings(entity.size, "ordinary")},
        schema=TRUTH_TABLES["entities"],
    )


def _persons_table(n: int, seed: int, start_date: str) -> pa.Table:
    """Plausible but inert person attributes: no evidence in a known-answer world depends on them."""
    rng = rng_for(seed, "known_answer", "persons")
    age = rng.integers(15, 91, size=n).astype(np.int32)
    region_idx = rng.choice(len(REGIONS), size=n, p=_PROVINCE_WEIGHTS / _PROVINCE_WEIGHTS.sum())
    cols = {
        "person_id": np.arange(n, dtype=np.int64),
        "birth_year": (int(start_date[:4]) - age).astype(np.int32),
        "age": age,
        "region": np.asarray(REGIONS, dtype=object)[region_idx],
        "household_id": np.arange(n, dtype=np.int64),
        "digital_skill": rng.beta(4.0, 2.0, size=n),
        "savings_eur": np.round(rng.lognormal(math.log(8_000.0), 1.2, size=n), 2),
        "income_eur": np.round(rng.lognormal(math.log(2_500.0), 0.4, size=n), 2),
        "susceptibility": np.ones(n),
        "role": _strings(n, "ordinary"),
        "crew_id": np.full(n, -1, dtype=np.int64),
    }
    return pa.table(cols, schema=TRUTH_TABLES["persons"])


# ------------------------------------------------------------------------------------------------
# Placebo partner for realistic worlds
# ------------------------------------------------------------------------------------------------
def placebo_partner(
    person_phone_raw: np.ndarray,
    person_ids: np.ndarray,
    *,
    days: int,
    seed: int,
    salt: int,
    active_rate: float = 0.3,
    person_roles: np.ndarray | None = None,
    name: str = PLACEBO,
    keys: Keys | None = None,
) -> tuple[PartnerView, pa.Table]:
    """A ``signals`` partner whose evidence is independent of everything (for realistic worlds).

    It holds every person with a phone (one entity each, joinable by ``phone_hash`` = salted_hash(raw phone,
    salt, DOMAIN_PHONE), the same key the other partners use). On a random ``active_rate`` share of
    (entity, day) pairs it has one ``signals`` row at a uniformly random second of that day with
    x ~ N(0, 1). Any value the pipeline attributes to it is a measurement error.

    Args:
        person_phone_raw: shape (n,) int64 raw phone number per person; a value < 0 means no phone.
        person_ids: shape (n,) int64 person id per person (same order).
        days: horizon (days); rows have 0 <= ts < days · 86400 (seconds since world start).
        seed: world seed (randomness via ``rng_for(seed, "placebo", ...)``).
        salt: the world's join-key salt.
        active_rate: probability an entity has a row on a given day (0..1).
        person_roles: shape (n,) role per person for the truth rows (default "ordinary").
        name: partner name.
        keys: the world's join keys when it has a secret (then used instead of ``salt``).
    Returns:
        (the partner's view with tables ``entities`` and ``signals``, its rows of truth ``entities``).
    """
    phones = np.asarray(person_phone_raw, dtype=np.int64)
    pids = np.asarray(person_ids, dtype=np.int64)
    if phones.shape != pids.shape or phones.ndim != 1:
        raise ValueError(
            f"person_phone_raw shape {phones.shape} vs person_ids shape {pids.shape}: "
            "allowed: two flat arrays of the same length"
        )
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"days = {days!r}: allowed: a whole number >= 1")
    if not 0.0 <= active_rate <= 1.0:
        raise ValueError(f"active_rate = {active_rate!r}: allowed: a probability in [0, 1]")
    roles = _strings(pids.size, "ordinary") if person_roles is None else np.asarray(person_roles, dtype=object)
    if roles.shape != pids.shape:
        raise ValueError(f"person_roles shape {roles.shape}: allowed: same length as person_ids ({pids.size})")

    has_phone = np.flatnonzero(phones >= 0)
    eid = id_pool(rng_for(seed, "placebo", "ids"), has_phone.size)
    order = np.argsort(eid, kind="stable")
    holder, eid = has_phone[order], eid[order]
    entities = pa.table(
        {
            "entity_id": eid,
            "phone_hash": keys.phone(phones[holder]) if keys else salted_hash(phones[holder], salt, DOMAIN_PHONE),
        },
        schema=SIGNALS_TABLES["entities"],
    )
    signals = _placebo_signals(eid, days=int(days), active_rate=active_rate, rng=rng_for(seed, "placebo", "signals"))
    view = PartnerView(name=name, kind=SIGNALS_KIND, tables={"entities": entities, "signals": signals})
    truth = pa.table(
        {"partner": _strings(eid.size, name), "entity_id": eid, "person_id": pids[holder], "role": roles[holder]},
        schema=TRUTH_TABLES["entities"],
    )
    return view, truth


def _placebo_signals(entity_ids: np.ndarray, *, days: int, active_rate: float, rng: np.random.Generator) -> pa.Table:
    """Rows sorted by (ts, entity_id); one day at a time so memory stays at one day's worth of draws."""
    ts_parts, id_parts = [], []
    for day in range(days):
        active = entity_ids[rng.random(entity_ids.size) < active_rate]
        ts = day * DAY + rng.integers(0, DAY, size=active.size, dtype=np.int64)
        order = np.lexsort((active, ts))
        ts_parts.append(ts[order])
        id_parts.append(active[order])
    ts_all = np.concatenate(ts_parts) if ts_parts else np.zeros(0, dtype=np.int64)
    ids_all = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
    x = rng.standard_normal(ts_all.size)  # drawn after the layout: independent of who is active when
    return pa.table({"ts": ts_all, "entity_id": ids_all, "x": x}, schema=SIGNALS_TABLES["signals"])
