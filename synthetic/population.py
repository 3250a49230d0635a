"""Persons, households, phones, devices, bank accounts and marketplace accounts of the hidden world.

Raw identifiers (phone numbers, IBANs, device fingerprints, e-mails, marketplace users) are int64
numbers from one shuffled pool per world (:class:`RawIds`); partner views only ever see salted
hashes or local pseudonyms of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthetic.config import WorldConfig
from synthetic.ids import id_pool, rng_for

DAY = 86_400
AGE_BANDS = ("15-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")
_AGE_EDGES = np.array([15, 25, 35, 45, 55, 65, 75, 96])
_AGE_WEIGHTS = np.array([0.145, 0.155, 0.150, 0.160, 0.165, 0.130, 0.095])  # CBS-like 15+ population
REGIONS = (
    "Groningen",
    "Friesland",
    "Drenthe",
    "Overijssel",
    "Flevoland",
    "Gelderland",
    "Utrecht",
    "Noord-Holland",
    "Zuid-Holland",
    "Zeeland",
    "Noord-Brabant",
    "Limburg",
)
_REGION_WEIGHTS = np.array([3.4, 3.7, 2.8, 6.6, 2.4, 12.0, 7.7, 16.5, 21.3, 2.2, 14.6, 6.3])
OTHER = -1  # "not a partner" in bank / telco / marketplace index columns


class RawIds:
    """Hands out distinct raw identifiers from one shuffled pool, so no id encodes its origin."""

    def __init__(self, seed: int, capacity: int) -> None:
        self._pool = id_pool(rng_for(seed, "raw-id-pool"), capacity)
        self._next = 0

    def take(self, n: int) -> np.ndarray:
        if self._next + n > len(self._pool):
            raise RuntimeError("raw id pool exhausted; raise its capacity")
        out = self._pool[self._next : self._next + n]
        self._next += n
        return out


def age_band(age: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(_AGE_EDGES, age, side="right") - 1, 0, len(AGE_BANDS) - 1)
    return np.asarray(AGE_BANDS, dtype=object)[idx]


def pick_partner(rng: np.random.Generator, n: int, shares: list[float]) -> np.ndarray:
    """Partner index per item by market share; OTHER (-1) for the remainder."""
    p = np.append(np.asarray(shares, dtype=float), max(0.0, 1.0 - sum(shares)))
    idx = rng.choice(len(p), size=n, p=p / p.sum())
    return np.where(idx == len(shares), OTHER, idx).astype(np.int64)


@dataclass
class Accounts:
    """Bank accounts (person or organisation). bank = partner bank index or OTHER."""

    iban: np.ndarray
    owner: np.ndarray  # person index, or -1 for organisations
    bank: np.ndarray
    product: np.ndarray  # object: current / savings / business / org
    opened_ts: np.ndarray
    daily_limit: np.ndarray

    def append(self, **cols: np.ndarray) -> np.ndarray:
        """Add accounts (e.g. opened during the horizon); returns their row indices."""
        start = len(self.iban)
        for name, values in cols.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))
        return np.arange(start, len(self.iban))


@dataclass
class Population:
    n: int
    person_id: np.ndarray
    age: np.ndarray
    region: np.ndarray
    household: np.ndarray
    digital_skill: np.ndarray
    savings: np.ndarray
    income: np.ndarray
    susceptibility: np.ndarray
    activity: np.ndarray  # relative activity level (gamma), drives every legit rate
    is_business: np.ndarray
    role: np.ndarray  # object: ordinary / mule / fraudster
    crew: np.ndarray
    # phones
    phone: np.ndarray  # current number (raw)
    old_phone: np.ndarray  # previous number (stale keys point here)
    telco: np.ndarray  # operator: partner telco index or OTHER
    prepaid: np.ndarray
    phone_since: np.ndarray  # ts the current number was activated (< 0)
    handset: np.ndarray  # raw handset id (IMEI)
    # devices and e-mail
    device: np.ndarray  # primary device fingerprint (raw)
    device2: np.ndarray  # second device or -1
    email: np.ndarray
    # banking
    bank: np.ndarray  # bank of the current account (partner index or OTHER)
    current_acct: np.ndarray  # row in accounts
    savings_acct: np.ndarray  # row in accounts or -1
    business_acct: np.ndarray  # row in accounts or -1
    customer_since: np.ndarray
    # marketplace
    market: np.ndarray  # partner marketplace index, OTHER, or -2 (no account)
    market_user: np.ndarray  # raw marketplace user id or -1
    market_created: np.ndarray
    contacts: np.ndarray  # (n, K) person indices often called / paid
    accounts: Accounts = field(repr=False, default=None)  # type: ignore[assignment]
    # set by build_population once the accounts and numbers exist (empty until then)
    org_accounts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # rows of organisation accounts
    bank_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # service number per bank index
    foreign_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    crypto_accounts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def _households(rng: np.random.Generator, n: int, mean_size: float) -> np.ndarray:
    sizes = 1 + rng.poisson(max(mean_size - 1.0, 0.0), size=n)
    hh = np.repeat(np.arange(n), sizes)[:n]
    return rng.permutation(hh)  # households scattered over person ids


def build_population(config: WorldConfig, seed: int, ids: RawIds) -> Population:
    """Draw the people and everything they own. Vectorised; one rng per component."""
    pc, parts, beh = config.population, config.partners, config.behaviour
    n = pc.persons
    rng = rng_for(seed, "population")
    band = rng.choice(len(_AGE_WEIGHTS), size=n, p=_AGE_WEIGHTS / _AGE_WEIGHTS.sum())
    age = (_AGE_EDGES[band] + rng.random(n) * (_AGE_EDGES[band + 1] - _AGE_EDGES[band])).astype(np.int64)
    region = np.asarray(REGIONS, dtype=object)[
        rng.choice(len(REGIONS), size=n, p=_REGION_WEIGHTS / _REGION_WEIGHTS.sum())
    ]
    skill = 1 / (1 + np.exp(-(1.6 - 0.05 * (age - 35) + rng.normal(0, 0.8, n))))
    savings = np.exp(rng.normal(7.8 + 0.035 * (age - 20), 1.1, n))
    income = np.exp(rng.normal(7.7 + 0.01 * np.minimum(age - 15, 40), 0.45, n))
    suscept = np.exp(rng.normal(0.0, 0.5, n))
    activity = rng.gamma(beh.activity_dispersion, 1.0 / beh.activity_dispersion, n)
    is_business = rng.random(n) < pc.business_share * (age >= 25) * (age < 70) * 1.6

    rng_p = rng_for(seed, "phones")
    phone, old_phone = ids.take(n), ids.take(n)
    telco = pick_partner(rng_p, n, parts.resolved_shares("telco"))
    prepaid = rng_p.random(n) < np.where(age < 25, 0.45, 0.18)
    phone_since = -rng_p.integers(30 * DAY, 12 * 365 * DAY, n)  # seconds: no midnight-only quirk
    handset = ids.take(n)

    rng_d = rng_for(seed, "devices")
    device = ids.take(n)
    has2 = rng_d.random(n) < 0.45
    device2 = np.where(has2, ids.take(n), -1)
    email = ids.take(n)

    rng_b = rng_for(seed, "banking")
    bank = pick_partner(rng_b, n, parts.resolved_shares("bank"))
    customer_since = -rng_b.integers(60 * DAY, 40 * 365 * DAY, n)
    # clip to age 14, keeping the time of day so no timestamp sits exactly on midnight by construction
    customer_since = np.maximum(customer_since, -(age - 14) * 365 * DAY + customer_since % DAY)
    limit = np.round(rng_b.choice([2500.0, 5000.0, 10000.0], size=n, p=[0.45, 0.4, 0.15]), 2)
    has_sav = rng_b.random(n) < np.clip(0.45 + 0.006 * (age - 20), 0.3, 0.85)
    # accounts: persons' current, savings, business; then organisations
    n_sav, n_bus = int(has_sav.sum()), int(is_business.sum())
    n_org = max(50, n // 40)
    org_bank = pick_partner(rng_b, n_org, parts.resolved_shares("bank"))
    n_crypto = 5
    acc = Accounts(
        iban=ids.take(n + n_sav + n_bus + n_org + n_crypto),
        owner=np.concatenate(
            [np.arange(n), np.flatnonzero(has_sav), np.flatnonzero(is_business), np.full(n_org + n_crypto, -1)]
        ),
        bank=np.concatenate([bank, bank[has_sav], bank[is_business], org_bank, np.full(n_crypto, OTHER)]),
        product=np.asarray(
            ["current"] * n + ["savings"] * n_sav + ["business"] * n_bus + ["org"] * (n_org + n_crypto), dtype=object
        ),
        opened_ts=np.concatenate(
            [
                customer_since,
                customer_since[has_sav],
                customer_since[is_business],
                np.full(n_org + n_crypto, -20 * 365 * DAY),
            ]
        ),
        daily_limit=np.concatenate([limit, limit[has_sav], (limit * 4)[is_business], np.full(n_org + n_crypto, 1e9)]),
    )
    savings_acct = np.full(n, -1)
    savings_acct[has_sav] = n + np.arange(n_sav)
    business_acct = np.full(n, -1)
    business_acct[is_business] = n + n_sav + np.arange(n_bus)

    rng_m = rng_for(seed, "marketplace-accounts")
    has_market = rng_m.random(n) < pc.marketplace_user_share * np.where(age > 70, 0.5, 1.0)
    market = np.where(has_market, pick_partner(rng_m, n, parts.resolved_shares("marketplace")), -2)
    market_user = np.where(has_market, ids.take(n), -1)
    market_created = -rng_m.integers(10 * DAY, 10 * 365 * DAY, n)
    # Look-alikes of crews' fresh accounts and numbers: some honest people join the marketplace or get a new
    # number during the horizon (own streams, so adding them shifts no other draw).
    horizon = pc.days * DAY
    rng_new = rng_for(seed, "new-accounts-and-numbers")
    new_market = rng_new.random(n) < beh.new_marketplace_user_share
    market_created = np.where(new_market, rng_new.integers(0, horizon, n), market_created)
    new_number = rng_new.random(n) < beh.new_number_share
    phone_since = np.where(new_number, rng_new.integers(0, horizon, n), phone_since)

    rng_c = rng_for(seed, "contacts")
    contacts = rng_c.integers(0, n, size=(n, 12))
    contacts[:, 0] = _household_partner(household := _households(rng_c, n, pc.mean_household_size), rng_c)

    pop = Population(
        n=n,
        person_id=id_pool(rng_for(seed, "person-ids"), n),
        age=age,
        region=region,
        household=household,
        digital_skill=skill,
        savings=savings,
        income=income,
        susceptibility=suscept,
        activity=activity,
        is_business=is_business,
        role=np.full(n, "ordinary", dtype=object),
        crew=np.full(n, -1),
        phone=phone,
        old_phone=old_phone,
        telco=telco,
        prepaid=prepaid,
        phone_since=phone_since,
        handset=handset,
        device=device,
        device2=device2,
        email=email,
        bank=bank,
        current_acct=np.arange(n),
        savings_acct=savings_acct,
        business_acct=business_acct,
        customer_since=customer_since,
        market=market,
        market_user=market_user,
        market_created=market_created,
        contacts=contacts,
    )
    pop.accounts = acc
    pop.org_accounts = np.arange(n + n_sav + n_bus, n + n_sav + n_bus + n_org)
    pop.crypto_accounts = np.arange(n + n_sav + n_bus + n_org, len(acc.iban))
    pop.bank_numbers = ids.take(max(parts.banks, 1) + 1)  # service number per partner bank; last = other banks
    pop.foreign_numbers = ids.take(max(200, n // 100))
    return pop


def _household_partner(household: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each person another member of the household (or a random person if living alone)."""
    n = len(household)
    order = np.argsort(household, kind="stable")
    hh_sorted = household[order]
    nxt = np.roll(order, -1)
    same = np.roll(hh_sorted, -1) == hh_sorted
    # the first of each household points to the last member (cyclic within the household)
    partner = np.where(same, nxt, -1)
    starts = np.flatnonzero(np.r_[True, hh_sorted[1:] != hh_sorted[:-1]])
    ends = np.r_[starts[1:], n] - 1
    partner_last = np.full(n, -1)
    partner_last[ends] = order[starts]
    partner = np.where(partner >= 0, partner, partner_last)
    out = np.empty(n, dtype=np.int64)
    out[order] = partner
    alone = out == np.arange(n)
    out[alone] = rng.integers(0, n, int(alone.sum()))
    return out


def daytime_ts(rng: np.random.Generator, day: np.ndarray, *, night_share: float = 0.05) -> np.ndarray:
    """A time on `day` following a waking-hours profile (08:00–22:00, a few at night)."""
    day = np.asarray(day, dtype=np.int64)
    night = rng.random(len(day)) < night_share
    sec = np.where(night, rng.integers(0, 8 * 3600, len(day)), 8 * 3600 + rng.integers(0, 14 * 3600, len(day)))
    return day * DAY + sec
