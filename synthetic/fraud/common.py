"""What every fraud type shares: timing, victims, crews, money mules, cash-out and reports.

A fraud type module draws its cases, then writes each phase's traces into the same ledger that
legitimate behaviour uses, tagged (hidden) with case id and phase. Whether a phase leaves its
designed trace at a partner kind is a Bernoulli draw with probability
``config.signal[fraud_type][phase][kind]``; when it does not, the row still happens but looks
ordinary (e.g. a domestic caller-ID instead of a spoofed one), so removing a signal never removes
the event itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthetic.amounts import cash_amount, transfer_amount
from synthetic.config import WorldConfig
from synthetic.ids import rng_for
from synthetic.ledger import Ledger
from synthetic.population import DAY, OTHER, Population, RawIds, daytime_ts, pick_partner

HOUR = 3600


@dataclass
class MarketAccounts:
    """Marketplace accounts: rows 0..n-1 are the persons (market == -2: none); fraud appends fakes."""

    raw: np.ndarray
    owner: np.ndarray
    market: np.ndarray
    created_ts: np.ndarray
    phone: np.ndarray
    email: np.ndarray
    payout_acct: np.ndarray
    device: np.ndarray

    def append(self, **cols: np.ndarray) -> np.ndarray:
        start = len(self.raw)
        for name, values in cols.items():
            setattr(self, name, np.concatenate([getattr(self, name), np.asarray(values)]))
        return np.arange(start, len(self.raw))


@dataclass
class Crews:
    fraud_type: list[str] = field(default_factory=list)
    variant: list[str] = field(default_factory=list)
    adapted_variant: list[str] = field(default_factory=list)
    adapt_ts: list[int] = field(default_factory=list)
    size: list[int] = field(default_factory=list)
    members: list[np.ndarray] = field(default_factory=list)
    burners: list[np.ndarray] = field(default_factory=list)  # raw phone numbers
    devices: list[np.ndarray] = field(default_factory=list)  # raw device ids


@dataclass
class FraudContext:
    config: WorldConfig
    seed: int
    pop: Population
    ids: RawIds
    ledger: Ledger
    market_accounts: MarketAccounts
    crews: Crews
    burner_telco: dict[int, int] = field(default_factory=dict)  # raw burner number -> telco index / OTHER
    cases: list[dict[str, np.ndarray]] = field(default_factory=list)
    money_outs: list[dict[str, np.ndarray]] = field(default_factory=list)
    case_parties: list[dict[str, np.ndarray]] = field(default_factory=list)
    next_case: int = 0

    @property
    def horizon(self) -> int:
        return self.config.population.days * DAY

    def rng(self, *names: str | int) -> np.random.Generator:
        return rng_for(self.seed, "fraud", *names)

    def shows(self, rng: np.random.Generator, fraud_type: str, phase: str, kind: str, n: int) -> np.ndarray:
        """Per case: does this phase leave its designed trace at this partner kind?"""
        return rng.random(n) < self.config.signal_p(fraud_type, phase, kind)

    def new_case_ids(self, n: int) -> np.ndarray:
        out = np.arange(self.next_case, self.next_case + n, dtype=np.int64)
        self.next_case += n
        return out


def n_cases(ctx: FraudContext, fraud_type: str) -> int:
    """Expected victims over the horizon = rate per 100k per year × multiplier × persons × years."""
    fc = ctx.config.fraud[fraud_type]
    lam = fc.victims_per_100k_year / 1e5 * fc.multiplier * ctx.pop.n * ctx.config.population.days / 365
    return int(ctx.rng(fraud_type, "count").poisson(lam))


def pick_victims(
    ctx: FraudContext, rng: np.random.Generator, fraud_type: str, n: int, eligible: np.ndarray
) -> np.ndarray:
    """Victims drawn without replacement, weighted by susceptibility and the type's age skew."""
    pop = ctx.pop
    skew = ctx.config.fraud[fraud_type].victim_age_skew
    w = pop.susceptibility * np.exp(skew * (pop.age - 50) / 10.0) * eligible * (pop.role == "ordinary")
    if w.sum() <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    n = min(n, int((w > 0).sum()))
    return rng.choice(pop.n, size=n, replace=False, p=w / w.sum())


