"""Transition shim: moved to :mod:`fedsim.federation.vertical.node` (kept until fedsim.regimes imports the new path)."""

from fedsim.federation.vertical.node import read_scores

__all__ = ["read_scores"]
