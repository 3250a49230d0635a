"""Recompute ε from a run's logged DP ledger with an independent accountant (Google's dp-accounting).

A run logs, per trained model (suffix ``.<name>``), the metrics ``dp_epsilon``, ``dp_delta``, ``dp_sigma``
(noise multiplier σ), ``dp_sample_rate`` (Poisson rate q) and ``dp_steps`` (optimizer steps over all rounds),
and the param ``dp_accountant`` (run-level, or ``dp_accountant.<name>`` per model). Every fedsim model trains
with one σ and one q for its whole schedule, so its mechanism is the Poisson-subsampled Gaussian composed
``steps`` times (Abadi et al. 2016, "Deep learning with differential privacy", CCS; Mironov, Talwar & Zhang
2019, "Rényi differential privacy of the sampled Gaussian mechanism"). Its ε at the logged δ is recomputed
with dp-accounting's PLD accountant (privacy loss distributions: Koskela, Jälkö & Honkela 2020; Doroshenko
et al. 2022) for a ``prv`` run, or its RDP accountant for an ``rdp`` run, on the event
``SelfComposed(PoissonSampled(q, Gaussian(σ)), steps)``.

Use: ``check_ledgers(metrics, params)`` → one :class:`Recomputed` per model (raises if none is logged);
compare ``relative_difference`` with a tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("epsilon", "delta", "sigma", "sample_rate", "steps")
"""The ``dp_<field>`` metrics a ledger must carry for ε to be recomputed."""


@dataclass(frozen=True)
class LoggedLedger:
    """One model's logged ledger: ε at δ, σ, q, steps and the accountant that produced ε."""

    name: str
    epsilon: float
    delta: float
    sigma: float
    sample_rate: float
    steps: int
    accountant: str


@dataclass(frozen=True)
class Recomputed:
    """A logged ε next to the one dp-accounting computes from the same ledger."""

    ledger: LoggedLedger
    recomputed_epsilon: float
    reference: str

    @property
    def relative_difference(self) -> float:
        """|logged − recomputed| / recomputed."""
        return abs(self.ledger.epsilon - self.recomputed_epsilon) / self.recomputed_epsilon


def logged_ledgers(metrics: Mapping[str, float], params: Mapping[str, Any]) -> list[LoggedLedger]:
    """Every model's ledger in a run's metrics (``dp_<field>[.<name>]``) and params (``dp_accountant``).

    Raises AssertionError naming the missing field if a model logs ε but not the rest of its ledger.
    """
    names = sorted(k[len("dp_epsilon") :].lstrip(".") for k in metrics if k.split(".", 1)[0] == "dp_epsilon")
    out = []
    for name in names:
        suffix = f".{name}" if name else ""
        missing = [f for f in FIELDS if f"dp_{f}{suffix}" not in metrics]
        assert not missing, f"model {name!r} logs ε but not {missing}: ε cannot be recomputed"
        accountant = params.get(f"dp_accountant{suffix}", params.get("dp_accountant"))
        assert accountant in ("prv", "rdp"), f"model {name!r}: no dp_accountant param ({accountant!r})"
        out.append(
            LoggedLedger(
                name=name,
                epsilon=float(metrics[f"dp_epsilon{suffix}"]),
                delta=float(metrics[f"dp_delta{suffix}"]),
                sigma=float(metrics[f"dp_sigma{suffix}"]),
                sample_rate=float(metrics[f"dp_sample_rate{suffix}"]),
                steps=int(round(float(metrics[f"dp_steps{suffix}"]))),
                accountant=str(accountant),
            )
        )
    return out


def recompute_epsilon(ledger: LoggedLedger) -> Recomputed:
    """ε of the ledger's mechanism at its δ, from dp-accounting (PLD for ``prv``, RDP for ``rdp``)."""
    import dp_accounting

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(ledger.sample_rate, dp_accounting.GaussianDpEvent(ledger.sigma)),
        ledger.steps,
    )
    accountant: Any
    if ledger.accountant == "rdp":
        accountant, reference = dp_accounting.rdp.RdpAccountant(), "dp_accounting.rdp.RdpAccountant"
    else:
        accountant, reference = dp_accounting.pld.PLDAccountant(), "dp_accounting.pld.PLDAccountant"
    accountant.compose(event)
    return Recomputed(ledger, float(accountant.get_epsilon(ledger.delta)), reference)


def check_ledgers(metrics: Mapping[str, float], params: Mapping[str, Any]) -> list[Recomputed]:
    """Recompute every logged ledger of a run; AssertionError if the run logs none or one is incomplete."""
    ledgers = logged_ledgers(metrics, params)
    assert ledgers, f"no dp_epsilon metric among {sorted(metrics)[:20]}"
    for ledger in ledgers:
        assert ledger.steps > 0 and 0 < ledger.sample_rate <= 1 and ledger.sigma > 0, ledger
        assert 0 < ledger.delta < 1 and math.isfinite(ledger.epsilon) and ledger.epsilon > 0, ledger
    return [recompute_epsilon(ledger) for ledger in ledgers]