def contact_times(ctx: FraudContext, rng: np.random.Generator, n: int, *, lead_days: int = 3) -> np.ndarray:
    """Contact moments spread over the horizon, leaving room for preparation and cash-out."""
    days = ctx.config.population.days
    day = rng.integers(min(lead_days, days - 3), max(days - 2, lead_days + 1), n)
    return daytime_ts(rng, day, night_share=0.02)


def form_crews(
    ctx: FraudContext, rng: np.random.Generator, fraud_type: str, variant: str, n_cases_: int, adapted_variant: str
) -> np.ndarray:
    """Create the crews for a type; returns the crew id of each case (cases sorted by time later)."""
    cc = ctx.config.crews
    n_crews = max(1, int(np.ceil(n_cases_ / cc.cases_per_crew)))
    pop = ctx.pop
    first = len(ctx.crews.fraud_type)
    candidates = np.flatnonzero((pop.age >= 18) & (pop.age <= 40) & (pop.role == "ordinary"))
    barrier = next((b for b in ctx.config.barriers if b.fraud_type == fraud_type), None)
    for c in range(n_crews):
        size = max(1, int(rng.poisson(cc.members)))
        members = rng.choice(candidates, size=min(size, len(candidates)), replace=False)
        pop.role[members] = "fraudster"
        pop.crew[members] = first + c
        burners = ctx.ids.take(cc.sims_per_crew)
        telco = pick_partner(rng, len(burners), ctx.config.partners.resolved_shares("telco"))
        ctx.burner_telco.update(dict(zip(burners.tolist(), telco.tolist(), strict=True)))
        adapts = barrier is not None and rng.random() < barrier.adapt_share
        adapt_ts = (
            (barrier.day * DAY + int(rng.exponential(barrier.adapt_delay_days) * DAY))
            if (barrier is not None and adapts)
            else -1
        )
        ctx.crews.fraud_type.append(fraud_type)
        ctx.crews.variant.append(variant)
        ctx.crews.adapted_variant.append(adapted_variant if adapts else variant)
        ctx.crews.adapt_ts.append(adapt_ts)
        ctx.crews.size.append(len(members))
        ctx.crews.members.append(members)
        ctx.crews.burners.append(burners)
        ctx.crews.devices.append(ctx.ids.take(cc.devices_per_crew))
    return first + rng.integers(0, n_crews, n_cases_)


def crew_burner(ctx: FraudContext, rng: np.random.Generator, crew: np.ndarray) -> np.ndarray:
    return np.array([ctx.crews.burners[c][rng.integers(0, len(ctx.crews.burners[c]))] for c in crew], dtype=np.int64)


def crew_device(ctx: FraudContext, rng: np.random.Generator, crew: np.ndarray) -> np.ndarray:
    return np.array([ctx.crews.devices[c][rng.integers(0, len(ctx.crews.devices[c]))] for c in crew], dtype=np.int64)


@dataclass
class CaseDraw:
    """The cases of one fraud type, sorted by contact time: who, by which crew, when, under which id."""

    victim: np.ndarray
    crew: np.ndarray
    t_contact: np.ndarray
    case_id: np.ndarray

    @property
    def n(self) -> int:
        return len(self.victim)


def draw_cases(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    *,
    eligible: np.ndarray,
    variant: str,
    lead_days: int,
    exists_since: np.ndarray | None = None,
) -> CaseDraw | None:
    """How many victims, who, which crew, when first contacted — the start every fraud type shares.

    ``exists_since`` (per person, ts): when the account or number the contact goes through came into being;
    a contact is never earlier than a day after it (a case that would fall past the horizon is dropped).
    Returns None when the world has no case of this type."""
    victim = pick_victims(ctx, rng, fraud_type, n_cases(ctx, fraud_type), eligible=eligible)
    if len(victim) == 0:
        return None
    crew = form_crews(ctx, rng, fraud_type, variant, len(victim), adapted_variant=variant)
    t_contact = contact_times(ctx, rng, len(victim), lead_days=lead_days)
    if exists_since is not None:
        t_contact = np.maximum(t_contact, exists_since[victim] + rng.integers(DAY, 6 * DAY, len(victim)))
        keep = t_contact < ctx.horizon - 3 * DAY
        victim, crew, t_contact = victim[keep], crew[keep], t_contact[keep]
        if len(victim) == 0:
            return None
    order = np.argsort(t_contact, kind="stable")
    return CaseDraw(victim[order], crew[order], t_contact[order], ctx.new_case_ids(len(victim)))


