"""Marketplace purchase fraud: goods paid by bank transfer are never delivered.

- preparation: a new seller account on a crew-shared device, a cheap listing with reused photos
  (marketplace); a mule account opened for the payouts (bank)
- contact / convincing: the chat asks to pay by bank transfer / outside the platform (marketplace)
- money transfer: the victim pays the mule's IBAN — no shipping label, no delivery (bank, marketplace)
- cash-out: many small incoming transfers from strangers, forwarded quickly (bank)
One fake seller account (and its mule) serves several victims.
"""

from __future__ import annotations

import numpy as np

from synthetic.behaviour import CATEGORIES, CATEGORY_MEDIAN
from synthetic.fraud.common import (
    HOUR,
    FraudContext,
    assign_mules,
    crew_burner,
    draw_cases,
    fake_market_users,
    losses,
    pay_mule,
    record_cases,
)
from synthetic.population import DAY

TYPE = "purchase"


def inject(ctx: FraudContext) -> None:
    rng = ctx.rng(TYPE)
    pop = ctx.pop
    cases = draw_cases(
        ctx,
        rng,
        TYPE,
        eligible=pop.market_user >= 0,
        variant="fake_seller",
        lead_days=5,
        exists_since=np.maximum(pop.market_created, pop.phone_since),
    )
    if cases is None:
        return
    victim, crew, t_contact, case_id, n = cases.victim, cases.crew, cases.t_contact, cases.case_id, cases.n
    prep_bank = ctx.shows(rng, TYPE, "preparation", "bank", n)
    mules = assign_mules(ctx, rng, TYPE, crew, t_contact, prep_bank)
    # one fake seller per (mule account, marketplace)
    market = pop.market[victim]
    key = mules.account * 8 + (market + 2)
    uniq, first_idx, inv = np.unique(key, return_index=True, return_inverse=True)
    prep_mkt = ctx.shows(rng, TYPE, "preparation", "marketplace", len(uniq))
    burner = crew_burner(ctx, rng, crew)
    seller_rows = fake_market_users(
        ctx,
        rng,
        TYPE,
        crew=crew[first_idx],
        market=market[first_idx],
        t_first=t_contact[first_idx],
        visible=prep_mkt,
        payout_acct=mules.account[first_idx],
        burner=burner[first_idx],
    )
    seller = seller_rows[inv]
    # the cheap listing each fake seller puts up
    cat = rng.integers(0, len(CATEGORIES), len(uniq))
    ratio = np.where(prep_mkt, rng.uniform(0.35, 0.65, len(uniq)), np.exp(rng.normal(-0.1, 0.25, len(uniq))))
    # The listing goes up hours to days before the first buyer writes, after the account exists. (Anchoring it
    # on the creation time put every aged account's listing on day 0 — a timing artefact the leak screen found.)
    t_list = t_contact[first_idx] - rng.integers(2 * HOUR, 3 * DAY, len(uniq))
    t_list = np.maximum(t_list, ctx.market_accounts.created_ts[seller_rows] + HOUR)
    t_list = np.minimum(t_list, t_contact[first_idx] - HOUR)
    ctx.ledger.add(
        "listings",
        case_id=case_id[first_idx],
        phase="preparation",
        ts=t_list,
        user=seller_rows,
        category=np.asarray(CATEGORIES, dtype=object)[cat],
        price=np.round(CATEGORY_MEDIAN[cat] * ratio, 2),
        ratio=ratio,
        photos_reused=prep_mkt & (rng.random(len(uniq)) < 0.8),
    )
    # contact and convincing in the chat
    asks = ctx.shows(rng, TYPE, "convincing", "marketplace", n)
    quick = ctx.shows(rng, TYPE, "contact", "marketplace", n)
    ctx.ledger.add(
        "messages",
        case_id=case_id,
        phase="contact",
        ts=t_contact,
        from_user=victim,
        to_user=seller,
        contains_phone=np.zeros(n, bool),
        contains_iban=np.zeros(n, bool),
        contains_url=np.zeros(n, bool),
        off_platform=np.zeros(n, bool),
    )
    t_conv = t_contact + np.where(quick, rng.integers(60, 900, n), rng.integers(HOUR, 8 * HOUR, n))
    ctx.ledger.add(
        "messages",
        case_id=case_id,
        phase="convincing",
        ts=t_conv,
        from_user=seller,
        to_user=victim,
        contains_phone=asks & (rng.random(n) < 0.5),
        contains_iban=asks,
        contains_url=np.zeros(n, bool),
        off_platform=asks,
    )
    # money transfer: order paid by bank transfer, never shipped
    t_pay = t_conv + rng.integers(5 * 60, 4 * HOUR, n)
    amount = losses(ctx, rng, TYPE, n)
    ctx.ledger.add(
        "orders",
        case_id=case_id,
        phase="money_transfer",
        ts=t_pay - 60,
        buyer=victim,
        seller=seller,
        amount=amount,
        method=np.full(n, "bank_transfer", dtype=object),
        label_ts=np.full(n, -1),
        delivered_ts=np.full(n, -1),
    )
    sent, cashout_ts = pay_mule(
        ctx, rng, TYPE, case_id=case_id, victim=victim, ts=t_pay, amount=amount, mule_acct=mules.account
    )
    record_cases(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        variant=np.full(n, "fake_seller", dtype=object),
        crew=crew,
        victim=victim,
        phases={
            "orientation": t_list[inv] - DAY,
            "preparation": t_list[inv],
            "contact": t_contact,
            "convincing": t_conv,
            "money_transfer": t_pay,
            "cash_out": cashout_ts,
        },
        out_case=case_id,
        out_ts=t_pay,
        out_amount=sent,
        out_cashout=cashout_ts,
        parties={
            "victim": victim,
            "victim_kinds": np.full(n, "bank+marketplace", dtype=object),
            "mule_acct": mules.account,
            "burner": np.full(n, -1),
            "fake_user": seller,
        },
    )
