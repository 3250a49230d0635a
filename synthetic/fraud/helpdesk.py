"""Bank-helpdesk fraud (spoofing): a 'bank employee' calls and talks the victim into a 'safe account'.

Journey and traces (world.md §3):
- preparation: prepaid SIMs activated on one crew handset (telco); a mule opens a fresh account (bank)
- contact: inbound call showing the victim's bank's number, entering from a foreign trunk (telco),
  long duration. After a caller-ID barrier, adapted crews call from a domestic burner instead
- convincing: login with a remote-access tool during the call (bank); savings → current move
- money transfer: 1–3 instant transfers to a new payee near the limit, name-check mismatch (bank)
- cash-out: the mule forwards ≥ 80 % within hours to crypto / ATM (bank)
"""

from __future__ import annotations

import numpy as np

from synthetic.behaviour import own_transfer, payment
from synthetic.fraud.common import (
    FraudContext,
    activate_burners,
    assign_mules,
    cash_out,
    contact_times,
    crew_burner,
    form_crews,
    losses,
    n_cases,
    pick_victims,
    record_cases,
)
from synthetic.population import DAY

TYPE = "helpdesk"
SPOOFED, DOMESTIC = "spoofed_bank_id", "domestic_burner"


def case_variants(ctx: FraudContext, crew: np.ndarray, t_contact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variant per case after barriers; and whether the case still happens (a barrier can stop it)."""
    adapt_ts = np.asarray(ctx.crews.adapt_ts)[crew]
    adapted = np.asarray(ctx.crews.adapted_variant, dtype=object)[crew]
    base = np.asarray(ctx.crews.variant, dtype=object)[crew]
    variant = np.where((adapt_ts >= 0) & (t_contact >= adapt_ts), adapted, base)
    happens = np.ones(len(crew), bool)
    for b in ctx.config.barriers:
        if b.fraud_type == TYPE and b.removes == "caller_id_spoofing":
            happens &= ~((variant == SPOOFED) & (t_contact >= b.day * DAY))
    return variant, happens


def inject(ctx: FraudContext) -> None:
    rng = ctx.rng(TYPE)
    pop = ctx.pop
    n = n_cases(ctx, TYPE)
    if n == 0:
        return
    victim = pick_victims(ctx, rng, TYPE, n, eligible=pop.savings > 1500)
    n = len(victim)
    crew = form_crews(ctx, rng, TYPE, SPOOFED, n, adapted_variant=DOMESTIC)
    t_contact = contact_times(ctx, rng, n, lead_days=7)
    # the call goes to the victim's current number: never before it was activated
    t_contact = np.maximum(t_contact, pop.phone_since[victim] + rng.integers(DAY, 6 * DAY, n))
    variant, happens = case_variants(ctx, crew, t_contact)
    happens &= t_contact < ctx.horizon - 3 * DAY
    order = np.argsort(t_contact, kind="stable")[happens[np.argsort(t_contact, kind="stable")]]
    victim, crew, t_contact, variant = victim[order], crew[order], t_contact[order], variant[order]
    n = len(victim)
    case_id = ctx.new_case_ids(n)
    burner = crew_burner(ctx, rng, crew)

    # preparation
    activate_burners(ctx, rng, TYPE, case_id, burner, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "telco", n))
    mules = assign_mules(ctx, rng, TYPE, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "bank", n))
    t_prep = t_contact - rng.integers(1 * DAY, 6 * DAY, n)

    # contact: the call
    bank_no = pop.bank_numbers[np.where(pop.bank[victim] >= 0, pop.bank[victim], len(pop.bank_numbers) - 1)]
    spoofed = variant == SPOOFED
    foreign_trunk = spoofed & ctx.shows(rng, TYPE, "contact", "telco", n)
    # First money-out 45–150 min after the call starts (median ≈ 1.6 h: "call → money gone in 1–2 hours");
    # the 'bank employee' stays on the line until the transfers are done.
    first_offset = rng.integers(45 * 60, 150 * 60, n)
    duration = first_offset + rng.integers(10 * 60, 35 * 60, n)
    ctx.ledger.add(
        "calls",
        case_id=case_id,
        phase="contact",
        ts=t_contact,
        from_phone=burner,
        to_phone=pop.phone[victim],
        presented=np.where(spoofed, bank_no, burner),
        intl=foreign_trunk,
        kind=np.full(n, "call", dtype=object),
        duration=duration,
    )

    # convincing: remote-access login, savings → current
    t_conv = t_contact + rng.integers(5 * 60, 20 * 60, n)
    rat = ctx.shows(rng, TYPE, "convincing", "bank", n)
    # what the victim is talked into moving; the own transfer and the payments each go through the shared
    # amount model on their own (rounding the payments from the rounded own transfer would make them rounder)
    loss_total = np.minimum(losses(ctx, rng, TYPE, n), np.maximum(pop.savings[victim], 500))
    own_transfer(rng, pop, victim, t_conv + 120, loss_total, ctx.ledger, case_id=case_id, phase="convincing")

    # money transfer: 1–3 instant transfers to the mule, each capped by the daily limit
    k = rng.integers(1, 4, n)
    idx = np.repeat(np.arange(n), k)
    step = np.concatenate([np.arange(kk) for kk in k])
    ts_out = t_contact[idx] + first_offset[idx] + step * rng.integers(120, 600, len(idx))
    mismatch = ctx.shows(rng, TYPE, "money_transfer", "bank", n)[idx]
    amount = payment(
        rng,
        pop,
        victim[idx],
        ts_out,
        mules.account[idx],
        loss_total[idx] / k[idx],
        ctx.ledger,
        instant_p=1.0,
        name_check=np.where(mismatch, "mismatch", "close").astype(object),
        case_id=case_id[idx],
        phase="money_transfer",
        device=pop.device[victim[idx]],
        remote_access=rat[idx],
    )
    cashout_ts = cash_out(ctx, rng, TYPE, case_id[idx], mules.account[idx], ts_out, amount)

    first_out = np.minimum.reduceat(ts_out, np.r_[0, np.cumsum(k)[:-1]])
    record_cases(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        variant=variant,
        crew=crew,
        victim=victim,
        phases={
            "orientation": t_prep - rng.integers(1 * DAY, 10 * DAY, n),
            "preparation": t_prep,
            "contact": t_contact,
            "convincing": t_conv,
            "money_transfer": first_out,
            "cash_out": np.minimum.reduceat(cashout_ts, np.r_[0, np.cumsum(k)[:-1]]),
        },
        out_case=case_id[idx],
        out_ts=ts_out,
        out_amount=amount,
        out_cashout=cashout_ts,
        parties={
            "victim": victim,
            "victim_kinds": np.full(n, "bank+telco", dtype=object),
            "mule_acct": mules.account,
            "burner": burner,
            "fake_user": np.full(n, -1),
        },
    )