def activate_burners(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    case_id: np.ndarray,
    burner: np.ndarray,
    crew: np.ndarray,
    t_contact: np.ndarray,
    visible: np.ndarray,
) -> None:
    """Preparation: the crew activates prepaid SIMs, several on one shared handset when visible."""
    handset = np.where(visible, crew_device(ctx, rng, crew), rng.integers(1 << 44, 1 << 45, len(burner)))
    ts = t_contact - rng.integers(1 * DAY, 6 * DAY, len(burner))
    ctx.ledger.add(
        "sims",
        case_id=case_id,
        phase="preparation",
        ts=np.maximum(ts, 0),
        phone=burner,
        event=np.full(len(burner), "activate", dtype=object),
        handset=handset,
    )


@dataclass
class MuleAssignment:
    account: np.ndarray  # row in pop.accounts per case
    person: np.ndarray  # mule person per case


def assign_mules(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    crew: np.ndarray,
    t_contact: np.ndarray,
    new_account_visible: np.ndarray,
) -> MuleAssignment:
    """Each crew recruits young mules; a mule account serves ~victims_per_mule cases within its lifetime.

    A recruited mule uses a freshly opened account (opened days before first use) when the preparation
    trace shows at the bank, otherwise an existing (often dormant) current account.
    """
    pop, mc = ctx.pop, ctx.config.mules
    vpm = ctx.config.fraud[fraud_type].victims_per_mule
    n = len(crew)
    account = np.full(n, -1, dtype=np.int64)
    person = np.full(n, -1, dtype=np.int64)
    young = ((pop.age >= 18) & (pop.age <= 30) & (pop.role == "ordinary")).astype(float) + 1e-3
    # Recruiting weight; a recruited mule drops to 0 (what recomputing it from pop.role each time gave, in O(1)).
    w = young * (pop.role == "ordinary")
    order = np.lexsort((t_contact, crew))
    first_new = len(pop.accounts.iban)
    new_iban: list[np.ndarray] = []
    new_owner: list[int] = []
    new_opened: list[int] = []
    start = 0
    while start < n:  # one iteration per mule account (not per event)
        c = crew[order[start]]
        k = max(1, int(rng.poisson(vpm - 1)) + 1)
        block = order[start : start + k]
        block = block[crew[block] == c]
        block = block[t_contact[block] - t_contact[block[0]] <= mc.lifetime_days * DAY] if len(block) else block
        first = block[0]
        m = _weighted_pick(rng, w)
        pop.role[m] = "mule"
        w[m] = 0.0
        if new_account_visible[first] or rng.random() < 0.2:
            new_opened.append(max(int(t_contact[first]) - int(rng.integers(2, 20)) * DAY, -30 * DAY))
            new_iban.append(ctx.ids.take(1))
            new_owner.append(m)
            row = first_new + len(new_owner) - 1  # the accounts are appended once, below, in this order
        else:
            row = pop.current_acct[m]
        account[block] = row
        person[block] = m
        start += len(block)
    if new_owner:  # one append instead of one per mule (each copied every account: quadratic at scale)
        owners = np.array(new_owner, dtype=np.int64)
        pop.accounts.append(
            iban=np.concatenate(new_iban),
            owner=owners,
            bank=pop.bank[owners],
            product=np.full(len(owners), "current", dtype=object),
            opened_ts=np.array(new_opened, dtype=np.int64),
            daily_limit=np.full(len(owners), 5000.0),
        )
    return MuleAssignment(account=account, person=person)


