"""Invoice fraud: a business pays a known supplier's invoice to a changed IBAN (a mule).

Only the bank sees it: a large transfer to a new payee whose name does not match the IBAN.
The preparation (a compromised mailbox) happens outside every partner.
"""

from __future__ import annotations

import numpy as np

from synthetic.fraud.common import (
    FraudContext,
    assign_mules,
    draw_cases,
    losses,
    pay_mule,
    record_cases,
)
from synthetic.population import DAY

TYPE = "invoice"


def inject(ctx: FraudContext) -> None:
    rng = ctx.rng(TYPE)
    pop = ctx.pop
    cases = draw_cases(ctx, rng, TYPE, eligible=pop.business_acct >= 0, variant="changed_iban", lead_days=8)
    if cases is None:
        return
    victim, crew, t_contact, case_id, n = cases.victim, cases.crew, cases.t_contact, cases.case_id, cases.n
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
