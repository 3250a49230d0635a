"""Legitimate activity of every person, including the look-alikes that make fraud hard to see.

Counts per person are Poisson(rate × activity × days) and expanded with ``np.repeat``; times are
drawn per event from a waking-hours profile. Work is split in time shards (one rng per component
and shard) so the result does not depend on how many processes generate it.

Look-alikes (world.md §3) are deliberate: seniors' large one-off transfers, real calls from the
bank followed by a transfer, first-time payees, roaming callers whose domestic caller-ID arrives on
an international trunk, ordinary SIM swaps and ports, new devices, IT-help remote sessions, young
people opening accounts, honest cheap listings, genuine family money requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthetic.amounts import cash_amount, transfer_amount
from synthetic.config import WorldConfig
from synthetic.ids import rng_for
from synthetic.ledger import Ledger
from synthetic.population import DAY, Population, RawIds, daytime_ts

CATEGORIES = ("phones", "electronics", "tickets", "furniture", "clothing", "bikes", "toys", "games", "garden", "books")
CATEGORY_MEDIAN = np.array([250.0, 180.0, 80.0, 120.0, 25.0, 220.0, 20.0, 30.0, 40.0, 8.0])
SHARD_DAYS = 30
# Shared string objects: indexing these keeps one pointer per row instead of one Python str per row.
_NAME_CHECKS = np.asarray(["match", "close", "mismatch"], dtype=object)
_CHANNELS = np.asarray(["branch", "web", "app"], dtype=object)
_CALL_KINDS = np.asarray(["sms", "call"], dtype=object)
_CATEGORY_NAMES = np.asarray(CATEGORIES, dtype=object)


@dataclass(frozen=True)
class Cohort:
    """The persons ``[lo, hi)`` whose legitimate activity is drawn, and the extra name of their random streams.

    The whole population with no extra name (:meth:`everyone`) is how every world was generated before person
    blocks existed (same draws, same bytes). A person block (:mod:`synthetic.blocks`) is ``[lo, hi)`` with the
    stream name ``("block", index)``: its draws depend only on the world's root and the block index.
    """

    lo: int
    hi: int
    stream: tuple[str | int, ...] = ()

    @classmethod
    def everyone(cls, pop: Population) -> Cohort:
        return cls(0, pop.n)

    @property
    def n(self) -> int:
        return self.hi - self.lo

    def of(self, values: np.ndarray) -> np.ndarray:
        """The cohort's rows of a per-person array."""
        return values[self.lo : self.hi]

    def rng(self, seed: int, name: str, d0: int) -> np.random.Generator:
        return rng_for(seed, name, *self.stream, d0)


def shards(days: int) -> list[tuple[int, int]]:
    return [(s, min(s + SHARD_DAYS, days)) for s in range(0, days, SHARD_DAYS)]