def _weighted_pick(rng: np.random.Generator, w: np.ndarray) -> int:
    """One index drawn with probability proportional to ``w``: the draw ``rng.choice(len(w), p=w / w.sum())``
    makes (cumulative sum, one uniform, binary search; same value, same stream use) without its O(n) checks."""
    cdf = (w / w.sum()).cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def cash_out(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    case_id: np.ndarray,
    mule_acct: np.ndarray,
    ts_in: np.ndarray,
    amount: np.ndarray,
) -> np.ndarray:
    """The mule moves the money on; returns the time each money-out becomes irreversible.

    Visible cash-out (signal[type]["cash_out"]["bank"]): ≥ forward_share forwarded within hours to a
    crypto exchange or ATM. Otherwise the mule spends it slowly in ordinary-looking payments.
    """
    mc = ctx.config.mules
    n = len(case_id)
    fast = ctx.shows(rng, fraud_type, "cash_out", "bank", n)
    delay = np.where(
        fast, np.exp(rng.normal(np.log(mc.forward_hours), 0.6, n)) * HOUR, rng.uniform(2 * DAY, 8 * DAY, n)
    ).astype(np.int64)
    ts_out = ts_in + np.maximum(delay, 300)
    to_crypto = rng.random(n) < 0.6
    pop = ctx.pop
    crypto = pop.crypto_accounts[rng.integers(0, len(pop.crypto_accounts), n)]
    org = pop.org_accounts[rng.integers(0, len(pop.org_accounts), n)]
    to = np.where(fast, np.where(to_crypto, crypto, -1), org)
    kind = np.where(fast, np.where(to_crypto, "crypto", "atm"), "transfer").astype(object)
    # the same amount models as everyone's: notes at the ATM, the shared transfer model otherwise
    forwarded = amount * mc.forward_share
    out_amount = np.where(kind == "atm", cash_amount(rng, forwarded), transfer_amount(rng, forwarded))
    ctx.ledger.add(
        "transfers",
        case_id=case_id,
        phase="cash_out",
        ts=ts_out,
        from_acct=mule_acct,
        to_acct=to,
        amount=out_amount,
        kind=kind,
        channel=np.where(kind == "atm", "atm", "app").astype(object),
        is_instant=fast,
        name_check=np.where(kind == "transfer", "match", "none").astype(object),
        known_payee=np.zeros(n, bool),
    )
    return ts_out


def losses(ctx: FraudContext, rng: np.random.Generator, fraud_type: str, n: int) -> np.ndarray:
    fc = ctx.config.fraud[fraud_type]
    return np.round(np.exp(rng.normal(np.log(fc.loss_median_eur), fc.loss_sigma, n)), 2)


def record_cases(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    *,
    case_id: np.ndarray,
    variant: np.ndarray,
    crew: np.ndarray,
    victim: np.ndarray,
    phases: dict[str, np.ndarray],
    out_case: np.ndarray,
    out_ts: np.ndarray,
    out_amount: np.ndarray,
    out_cashout: np.ndarray,
    parties: dict[str, np.ndarray],
) -> None:
    """Store truth: the case with its phase times, its money-outs, report, and who took part.

    `parties` holds per-case arrays (-1 = none): ``victim`` (person), ``victim_kinds`` (partner kinds
    where the victim takes part, e.g. "bank+telco"), ``mule_acct`` (account row), ``burner`` (raw phone),
    ``fake_user`` (marketplace account row). The view builder maps them to partner entities.
    """
    fc = ctx.config.fraud[fraud_type]
    n = len(case_id)
    t_loss = np.full(n, -1, dtype=np.int64)
    loss = np.zeros(n)
    if len(out_case):
        order = np.argsort(out_case, kind="stable")
        idx = np.searchsorted(case_id, out_case[order])
        t_first = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(t_first, idx, out_ts[order])
        t_loss = np.where(t_first == np.iinfo(np.int64).max, -1, t_first)
        np.add.at(loss, idx, out_amount[order])
    reported = (rng.random(n) < fc.report_probability) & (t_loss >= 0)
    delay = np.exp(rng.normal(np.log(fc.report_delay_hours), 0.7, n)) * HOUR
    report_ts = np.where(reported, t_loss + delay.astype(np.int64), -1)
    ctx.cases.append(
        {
            "case_id": case_id,
            "fraud_type": np.full(n, fraud_type, dtype=object),
            "variant": variant,
            "crew_id": crew.astype(np.int64),
            "victim": victim,
            **{f"ts_{k}": v for k, v in phases.items()},
            "t_loss": t_loss,
            "loss_eur": np.round(loss, 2),
            "reported": reported,
            "report_ts": report_ts,
        }
    )
    ctx.money_outs.append({"case_id": out_case, "ts": out_ts, "amount_eur": out_amount, "cashout_ts": out_cashout})
    ctx.case_parties.append({"case_id": case_id, **parties})


