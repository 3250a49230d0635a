"""The one weighted aggregation every fedsim strategy uses (no Flower, no torch).

FedAvg's server step (McMahan, Moore, Ramage, Hampson & Agüera y Arcas 2017, "Communication-efficient
learning of deep networks from decentralized data", AISTATS, Algorithm 1):

    θ = Σ_k (n_k / n) · θ_k,   n = Σ_k n_k

tensor by tensor, with n_k the number of training examples of client k. Horizontal FL (the in-process
engine), the vertical coordinator (hybrid: the label holders' models) and each feature party (hybrid:
its per-holder bottom models) all call :func:`weighted_average`, so the three agree to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def weighted_average(updates: Sequence[Sequence[np.ndarray]], weights: Sequence[float]) -> list[np.ndarray]:
    """(Σ_k w_k · θ_k) / Σ_k w_k for each tensor position; accumulated in float64, returned in the input dtype.

    The order of operations (weighted sum first, one division last) is fixed: it is the one the vertical
    coordinator and parties always used, so hybrid runs keep their numbers to the bit.

    Args:
        updates: one list of arrays per client (same length, shapes and order for every client).
        weights: w_k ≥ 0 per client (FedAvg: its training examples n_k); at least one positive.

    Returns one array per position, of the first client's dtype at that position (float32 weights stay
    float32: the model they are loaded into has that precision anyway).
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(updates) == 0 or w.shape != (len(updates),):
        raise ValueError(
            f"updates: {len(updates)} clients, weights: {w.shape[0] if w.ndim else 'scalar'}; allowed: one "
            "weight per client, at least one client"
        )
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights: {w.tolist()}; allowed: finite values >= 0 with a positive sum")
    sizes = {len(u) for u in updates}
    if len(sizes) != 1:
        raise ValueError(f"updates: {sorted(sizes)} arrays per client; allowed: the same number for every client")
    out = []
    for i in range(len(updates[0])):
        first = np.asarray(updates[0][i])
        shapes = {np.shape(u[i]) for u in updates}
        if len(shapes) != 1:
            raise ValueError(f"updates[*][{i}]: shapes {sorted(shapes)}; allowed: one shape for every client")
        total = np.zeros(first.shape, dtype=np.float64)
        for u, wk in zip(updates, w, strict=True):
            total += wk * np.asarray(u[i], dtype=np.float64)
        out.append((total / w.sum()).astype(first.dtype, copy=False))
    return out


def weighted_average_named(models: Sequence[dict[str, np.ndarray]], weights: Sequence[float]) -> dict[str, np.ndarray]:
    """:func:`weighted_average` of models given as name → array (every model must have the same names)."""
    if len(models) == 0:
        raise ValueError("models: none; allowed: at least one model")
    keys = sorted(models[0])
    for i, m in enumerate(models):
        if set(m) != set(keys):
            raise ValueError(f"models[{i}]: keys {sorted(set(m) ^ set(keys))} differ; allowed: the same arrays in each")
    mean = weighted_average([[m[k] for k in keys] for m in models], weights)
    return dict(zip(keys, mean, strict=True))
