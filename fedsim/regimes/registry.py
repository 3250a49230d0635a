"""The regime registry: name → regime. The experiment spec, grid expansion and leakage register read it.

Built-in regimes are registered by :mod:`fedsim.regimes`; a study (or a test) adds its own with
:func:`register_regime` without editing fedsim — the new name is then valid in experiment files.
"""

from __future__ import annotations

from typing import TypeVar

from fedsim.errors import FedsimError
from fedsim.regimes.base import Regime

_REGISTRY: dict[str, Regime] = {}
R = TypeVar("R", bound=type[Regime])


def register_regime(regime: Regime | type[Regime], *, replace: bool = False) -> Regime:
    """Add a regime (an instance, or a class with a no-argument constructor); returns the instance.

    A name already registered is an error unless ``replace``; names follow the experiment files' slug
    rule (lowercase letters, digits, '_' and '-')."""
    instance = regime() if isinstance(regime, type) else regime
    name = getattr(instance, "name", None)
    if not isinstance(name, str) or not name or not all(c.islower() or c.isdigit() or c in "_-" for c in name):
        raise FedsimError(f"regime name = {name!r}: allowed: lowercase letters, digits, '_' and '-'")
    if name in _REGISTRY and not replace:
        raise FedsimError(f"regime name = {name!r}: already registered; pass replace=True to override it")
    _REGISTRY[name] = instance
    return instance


def regime(cls: R) -> R:
    """Class decorator: register the regime class under its ``name``."""
    register_regime(cls)
    return cls


def unregister_regime(name: str) -> None:
    """Remove a regime (tests that register a throwaway one clean up with this)."""
    _REGISTRY.pop(name, None)


def registered_regimes() -> dict[str, Regime]:
    """Every registered regime, name → instance, in registration order."""
    return dict(_REGISTRY)


def regime_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get_regime(name: str) -> Regime:
    if name not in _REGISTRY:
        raise FedsimError(f"regime = {name!r}: not a registered regime; allowed: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