def bank_of(ctx: FraudContext, acct: np.ndarray) -> np.ndarray:
    return np.where(acct >= 0, ctx.pop.accounts.bank[np.maximum(acct, 0)], OTHER)


def pay_mule(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    *,
    case_id: np.ndarray,
    victim: np.ndarray,
    ts: np.ndarray,
    amount: np.ndarray,
    mule_acct: np.ndarray,
    device: np.ndarray | None = None,
    remote_access: np.ndarray | None = None,
    from_acct: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The victim's transfer to the mule (one per case) and the mule's cash-out.

    `amount` is the wanted sum; what is sent goes through the shared transfer model, capped by the daily
    limit. Name-check mismatch is the bank's money-transfer trace; returns (amount actually sent, cash-out ts).
    """
    from synthetic.behaviour import payment  # behaviour imports nothing from fraud; keep the edge one-way

    pop = ctx.pop
    n = len(case_id)
    src = pop.current_acct[victim] if from_acct is None else from_acct
    mismatch = ctx.shows(rng, fraud_type, "money_transfer", "bank", n)
    name_check = np.where(mismatch, "mismatch", np.where(rng.random(n) < 0.5, "close", "match")).astype(object)
    if from_acct is None:
        amount = payment(
            rng,
            pop,
            victim,
            ts,
            mule_acct,
            amount,
            ctx.ledger,
            instant_p=0.9,
            name_check=name_check,
            case_id=case_id,
            phase="money_transfer",
            device=device,
            remote_access=remote_access,
        )
    else:
        amount = transfer_amount(rng, amount, pop.accounts.daily_limit[src])
        ctx.ledger.add(
            "transfers",
            case_id=case_id,
            phase="money_transfer",
            ts=ts,
            from_acct=src,
            to_acct=mule_acct,
            amount=amount,
            kind=np.full(n, "transfer", dtype=object),
            channel=np.full(n, "web", dtype=object),
            is_instant=rng.random(n) < 0.5,
            name_check=name_check,
            known_payee=np.zeros(n, bool),
        )
    return amount, cash_out(ctx, rng, fraud_type, case_id, mule_acct, ts, amount)


def fake_market_users(
    ctx: FraudContext,
    rng: np.random.Generator,
    fraud_type: str,
    *,
    crew: np.ndarray,
    market: np.ndarray,
    t_first: np.ndarray,
    visible: np.ndarray,
    payout_acct: np.ndarray,
    burner: np.ndarray,
) -> np.ndarray:
    """Crew accounts at a marketplace. Visible preparation: created days before use on a shared crew device.

    Otherwise an aged (bought or taken-over) account on a fresh device — the look of an ordinary user.
    """
    n = len(crew)
    created = np.where(visible, t_first - rng.integers(6 * HOUR, 6 * DAY, n), -rng.integers(60 * DAY, 900 * DAY, n))
    device = np.where(visible, crew_device(ctx, rng, crew), rng.integers(1 << 42, 1 << 43, n))
    return ctx.market_accounts.append(
        raw=ctx.ids.take(n),
        owner=np.full(n, -1),
        market=market,
        created_ts=created,
        phone=np.where(rng.random(n) < 0.7, burner, -1),
        email=ctx.ids.take(n),
        payout_acct=payout_acct,
        device=device,
    )
