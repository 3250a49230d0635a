"""One amount model per money channel, shared by legitimate behaviour and fraud.

The *size* of a payment may differ between fraud and legitimate activity (a helpdesk victim moves
thousands, a shopper tens); that is a designed signal. Its *shape* must not: the cents, whether it is
a multiple of 10/50/100, its last digits. Before this module, legitimate ATM withdrawals were always
multiples of €10 while mule cash-outs almost never were (roundness alone reached AUC 0.994), and
fraud transfers capped at "98% of the limit" were round while legitimate ones never were. Every
euro amount written to the ledger now passes through one of the two functions below, whoever
moves the money.

* Cash (ATM) comes in notes: the amount is the wanted sum rounded down to whole €10, and with
  probability ``NICE_CASH_SHARE`` to whole €50 (people like €50/€100 withdrawals; so do mules).
* Transfers are paid to the cent, except that a share ``ROUND_TRANSFER_SHARE`` of all transfers is a
  round sum (whole €10). When the sender's limit binds, the amount lands somewhere in the last 10%
  below the limit instead of on a fixed fraction of it, so a capped payment is no rounder than any
  other.
"""

from __future__ import annotations

import numpy as np

ROUND_TRANSFER_SHARE = 0.12
"""Share of transfers (legitimate or not) sent as a whole multiple of €10: 'send me €50'."""
NICE_CASH_SHARE = 0.5
"""Share of cash withdrawals (legitimate or not) in whole €50 rather than whole €10."""
CAP_SLACK = 0.1
"""A payment that hits its limit lands uniformly in [limit × (1 − CAP_SLACK), limit]."""


def transfer_amount(rng: np.random.Generator, wanted: np.ndarray, cap: np.ndarray | None = None) -> np.ndarray:
    """Euro amount actually transferred for a wanted sum, capped by `cap` (e.g. the daily limit).

    Draws exactly two uniforms per amount whatever the inputs, so callers' later draws do not shift
    with the data.
    """
    wanted = np.asarray(wanted, dtype=float)
    n = len(wanted)
    slack = rng.uniform(1.0 - CAP_SLACK, 1.0, n)
    is_round = rng.random(n) < ROUND_TRANSFER_SHARE
    x = wanted if cap is None else np.minimum(wanted, np.asarray(cap, dtype=float) * slack)
    tens = np.maximum(np.round(x / 10.0), 1.0) * 10.0
    if cap is not None:  # a rounded amount must still respect the cap
        tens = np.where(tens > cap, np.maximum(np.floor(np.asarray(cap, dtype=float) / 10.0), 1.0) * 10.0, tens)
    cents = np.maximum(np.round(x, 2), 0.01)
    return np.where(is_round, tens, cents)


def cash_amount(rng: np.random.Generator, wanted: np.ndarray) -> np.ndarray:
    """Euro amount taken from an ATM for a wanted sum: notes only (whole €10, or whole €50 when preferred)."""
    wanted = np.asarray(wanted, dtype=float)
    nice = rng.random(len(wanted)) < NICE_CASH_SHARE
    step = np.where(nice, 50.0, 10.0)
    return np.maximum(np.floor(wanted / step), 1.0) * step