def _events(
    rng: np.random.Generator, per_person_rate: np.ndarray, d0: int, d1: int, offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts per person over days [d0, d1) → (offset + person index, ts) per event."""
    counts = rng.poisson(per_person_rate * (d1 - d0))
    who = np.repeat(np.arange(offset, offset + len(per_person_rate)), counts)
    day = rng.integers(d0, d1, len(who))
    return who, daytime_ts(rng, day)


def legit_shard(
    config: WorldConfig, seed: int, pop: Population, d0: int, d1: int, cohort: Cohort | None = None
) -> Ledger:
    """All legitimate events of days [d0, d1) of a cohort (default: everyone) — one self-contained unit of work."""
    led = Ledger()
    co = cohort if cohort is not None else Cohort.everyone(pop)
    _bank_activity(config, seed, pop, d0, d1, led, co)
    _phone_activity(config, seed, pop, d0, d1, led, co)
    _marketplace_activity(config, seed, pop, d0, d1, led, co)
    return led


def _transfer_cols(rng: np.random.Generator, n: int, *, instant_p: float = 0.7) -> dict[str, np.ndarray]:
    u = rng.random(n)
    return {
        "is_instant": rng.random(n) < instant_p,
        "name_check": _NAME_CHECKS[np.where(u < 0.955, 0, np.where(u < 0.99, 1, 2))],
    }


def _channel(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    web_p = np.clip(0.1 + 0.005 * (age - 30), 0.05, 0.45)
    u = rng.random(len(age))
    return _CHANNELS[np.where(u < 0.02, 0, np.where(u < 0.02 + web_p, 1, 2))]


def _bank_activity(config: WorldConfig, seed: int, pop: Population, d0: int, d1: int, led: Ledger, co: Cohort) -> None:
    beh = config.behaviour
    rng = co.rng(seed, "legit-bank", d0)
    acc = pop.accounts
    activity = co.of(pop.activity)
    # Ordinary payments: mostly to organisations and known payees, some to new ones.
    who, ts = _events(rng, beh.transfers_per_day * activity, d0, d1, co.lo)
    n = len(who)
    to_org = rng.random(n) < 0.6
    new = rng.random(n) < beh.new_payee_share
    contact = pop.contacts[who, rng.integers(0, pop.contacts.shape[1], n)]
    random_person = rng.integers(0, pop.n, n)
    org = pop.org_accounts[rng.integers(0, len(pop.org_accounts), n)]
    # a person's regular shops: a stable subset of organisations per person
    regular_org = pop.org_accounts[(who * 31 + rng.integers(0, 6, n)) % len(pop.org_accounts)]
    to_acct = np.where(to_org, np.where(new, org, regular_org), pop.current_acct[np.where(new, random_person, contact)])
    amount = transfer_amount(rng, np.exp(rng.normal(np.log(45), 1.15, n)), acc.daily_limit[pop.current_acct[who]])
    led.add(
        "transfers",
        ts=ts,
        from_acct=pop.current_acct[who],
        to_acct=to_acct,
        amount=amount,
        kind=np.full(n, "transfer", dtype=object),
        channel=_channel(rng, pop.age[who]),
        known_payee=~new,
        **_transfer_cols(rng, n),
    )
    _logins_before(rng, pop, who, ts, led)
    # Salary / benefits in: monthly from an organisation (the receiving bank sees it as "in").
    months = np.arange(d0 // 30, (d1 + 29) // 30)
    pay_day = months * 30 + 24
    pay_day = pay_day[(pay_day >= d0) & (pay_day < d1)]
    if len(pay_day):
        who_p = np.tile(np.arange(co.lo, co.hi), len(pay_day))
        day = np.repeat(pay_day, co.n)
        led.add(
            "transfers",
            ts=day * DAY + 3 * 3600 + rng.integers(0, 3600, len(day)),
            from_acct=pop.org_accounts[who_p % len(pop.org_accounts)],
            to_acct=pop.current_acct[who_p],
            amount=np.round(pop.income[who_p], 2),
            kind=np.full(len(day), "transfer", dtype=object),
            channel=np.full(len(day), "web", dtype=object),
            known_payee=np.ones(len(day), bool),
            is_instant=np.zeros(len(day), bool),
            name_check=np.full(len(day), "match", dtype=object),
        )
    _business_payments(rng, pop, d0, d1, led, co)
    # Savings → current moves (also the first step of helpdesk fraud: a look-alike by design).
    has_sav = co.of(pop.savings_acct) >= 0
    who_s, ts_s = _events(rng, 0.02 * has_sav * activity, d0, d1, co.lo)
    own_transfer(rng, pop, who_s, ts_s, np.exp(rng.normal(np.log(300), 0.9, len(who_s))), led)
    # Cash withdrawals: notes, through the same cash model as a mule's cash-out.
    who_a, ts_a = _events(rng, 0.04 * activity, d0, d1, co.lo)
    led.add(
        "transfers",
        ts=ts_a,
        from_acct=pop.current_acct[who_a],
        to_acct=np.full(len(who_a), -1),
        amount=cash_amount(rng, np.exp(rng.normal(np.log(90), 0.8, len(who_a)))),
        kind=np.full(len(who_a), "atm", dtype=object),
        channel=np.full(len(who_a), "atm", dtype=object),
        known_payee=np.ones(len(who_a), bool),
        is_instant=np.zeros(len(who_a), bool),
        name_check=np.full(len(who_a), "none", dtype=object),
    )
    # Look-alike: seniors' large one-off transfers to a new payee (car, gift, renovation).
    senior = (co.of(pop.age) >= 65).astype(float)
    who_l, ts_l = _events(rng, beh.senior_large_transfer_rate / 365 * senior, d0, d1, co.lo)
    if len(who_l):
        own_transfer(
            rng,
            pop,
            who_l,
            ts_l - rng.integers(300, 3600, len(who_l)),
            np.exp(rng.normal(np.log(4000), 0.6, len(who_l))),
            led,
        )
        payment(
            rng,
            pop,
            who_l,
            ts_l,
            pop.org_accounts[rng.integers(0, len(pop.org_accounts), len(who_l))],
            np.exp(rng.normal(np.log(4000), 0.7, len(who_l))),
            led,
            instant_p=0.9,
        )
    # Look-alike: a family member urgently asks for money and gets it within minutes.
    who_f, ts_f = _events(rng, beh.family_request_rate / 365 * np.ones(co.n), d0, d1, co.lo)
    if len(who_f):
        asker = pop.contacts[who_f, 0]
        led.add(
            "calls",
            ts=ts_f - rng.integers(120, 1800, len(who_f)),
            from_phone=pop.phone[asker],
            to_phone=pop.phone[who_f],
            presented=pop.phone[asker],
            intl=np.zeros(len(who_f), bool),
            kind=np.full(len(who_f), "sms", dtype=object),
            duration=np.zeros(len(who_f), np.int64),
        )
        payment(
            rng,
            pop,
            who_f,
            ts_f,
            pop.current_acct[asker],
            np.exp(rng.normal(np.log(400), 0.8, len(who_f))),
            led,
            instant_p=0.95,
            known_p=0.7,
        )
    # Look-alike: genuine new devices and IT-help remote sessions.
    who_d, ts_d = _events(rng, beh.new_device_rate / 365 * np.ones(co.n), d0, d1, co.lo)
    led.add(
        "logins",
        ts=ts_d,
        person=who_d,
        device=rng.integers(1 << 40, 1 << 41, len(who_d)),
        known_device=np.zeros(len(who_d), bool),
        remote_access=np.zeros(len(who_d), bool),
    )
    who_r, ts_r = _events(rng, beh.remote_access_rate / 365 * np.ones(co.n), d0, d1, co.lo)
    led.add(
        "logins",
        ts=ts_r,
        person=who_r,
        device=pop.device[who_r],
        known_device=np.ones(len(who_r), bool),
        remote_access=np.ones(len(who_r), bool),
    )


def _business_payments(rng: np.random.Generator, pop: Population, d0: int, d1: int, led: Ledger, co: Cohort) -> None:
    """Look-alike for invoice fraud: businesses pay suppliers (mostly known ones) from the business account.

    Without it every outgoing transfer from a business account was invoice fraud (the leak screen found it).
    No session rows, like the invoice-fraud payment itself (business banking is another channel).
    """
    who, ts = _events(rng, 0.3 * (co.of(pop.business_acct) >= 0) * co.of(pop.activity), d0, d1, co.lo)
    n = len(who)
    if not n:
        return
    acct = pop.business_acct[who]
    new = rng.random(n) < 0.08
    regular = pop.org_accounts[(who * 17 + rng.integers(0, 4, n)) % len(pop.org_accounts)]
    supplier = np.where(new, pop.org_accounts[rng.integers(0, len(pop.org_accounts), n)], regular)
    amount = transfer_amount(rng, np.exp(rng.normal(np.log(1200), 1.1, n)), pop.accounts.daily_limit[acct])
    led.add(
        "transfers",
        ts=ts,
        from_acct=acct,
        to_acct=supplier,
        amount=amount,
        kind=np.full(n, "transfer", dtype=object),
        channel=_CHANNELS[np.where(rng.random(n) < 0.7, 1, 2)],
        known_payee=~new,
        **_transfer_cols(rng, n),
    )


def own_transfer(
    rng: np.random.Generator,
    pop: Population,
    who: np.ndarray,
    ts: np.ndarray,
    amount: np.ndarray,
    led: Ledger,
    case_id: np.ndarray | int = -1,
    phase: str = "",
    cap: np.ndarray | None = None,
) -> np.ndarray:
    """Savings → current account of the same person (only for people with savings).

    `amount` is the wanted sum (capped by `cap`); returns the amount moved per input row, through the
    shared transfer model (rows of people without savings are not written).
    """
    amount = moved = transfer_amount(rng, amount, cap)
    keep = pop.savings_acct[who] >= 0
    who, ts, amount = who[keep], ts[keep], amount[keep]
    case = np.broadcast_to(np.asarray(case_id), keep.shape)[keep] if np.ndim(case_id) else case_id
    n = len(who)
    led.add(
        "transfers",
        case_id=case,
        phase=phase,
        ts=ts,
        from_acct=pop.savings_acct[who],
        to_acct=pop.current_acct[who],
        amount=amount,
        kind=np.full(n, "own_transfer", dtype=object),
        channel=_channel(rng, pop.age[who]),
        known_payee=np.ones(n, bool),
        is_instant=np.ones(n, bool),
        name_check=np.full(n, "none", dtype=object),
    )
    return moved


def payment(
    rng: np.random.Generator,
    pop: Population,
    who: np.ndarray,
    ts: np.ndarray,
    to_acct: np.ndarray,
    amount: np.ndarray,
    led: Ledger,
    *,
    instant_p: float = 0.7,
    known_p: float = 0.0,
    name_check: np.ndarray | None = None,
    case_id: np.ndarray | int = -1,
    phase: str = "",
    device: np.ndarray | None = None,
    remote_access: np.ndarray | None = None,
) -> np.ndarray:
    """An outgoing transfer from a person's current account, preceded by the login it needs.

    `amount` is the wanted sum; the amount sent (shared transfer model, capped by the daily limit) is returned.
    """
    n = len(who)
    cols = _transfer_cols(rng, n, instant_p=instant_p)
    if name_check is not None:
        cols["name_check"] = name_check
    amount = transfer_amount(rng, amount, pop.accounts.daily_limit[pop.current_acct[who]])
    led.add(
        "transfers",
        case_id=case_id,
        phase=phase,
        ts=ts,
        from_acct=pop.current_acct[who],
        to_acct=to_acct,
        amount=amount,
        kind=np.full(n, "transfer", dtype=object),
        channel=_channel(rng, pop.age[who]),
        known_payee=rng.random(n) < known_p,
        **cols,
    )
    _logins_before(rng, pop, who, ts, led, device=device, remote_access=remote_access, case_id=case_id, phase=phase)
    return amount


def _logins_before(
    rng: np.random.Generator,
    pop: Population,
    who: np.ndarray,
    ts: np.ndarray,
    led: Ledger,
    *,
    device: np.ndarray | None = None,
    remote_access: np.ndarray | None = None,
    case_id: np.ndarray | int = -1,
    phase: str = "",
) -> None:
    """A transfer needs a session: one login a few minutes before it (same path for fraud and not)."""
    n = len(who)
    own = np.where((pop.device2[who] >= 0) & (rng.random(n) < 0.3), pop.device2[who], pop.device[who])
    dev = own if device is None else device
    led.add(
        "logins",
        case_id=case_id,
        phase=phase,
        ts=ts - rng.integers(30, 600, n),
        person=who,
        device=dev,
        known_device=dev == own,
        remote_access=np.zeros(n, bool) if remote_access is None else remote_access,
    )


def _phone_activity(config: WorldConfig, seed: int, pop: Population, d0: int, d1: int, led: Ledger, co: Cohort) -> None:
    beh = config.behaviour
    rng = co.rng(seed, "legit-phone", d0)
    who, ts = _events(rng, beh.calls_per_day * co.of(pop.activity), d0, d1, co.lo)
    n = len(who)
    other = np.where(
        rng.random(n) < 0.85, pop.contacts[who, rng.integers(0, pop.contacts.shape[1], n)], rng.integers(0, pop.n, n)
    )
    inbound_foreign = rng.random(n) < beh.foreign_call_share
    roaming = rng.random(n) < 0.015  # caller abroad: own domestic caller-ID on an international trunk
    foreign = pop.foreign_numbers[rng.integers(0, len(pop.foreign_numbers), n)]
    from_phone = np.where(inbound_foreign, foreign, pop.phone[other])
    is_sms = rng.random(n) < 0.35
    kind = _CALL_KINDS[np.where(is_sms, 0, 1)]
    duration = np.where(~is_sms, np.exp(rng.normal(np.log(90), 1.1, n)).astype(np.int64), 0)
    exists = (ts >= pop.phone_since[who]) & (inbound_foreign | (ts >= pop.phone_since[other]))  # no calls before
    led.add(
        "calls",
        ts=ts[exists],
        from_phone=from_phone[exists],
        to_phone=pop.phone[who][exists],
        presented=from_phone[exists],
        intl=(inbound_foreign | roaming)[exists],
        kind=kind[exists],
        duration=duration[exists],
    )
    # Look-alike: real calls from the person's bank (domestic, long), often followed by a transfer.
    who_b, ts_b = _events(rng, beh.real_bank_call_rate / 365 * np.ones(co.n), d0, d1, co.lo)
    nb = len(who_b)
    if nb:
        bank_no = pop.bank_numbers[np.where(pop.bank[who_b] >= 0, pop.bank[who_b], len(pop.bank_numbers) - 1)]
        led.add(
            "calls",
            ts=ts_b,
            from_phone=bank_no,
            to_phone=pop.phone[who_b],
            presented=bank_no,
            intl=np.zeros(nb, bool),
            kind=np.full(nb, "call", dtype=object),
            duration=np.exp(rng.normal(np.log(600), 0.5, nb)).astype(np.int64),
        )
        follow = rng.random(nb) < 0.3
        payment(
            rng,
            pop,
            who_b[follow],
            ts_b[follow] + rng.integers(900, 5400, int(follow.sum())),
            pop.org_accounts[rng.integers(0, len(pop.org_accounts), int(follow.sum()))],
            np.exp(rng.normal(np.log(800), 0.9, int(follow.sum()))),
            led,
            instant_p=0.9,
        )
    # Ordinary SIM events: swaps / new handsets, eSIM, ports.
    # "activate" (a new SIM card for the number) is the look-alike of a crew activating burner SIMs.
    for event, rate in (
        ("swap", beh.sim_swap_rate * 0.8),
        ("esim", beh.sim_swap_rate * 0.2),
        ("port_in", beh.port_rate),
        ("activate", beh.sim_activation_rate),
    ):
        who_s, ts_s = _events(rng, rate / 365 * np.ones(co.n), d0, d1, co.lo)
        led.add(
            "sims",
            ts=ts_s,
            phone=pop.phone[who_s],
            event=np.full(len(who_s), event, dtype=object),
            handset=np.where(
                rng.random(len(who_s)) < 0.6, rng.integers(1 << 44, 1 << 45, len(who_s)), pop.handset[who_s]
            ),
        )


def _marketplace_activity(
    config: WorldConfig, seed: int, pop: Population, d0: int, d1: int, led: Ledger, co: Cohort
) -> None:
    beh = config.behaviour
    rng = co.rng(seed, "legit-market", d0)
    users = np.flatnonzero(pop.market_user >= 0)  # everyone's: a buyer meets sellers outside the cohort
    if len(users) < 2:
        return
    mine = users[(users >= co.lo) & (users < co.hi)]
    act = pop.activity[mine]
    who, ts = _events(rng, beh.listings_per_user_day * act, d0, d1)
    seller = mine[who]
    alive = ts >= pop.market_created[seller]  # nobody lists before their account exists
    seller, ts = seller[alive], ts[alive]
    n = len(seller)
    cat = rng.integers(0, len(CATEGORIES), n)
    cheap = rng.random(n) < beh.cheap_listing_share
    ratio = np.where(cheap, rng.uniform(0.3, 0.6, n), np.exp(rng.normal(0.0, 0.3, n)))
    led.add(
        "listings",
        ts=ts,
        user=seller,
        category=_CATEGORY_NAMES[cat],
        price=np.round(CATEGORY_MEDIAN[cat] * ratio, 2),
        ratio=ratio,
        photos_reused=rng.random(n) < 0.03,
    )
    # Orders: buyer meets a seller on the same marketplace, chats, pays.
    who_o, ts_o = _events(rng, beh.orders_per_user_day * act, d0, d1)
    buyer = mine[who_o]
    same_market = users[pop.market[users] >= -1]
    seller_o = same_market[rng.integers(0, len(same_market), len(buyer))]
    ok = (pop.market[seller_o] == pop.market[buyer]) & (seller_o != buyer)
    # both accounts exist (with a day's margin for the chat that precedes the order)
    ok &= ts_o >= np.maximum(pop.market_created[buyer], pop.market_created[seller_o]) + 2 * DAY
    buyer, seller_o, ts_o = buyer[ok], seller_o[ok], ts_o[ok]
    m = len(buyer)
    cat_o = rng.integers(0, len(CATEGORIES), m)
    amount = np.round(CATEGORY_MEDIAN[cat_o] * np.exp(rng.normal(0, 0.5, m)), 2)
    method = rng.choice(np.asarray(["escrow", "bank_transfer", "payment_link"], dtype=object), m, p=[0.55, 0.4, 0.05])
    label = np.where(rng.random(m) < 0.95, ts_o + rng.integers(3 * 3600, 3 * DAY, m), -1)
    delivered = np.where((label >= 0) & (rng.random(m) < 0.97), label + rng.integers(DAY, 4 * DAY, m), -1)
    k = rng.integers(1, 5, m)
    idx = np.repeat(np.arange(m), k)
    flip = rng.random(len(idx)) < 0.5
    led.add(
        "messages",
        ts=np.repeat(ts_o, k) - rng.integers(60, 2 * DAY, len(idx)),
        from_user=np.where(flip, buyer[idx], seller_o[idx]),
        to_user=np.where(flip, seller_o[idx], buyer[idx]),
        contains_phone=rng.random(len(idx)) < 0.04,
        contains_iban=rng.random(len(idx)) < 0.03,
        contains_url=rng.random(len(idx)) < 0.02,
        off_platform=rng.random(len(idx)) < 0.02,
    )
    led.add(
        "orders",
        ts=ts_o,
        buyer=buyer,
        seller=seller_o,
        amount=amount,
        method=method,
        label_ts=label,
        delivered_ts=delivered,
    )
    bt = method == "bank_transfer"
    payment(
        rng,
        pop,
        buyer[bt],
        ts_o[bt] + rng.integers(60, 3600, int(bt.sum())),
        pop.current_acct[seller_o[bt]],
        amount[bt],
        led,
        instant_p=0.8,
        known_p=0.05,
    )


def activate_new_numbers(config: WorldConfig, seed: int, pop: Population, led: Ledger) -> None:
    """Numbers activated during the horizon get their `activate` SIM event (once, not per shard)."""
    new = np.flatnonzero(pop.phone_since >= 0)
    led.add(
        "sims",
        ts=pop.phone_since[new],
        phone=pop.phone[new],
        event=np.full(len(new), "activate", dtype=object),
        handset=pop.handset[new],
    )


def open_young_accounts(config: WorldConfig, seed: int, pop: Population, ids: RawIds, led: Ledger) -> None:
    """Look-alike for mule accounts: young people (18-25) open a fresh account and start using it.

    Runs once over the whole horizon (not per shard) because it adds accounts to the population.
    """
    rng = rng_for(seed, "legit-young-accounts")
    young = ((pop.age >= 18) & (pop.age <= 25)).astype(float)
    who_y, ts_y = _events(rng, config.behaviour.young_new_account_rate / 365 * young, 0, config.population.days)
    if not len(who_y):
        return
    rows = pop.accounts.append(
        iban=ids.take(len(who_y)),
        owner=who_y,
        bank=pop.bank[who_y],
        product=np.full(len(who_y), "current", dtype=object),
        opened_ts=ts_y,
        daily_limit=np.full(len(who_y), 2500.0),
    )
    k = rng.integers(2, 8, len(who_y))
    src = np.repeat(np.arange(len(who_y)), k)
    led.add(
        "transfers",
        ts=np.repeat(ts_y, k) + rng.integers(3600, 10 * DAY, len(src)),
        from_acct=pop.current_acct[rng.integers(0, pop.n, len(src))],
        to_acct=rows[src],
        amount=transfer_amount(rng, np.exp(rng.normal(np.log(40), 1.0, len(src)))),
        kind=np.full(len(src), "transfer", dtype=object),
        channel=np.full(len(src), "app", dtype=object),
        known_payee=np.zeros(len(src), bool),
        **_transfer_cols(rng, len(src)),
    )
