"""WhatsApp 'hi mum' fraud: a new number poses as a child and asks a parent to pay a bill urgently.

- preparation: a fresh prepaid number (telco); a mule account (bank)
- contact: the new number sprays messages to many parents' numbers within the hour (telco)
- money transfer: a first-time payee, €1–3k, minutes after the contact (bank)
- cash-out: forwarded within hours (bank)
"""

from __future__ import annotations

import numpy as np

from synthetic.fraud.common import (
    FraudContext,
    activate_burners,
    assign_mules,
    crew_burner,
    draw_cases,
    losses,
    pay_mule,
    record_cases,
)
from synthetic.population import DAY

TYPE = "whatsapp"


def inject(ctx: FraudContext) -> None:
    rng = ctx.rng(TYPE)
    pop = ctx.pop
    cases = draw_cases(
        ctx,
        rng,
        TYPE,
        eligible=pop.age >= 45,
        variant="new_number",
        lead_days=6,
        exists_since=pop.phone_since,
    )
    if cases is None:
        return
    victim, crew, t_contact, case_id, n = cases.victim, cases.crew, cases.t_contact, cases.case_id, cases.n
    burner = crew_burner(ctx, rng, crew)
    activate_burners(ctx, rng, TYPE, case_id, burner, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "telco", n))
    mules = assign_mules(ctx, rng, TYPE, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "bank", n))
    # contact: the message to the victim, and (visible) a spray to other parents around it
    ctx.ledger.add(
        "calls",
        case_id=case_id,
        phase="contact",
        ts=t_contact,
        from_phone=burner,
        to_phone=pop.phone[victim],
        presented=burner,
        intl=np.zeros(n, bool),
        kind=np.full(n, "sms", dtype=object),
        duration=np.zeros(n, np.int64),
    )
    spray = ctx.shows(rng, TYPE, "contact", "telco", n)
    k = np.where(spray, rng.integers(15, 40, n), 0)
    idx = np.repeat(np.arange(n), k)
    parents = np.flatnonzero(pop.age >= 45)
    target = parents[rng.integers(0, len(parents), len(idx))]
    ctx.ledger.add(
        "calls",
        case_id=case_id[idx],
        phase="contact",
        ts=t_contact[idx] + rng.integers(-3600, 3600, len(idx)),
        from_phone=burner[idx],
        to_phone=pop.phone[target],
        presented=burner[idx],
        intl=np.zeros(len(idx), bool),
        kind=np.full(len(idx), "sms", dtype=object),
        duration=np.zeros(len(idx), np.int64),
    )
    t_pay = t_contact + rng.integers(4 * 60, 40 * 60, n)
    # A request above the victim's transfer limit is paid in parts ("one more bill"), minutes apart, at most
    # three; one capped transfer would cut the loss distribution's tail (mean ≈ €3k) at the limit.
    asked = losses(ctx, rng, TYPE, n)
    k = np.clip(np.ceil(asked / (pop.accounts.daily_limit[pop.current_acct[victim]] * 0.98)), 1, 3).astype(np.int64)
    first = np.cumsum(k) - k
    idx = np.repeat(np.arange(n), k)
    step = np.arange(len(idx)) - first[idx]
    ts_out = t_pay[idx] + step * rng.integers(10 * 60, 45 * 60, len(idx))
    sent, cashout_ts = pay_mule(
        ctx,
        rng,
        TYPE,
        case_id=case_id[idx],
        victim=victim[idx],
        ts=ts_out,
        amount=asked[idx] / k[idx],
        mule_acct=mules.account[idx],
    )
    record_cases(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        variant=np.full(n, "new_number", dtype=object),
        crew=crew,
        victim=victim,
        phases={
            "orientation": t_contact - rng.integers(3 * DAY, 10 * DAY, n),
            "preparation": t_contact - rng.integers(DAY, 3 * DAY, n),
            "contact": t_contact,
            "convincing": t_contact + 60,
            "money_transfer": t_pay,
            "cash_out": np.minimum.reduceat(cashout_ts, first),
        },
        out_case=case_id[idx],
        out_ts=ts_out,
        out_amount=sent,
        out_cashout=cashout_ts,
        parties={
            "victim": victim,
            "victim_kinds": np.full(n, "bank+telco", dtype=object),
            "mule_acct": mules.account,
            "burner": burner,
            "fake_user": np.full(n, -1),
        },
    )
