"""Differential privacy for split learning: label DP at the label holder, DP-SGD on each party's bottom model.

No Flower here; pure numpy/torch used by :mod:`.label_holder` and :mod:`.party`.

**Label DP by randomized response (the label holder).** Before training, the holder replaces each
training row's 0/1 label by a randomized response: kept with probability ``e^ε / (1 + e^ε)``, flipped
otherwise, once and for all (Warner 1965; Ghazi, Golowich, Kumar, Manurangsi & Zhang 2021, "Deep
learning with label differential privacy", NeurIPS, RR for K = 2 classes, without their prior step).
For two labels the likelihood ratio of any output is at most ``(1 − p) / p = e^ε`` with ``p`` the flip
probability, so the noisy label is ε-label-DP for that row; the loss, the gradients the parties get
back and the models are post-processing of the noisy labels, so everything that leaves the holder is
ε-label-DP per training row. Unit: one decision row; an entity with ``r`` training rows is covered
at ``r·ε`` (group privacy). A test that tells the two values of one row's label apart, everything else
fixed, has ``TPR ≤ e^ε·FPR`` and ``1 − FPR ≤ e^ε·(1 − TPR)``, so its ROC-AUC is at most
``e^ε / (1 + e^ε)`` (:func:`label_auc_bound`). That is a bound on what the output adds about the label,
**not** on an attack that ranks rows across people: the gradient also carries the holder's own features
through the top model's output (its watchlist flag from earlier reports, its fraud signals), which predict
the label and are not covered by label DP. The attacks' AUC across rows can therefore exceed the line
(measured: the telco's norm attack at ε = 1 on the small world, 0.85 against 0.73).

**DP-SGD on a party's bottom model.** In split learning the party's parameter gradient is
``Σ_i (∂ℓ_i/∂e_i)·∂e_i/∂θ`` — the label holder sends the cut-layer gradients ``∂ℓ_i/∂e_i`` and the party
back-propagates them through its own bottom model. The party computes it per example
(``torch.func.vmap``), sums the rows of each of its entities, clips each entity's gradient to L2 norm
``C``, adds ``N(0, σ²C²)`` to the sum and divides by the expected number of entities per batch (Abadi
et al. 2016, "Deep learning with differential privacy", CCS; user-level as McMahan et al. 2018). Batches
are drawn by Poisson sampling of the holder's entities (rate ``q``), so a party entity linked to ``k``
holder entities is in a batch with probability ``1 − (1 − q)^k``; the party accounts with the largest
such rate of its matched entities. The gradient of the all-missing row (the embedding every unmatched
row shares) is left out under DP: removing a party entity turns its rows into unmatched ones, and that
row's summed gradient would move by an unclipped amount. What this protects, precisely: the sequence of **bottom-model
parameters** (hence any later use of the trained bottom model by someone who does not see the
embeddings) is (ε, δ)-DP with respect to one party entity's features. It does **not** cover the
embeddings themselves: the label holder (and the coordinator) receive ``e_i = bottom(x_i)`` for every
matched row in every batch and at scoring, a deterministic function of the features with no noise,
and the holder's top model is trained on them. Those channels stay in the leakage register.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


# ------------------------------------------------------------------------------------------------
# Label DP: randomized response
# ------------------------------------------------------------------------------------------------
def flip_probability(epsilon: float) -> float:
    """p = 1 / (1 + e^ε): the flip probability of binary randomized response at ε (ln((1 − p)/p) = ε)."""
    if not (epsilon > 0 and not math.isnan(epsilon)):
        raise ValueError(f"epsilon: {epsilon!r}; allowed: > 0 (inf = labels kept)")
    return 0.0 if math.isinf(epsilon) else 1.0 / (1.0 + math.exp(epsilon))


def label_epsilon(flip: float) -> float:
    """ε = ln((1 − p) / p) of randomized response with flip probability p (∞ at p = 0)."""
    if not 0 <= flip < 0.5:
        raise ValueError(f"flip: {flip!r}; allowed: 0 <= p < 0.5")
    return math.inf if flip == 0 else math.log((1 - flip) / flip)


def label_auc_bound(epsilon: float) -> float:
    """Largest ROC-AUC of any test of one row's label under ε-label-DP: e^ε / (1 + e^ε) (1 at ε = ∞)."""
    return 1.0 if math.isinf(epsilon) else 1.0 - flip_probability(epsilon)


