"""Invoice fraud: a business pays a known supplier's invoice to a changed IBAN (a mule).

Only the bank sees it: a large transfer to a new payee whose name does not match the IBAN.
The preparation (a compromised mailbox) happens outside every partner.
"""

from __future__ import annotations

import numpy as np

from synthetic.fraud.common import (
    FraudContext,
    assign_mules,
    contact_times,
    form_crews,
    losses,
    n_cases,
    pay_mule,
    pick_victims,
    record_cases,
)
from synthetic.population import DAY

TYPE = "invoice"


def inject(ctx: FraudContext) -> None:
    rng = ctx.rng(TYPE)
    pop = ctx.pop
    n = n_cases(ctx, TYPE)
    victim = pick_victims(ctx, rng, TYPE, n, eligible=pop.business_acct >= 0)
    n = len(victim)
    if n == 0:
        return
    crew = form_crews(ctx, rng, TYPE, "changed_iban", n, adapted_variant="changed_iban")
    t_contact = contact_times(ctx, rng, n, lead_days=8)
    order = np.argsort(t_contact, kind="stable")
    victim, crew, t_contact = victim[order], crew[order], t_contact[order]
    case_id = ctx.new_case_ids(n)
    mules = assign_mules(ctx, rng, TYPE, crew, t_contact, ctx.shows(rng, TYPE, "preparation", "bank", n))
    t_pay = t_contact + rng.integers(2 * 3600, 3 * DAY, n)
    sent, cashout_ts = pay_mule(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        victim=victim,
        ts=t_pay,
        amount=losses(ctx, rng, TYPE, n),
        mule_acct=mules.account,
        from_acct=pop.business_acct[victim],
    )
    record_cases(
        ctx,
        rng,
        TYPE,
        case_id=case_id,
        variant=np.full(n, "changed_iban", dtype=object),
        crew=crew,
        victim=victim,
        phases={
            "orientation": t_contact - 20 * DAY,
            "preparation": t_contact - 7 * DAY,
            "contact": t_contact,
            "convincing": t_contact + 3600,
            "money_transfer": t_pay,
            "cash_out": cashout_ts,
        },
        out_case=case_id,
        out_ts=t_pay,
        out_amount=sent,
        out_cashout=cashout_ts,
        parties={
            "victim": victim,
            "victim_kinds": np.full(n, "bank", dtype=object),
            "mule_acct": mules.account,
            "burner": np.full(n, -1),
            "fake_user": np.full(n, -1),
        },
    )
