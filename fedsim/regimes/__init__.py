"""Data-sharing regimes: one contract (:class:`base.Regime`), one module each, one registry.

A regime owns its rules (traits, admitted coalitions, refused settings, leakage-register rows, run);
:mod:`fedsim.regimes.registry` maps names to regimes, and the experiment spec, grid expansion and
leakage register read it. Add a regime by subclassing :class:`Regime` and calling :func:`register_regime`.
"""

from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext, TrainingSettings
from fedsim.regimes.horizontal import Horizontal
from fedsim.regimes.hybrid import Hybrid
from fedsim.regimes.mo_alerts import MoAlerts
from fedsim.regimes.pooled import Pooled, PooledOracle
from fedsim.regimes.registry import (
    get_regime,
    regime,
    regime_names,
    register_regime,
    registered_regimes,
    unregister_regime,
)
from fedsim.regimes.reports import Reports
from fedsim.regimes.rules import Rules
from fedsim.regimes.siloed import Siloed, StatusQuo
from fedsim.regimes.vertical import Vertical
from fedsim.regimes.watchlist import Watchlist

for _builtin in (
    StatusQuo,
    Siloed,
    Watchlist,
    Reports,
    Pooled,
    PooledOracle,
    Horizontal,
    Vertical,
    Hybrid,
    Rules,
    MoAlerts,
):
    register_regime(_builtin, replace=True)

BUILTIN_REGIMES: tuple[str, ...] = regime_names()
"""The regimes fedsim ships, in their canonical order. ``status_quo`` = every partner siloed, side by side."""

__all__ = [
    "BUILTIN_REGIMES",
    "LeakageRow",
    "Regime",
    "RegimeResult",
    "RunContext",
    "TrainingSettings",
    "get_regime",
    "regime",
    "regime_names",
    "register_regime",
    "registered_regimes",
    "unregister_regime",
]