def randomized_response(y: np.ndarray, *, epsilon: float, seed: int) -> np.ndarray:
    """Each 0/1 label flipped independently with probability :func:`flip_probability` (seeded, drawn once)."""
    y = np.asarray(y).astype(np.int8)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y: allowed: 0/1 labels")
    flip = np.random.default_rng(np.random.SeedSequence([int(seed), 0x4C44])).random(len(y)) < flip_probability(epsilon)
    return np.where(flip, 1 - y, y).astype(np.int8)


# ------------------------------------------------------------------------------------------------
# Poisson sampling of entities (the label holder draws the batches)
# ------------------------------------------------------------------------------------------------
def sample_rate(n_units: int, batch_size: int) -> float:
    """q = 1 / ceil(n / batch_size), as :func:`fedsim.privacy.make_private_fit` (Opacus' DPDataLoader)."""
    if n_units < 1 or batch_size < 1:
        raise ValueError(f"n_units {n_units}, batch_size {batch_size}; allowed: both >= 1")
    return 1.0 / math.ceil(n_units / batch_size)


def steps_per_epoch(q: float) -> int:
    """int(1/q) Poisson steps per epoch (Opacus' UniformWithReplacementSampler)."""
    return int(1 / q)


def poisson_batches(n_units: int, *, q: float, steps: int, seed: int) -> list[np.ndarray]:
    """``steps`` batches; each unit is in each batch independently with probability q (Poisson sampling)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5053]))
    return [np.flatnonzero(rng.random(n_units) < q) for _ in range(steps)]


# ------------------------------------------------------------------------------------------------
# DP-SGD step on a bottom model from the cut-layer gradients
# ------------------------------------------------------------------------------------------------
def per_example_gradients(model: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> dict[str, torch.Tensor]:
    """∂(e_i · g_i)/∂θ for every row i: name → (n, *param.shape), with e_i = model(x_i), g_i = upstream[i]."""
    from torch.func import functional_call, grad, vmap

    params = {k: v.detach() for k, v in model.named_parameters()}

    def row(p: dict[str, torch.Tensor], xi: torch.Tensor, gi: torch.Tensor) -> torch.Tensor:
        return (functional_call(model, p, (xi.unsqueeze(0),))[0] * gi).sum()

    out: dict[str, torch.Tensor] = vmap(grad(row), in_dims=(None, 0, 0))(params, x, upstream)
    return out


def clipped_noisy_gradient(
    model: nn.Module,
    x: torch.Tensor,
    upstream: torch.Tensor,
    groups: np.ndarray,
    *,
    max_grad_norm: float,
    noise_multiplier: float,
    expected_groups: float,
    generator: torch.Generator,
) -> tuple[dict[str, torch.Tensor], int]:
    """The DP-SGD gradient of the bottom model: per-group (entity) sums clipped to C, summed, plus
    N(0, σ²C²) per coordinate, divided by the expected number of groups per batch.

    Returns (name → gradient, number of groups whose norm exceeded C)."""
    if len(groups) == 0:  # an empty Poisson batch still releases the noise
        per_row = {k: torch.zeros((0, *v.shape), dtype=v.dtype) for k, v in model.named_parameters()}
    else:
        per_row = per_example_gradients(model, x, upstream)
    codes, inverse = np.unique(np.asarray(groups), return_inverse=True)
    index = torch.from_numpy(inverse.astype(np.int64))
    per_group = {
        k: torch.zeros((len(codes), *g.shape[1:]), dtype=g.dtype).index_add_(0, index, g) for k, g in per_row.items()
    }
    norms = torch.sqrt(torch.stack([(g.flatten(start_dim=1) ** 2).sum(dim=1) for g in per_group.values()]).sum(0))
    factor = torch.clamp(max_grad_norm / (norms + 1e-12), max=1.0)
    out = {}
    for k, g in per_group.items():
        total = (g * factor.reshape(-1, *([1] * (g.dim() - 1)))).sum(dim=0)
        noise = torch.normal(0.0, noise_multiplier * max_grad_norm, size=total.shape, generator=generator)
        out[k] = (total + noise.to(total.dtype)) / max(expected_groups, 1e-12)
    return out, int((norms > max_grad_norm).sum())
