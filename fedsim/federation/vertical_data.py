"""Transition shim: moved to :mod:`fedsim.federation.vertical.data` (kept until fedsim.regimes imports the new path)."""

from fedsim.federation.vertical.data import HolderData, PartyData, Plan, out_dir, write_bundle

__all__ = ["HolderData", "PartyData", "Plan", "out_dir", "write_bundle"]
