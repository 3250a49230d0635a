"""Data-sharing regimes: one contract (`base.Regime`), one module each."""

from fedsim.regimes.base import Regime, RegimeResult, RunContext, TrainingSettings
from fedsim.regimes.horizontal import Horizontal
from fedsim.regimes.hybrid import Hybrid
from fedsim.regimes.pooled import Pooled, PooledOracle
from fedsim.regimes.siloed import Siloed, StatusQuo
from fedsim.regimes.vertical import Vertical
from fedsim.regimes.watchlist import Watchlist

REGIMES: dict[str, Regime] = {
    r.name: r
    for r in (StatusQuo(), Siloed(), Watchlist(), Pooled(), PooledOracle(), Horizontal(), Vertical(), Hybrid())
}


def get_regime(name: str) -> Regime:
    from fedsim.errors import FedsimError

    if name not in REGIMES:
        raise FedsimError(f"regime = {name!r}: not available in this version; available: {', '.join(REGIMES)}")
    return REGIMES[name]


__all__ = ["REGIMES", "Regime", "RegimeResult", "RunContext", "TrainingSettings", "get_regime"]
