"""Marketplace sale fraud: a 'buyer' sends the seller a fake payment link and empties the account.

- preparation: a new buyer account (marketplace), a fresh prepaid SIM (telco), a mule account (bank)
- contact: the buyer asks for the seller's phone number (marketplace) and texts a link from the new
  number (telco)
- convincing: the victim 'verifies' on a phishing page — the crew logs in from its own device (bank)
- money transfer / cash-out: an instant transfer to the mule, forwarded within hours (bank)
"""

from __future__ import annotations

import numpy as np

from synthetic.behaviour import CATEGORIES, CATEGORY_MEDIAN
from synthetic.fraud.common import (
    HOUR,
    FraudContext,
    activate_burners,
    assign_mules,
    crew_burner,
    crew_device,
    draw_cases,
    fake_market_users,
    losses,
    pay_mule,
    record_cases,
)
from synthetic.population import DAY

TYPE = "sale"


def inject(ctx: FraudContext) -> None:
    rng = ctx.rng(TYPE)
    pop = ctx.pop
    cases = draw_cases(
        ctx,
        rng,
        TYPE,
        eligible=pop.market_user >= 0,
        variant="payment_link",
        lead_days=6,
        exists_since=np.maximum(pop.market_created, pop.phone_since),
    )
    if cases is None:
        return
    victim, crew, t_contact, case_id, n = cases.victim, cases.crew, cases.t_contact, cases.case_id, cases.n
    burner = crew_burner(ctx, rng, crew)
    activate_burners(ctx, rng, TYPE, case_id, burner, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "telco", n))
    mules = assign_mules(ctx, rng, TYPE, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "bank", n))
    buyer = fake_market_users(
        ctx,
        rng,
        TYPE,
        crew=crew,
        market=pop.market[victim],
        t_first=t_contact,
        visible=ctx.shows(rng, TYPE, "preparation", "marketplace", n),
        payout_acct=np.full(n, -1),
        burner=burner,
    )
    # the victim's own (honest) listing
    cat = rng.integers(0, len(CATEGORIES), n)
    ratio = np.exp(rng.normal(0.0, 0.25, n))
    t_list = t_contact - rng.integers(2 * HOUR, 5 * DAY, n)
    ctx.ledger.add(
        "listings",
        case_id=case_id,
        phase="orientation",
        ts=t_list,
        user=victim,
        category=np.asarray(CATEGORIES, dtype=object)[cat],
        price=np.round(CATEGORY_MEDIAN[cat] * ratio, 2),
        ratio=ratio,
        photos_reused=np.zeros(n, bool),
    )
    # contact: chat asks for the phone number; then a text with a link from the new number
    ask = ctx.shows(rng, TYPE, "contact", "marketplace", n)
    ctx.ledger.add(
        "messages",
        case_id=case_id,
        phase="contact",
        ts=t_contact,
        from_user=buyer,
        to_user=victim,
        contains_phone=np.zeros(n, bool),
        contains_iban=np.zeros(n, bool),
        contains_url=~ask,
        off_platform=ask,
    )
    sms = ctx.shows(rng, TYPE, "contact", "telco", n)  # otherwise the link arrives in the chat app (no record)
    t_sms = t_contact + rng.integers(120, 1800, n)
    ctx.ledger.add(
        "calls",
        case_id=case_id[sms],
        phase="contact",
        ts=t_sms[sms],
        from_phone=burner[sms],
        to_phone=pop.phone[victim[sms]],
        presented=burner[sms],
        intl=np.zeros(int(sms.sum()), bool),
        kind=np.full(int(sms.sum()), "sms", dtype=object),
        duration=np.zeros(int(sms.sum()), np.int64),
    )
    # convincing: the crew logs in with the phished credentials, from its own device
    crew_login = ctx.shows(rng, TYPE, "convincing", "bank", n)
    device = np.where(crew_login, crew_device(ctx, rng, crew), pop.device[victim])
    t_pay = t_sms + rng.integers(5 * 60, 40 * 60, n)
    sent, cashout_ts = pay_mule(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        victim=victim,
        ts=t_pay,
        amount=losses(ctx, rng, TYPE, n),
        mule_acct=mules.account,
        device=device,
    )
    t_prep = t_contact - rng.integers(DAY, 4 * DAY, n)
    record_cases(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        variant=np.full(n, "payment_link", dtype=object),
        crew=crew,
        victim=victim,
        phases={
            # the crew may prepare before it spots this victim's listing: the journey starts at the earlier
            "orientation": np.minimum(t_list, t_prep),
            "preparation": t_prep,
            "contact": t_contact,
            "convincing": t_pay - 300,
            "money_transfer": t_pay,
            "cash_out": cashout_ts,
        },
        out_case=case_id,
        out_ts=t_pay,
        out_amount=sent,
        out_cashout=cashout_ts,
        parties={
            "victim": victim,
            "victim_kinds": np.full(n, "bank+telco+marketplace", dtype=object),
            "mule_acct": mules.account,
            "burner": burner,
            "fake_user": buyer,
        },
    )
