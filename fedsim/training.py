"""The one local training loop every regime shares (plain torch; runs unchanged under Opacus DP-SGD).

Siloed, pooled, watchlist, horizontal and vertical FL and their DP variants all call :func:`fit`, so
differences between regimes come from the data they see, not from the optimiser code.

Under differential privacy the caller builds a fresh model, optimizer and loader, wraps them once
with ``opacus.PrivacyEngine().make_private(...)`` (default ``loss_reduction="mean"``, Poisson
sampling) and passes the wrapped objects in; :func:`fit` never wraps anything itself and imports no
Opacus code. What makes the loop DP-safe:

* the loss is a per-row mean over the *actual* batch, ``Σ wᵢ·ℓᵢ / B``, so each row's gradient
  depends on that row only (what Opacus's per-sample clipping assumes); weights are normalised
  over the whole training set in :func:`make_loader`, never per batch;
* empty Poisson batches still run forward, backward and ``optimizer.step()``: DP-SGD must add
  noise (and the accountant must count a step) whether or not a batch happens to be empty;
* the FedProx proximal gradient is data-independent, so it is added *after* clipping and noise
  (a pre-step hook on the inner optimizer), not to the loss, whose extra gradient Opacus would
  silently drop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

logger = logging.getLogger("fedsim.training")

OPACUS_PREFIX = "_module."
"""Opacus' GradSampleModule stores the wrapped model under ``_module``; its state-dict keys carry this."""


class TrainConfig(BaseModel):
    """Hyper-parameters of one local training run. Frozen; validated once when built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(5, ge=1, le=10_000, description="passes over the local training set (count)")
    batch_size: int = Field(
        256, ge=1, le=10_000_000, description="rows per batch (count); under Opacus the *expected* Poisson batch"
    )
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0, description="optimizer step size (per step)")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, description="L2 penalty coefficient (torch convention)")
    optimizer: Literal["adam", "sgd"] = Field("adam", description="'adam' (Kingma & Ba 2015) or plain 'sgd'")
    proximal_mu: float = Field(
        0.0, ge=0.0, le=1e4, description="FedProx μ (Li et al. 2020); 0 = plain local training / FedAvg"
    )
    class_weight: Literal["balanced"] | None = Field(
        "balanced", description="'balanced': positives weighted by Σ w(negatives) / Σ w(positives); None: 1"
    )
    seed: int = Field(0, ge=0, description="seeds batch shuffling (torch.Generator); init has its own seed")
    patience: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="early stopping: epochs without a validation-loss improvement before stopping (count); "
        "used only when fit gets a validation set, and then `epochs` is the maximum budget. None: no early stop",
    )
    min_delta: float = Field(
        1e-4, ge=0.0, le=1.0, description="smallest drop of the validation loss that counts as an improvement"
    )


DEFAULT_EARLY_STOPPING = TrainConfig(epochs=200, batch_size=512, learning_rate=0.01, patience=5)
"""The converged default for non-private training (issue 9): up to 200 epochs, stop after 5 without a
validation-loss improvement, restore the best epoch's weights. Measured on the known-answer world in
tests/test_convergence.py (see there for the numbers)."""

REFIT_AFTER_EARLY_STOPPING = True
"""Default of ``fit_early_stopping(refit=...)`` as the regimes use it: retrain on all rows for the best epoch count."""

VALIDATION_FRACTION = 0.2
"""Default share of the training rows (the latest in time) held out for early stopping."""

MIN_VAL_POSITIVES = 20
"""Positives the validation slice should hold (at most half of all); the slice grows back in time to reach them."""


@dataclass(frozen=True)
class FitReport:
    """What one call of :func:`fit` did.

    ``final_loss`` and ``epoch_losses`` are the weighted data loss (BCE with ``pos_weight``,
    FedProx term excluded) averaged over the rows seen in each epoch, as measured during training.
    """

    epochs: int
    steps: int
    final_loss: float
    epoch_losses: tuple[float, ...]
    n_examples: int
    pos_weight: float
    seconds: float
    validation_losses: tuple[float, ...] = ()
    best_epoch: int | None = None
    converged: bool | None = None
    n_validation: int = 0
    refit: bool = False

    def as_metrics(self) -> dict[str, float]:
        """Run metrics: ``train_epochs`` (epochs run) always; when early stopping was asked for also
        ``converged`` (1 = stopped by patience; 0 = hit the epoch budget or had no validation slice: did not
        converge); with a validation set ``best_epoch``, ``val_loss`` (the best validation loss, whose weights
        the model keeps, or whose epoch count the refit on all rows used) and ``val_rows``; ``refit`` (1/0)
        says whether the final model was retrained on all rows for ``best_epoch`` epochs."""
        out = {"train_epochs": float(self.epochs)}
        if self.converged is not None:
            out["converged"] = float(self.converged)
        if self.best_epoch is not None:
            out["best_epoch"] = float(self.best_epoch)
            out["val_loss"] = self.validation_losses[self.best_epoch - 1]
            out["val_rows"] = float(self.n_validation)
            out["refit"] = float(self.refit)
        return out


@dataclass(frozen=True)
class Validation:
    """Held-out training rows for early stopping: features ``(m, d)``, 0/1 labels ``(m,)``, weights ``(m,)``.

    Never test rows: build it with :func:`time_validation_split` from the end of the training window.
    """

    X: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def _as_features(X: object) -> torch.Tensor:
    arr = np.asarray(X, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"X: array of shape {arr.shape}; allowed: 2-d (rows, features)")
    if not np.isfinite(arr).all():
        raise ValueError("X: contains NaN or ±inf; allowed: finite numbers (run Standardizer first)")
    return torch.from_numpy(arr)


def _as_labels(y: object, n_rows: int) -> torch.Tensor:
    arr = np.asarray(y, dtype=np.float32)
    if arr.shape != (n_rows,):
        raise ValueError(f"y: shape {arr.shape}; allowed: ({n_rows},), one label per row of X")
    if not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError(f"y: values {np.unique(arr)[:5]}; allowed: 0 or 1")
    return torch.from_numpy(arr)


def _as_weights(sample_weight: object, n_rows: int) -> torch.Tensor:
    """Validate weights and rescale them to mean 1 over the whole set (keeps loss scale and lr comparable)."""
    arr = np.asarray(sample_weight, dtype=np.float64)
    if arr.shape != (n_rows,):
        raise ValueError(f"sample_weight: shape {arr.shape}; allowed: ({n_rows},), one weight per row")
    if not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise ValueError(
            "sample_weight: has negative, non-finite or only zero values; "
            "allowed: finite weights >= 0 with a positive sum"
        )
    return torch.from_numpy((arr / arr.mean()).astype(np.float32))


def make_loader(
    X: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int, sample_weight: np.ndarray | None = None
) -> DataLoader:
    """Shuffling DataLoader over ``TensorDataset(X, y)`` or ``(X, y, w)``; the order is fixed by ``seed``.

    Args:
        X: features ``(n, d)``, finite (standardise first).
        y: 0/1 labels ``(n,)``.
        batch_size: rows per batch (count). Pass this loader to Opacus ``make_private`` to get
            Poisson sampling with rate ``1 / len(loader)``.
        seed: seeds the loader's own ``torch.Generator`` (the global RNG is not used).
        sample_weight: optional ``(n,)`` non-negative weights, rescaled here to mean 1 over the set.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: {batch_size!r}; allowed: an integer >= 1")
    features = _as_features(X)
    tensors = [features, _as_labels(y, features.shape[0])]
    if features.shape[0] == 0:
        raise ValueError("X: 0 rows; allowed: at least one training row")
    if sample_weight is not None:
        tensors.append(_as_weights(sample_weight, features.shape[0]))
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True, generator=generator)


class ShuffledBatches:
    """A seeded, reshuffling batch iterator over a ``TensorDataset`` that indexes whole batches at once.

    Same sampling as ``DataLoader(shuffle=True)`` (a fresh permutation every epoch, fixed by the seed)
    without per-row fetching and collation, which dominates the cost of small models. Exposes
    ``dataset`` like a DataLoader, so the rest of the loop (and Opacus, which takes a real loader from
    :func:`make_loader`) sees the same thing.
    """

    def __init__(self, dataset: TensorDataset, *, batch_size: int, seed: int) -> None:
        self.dataset, self.batch_size = dataset, batch_size
        self._generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.randperm(len(self.dataset), generator=self._generator)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield tuple(t[idx] for t in self.dataset.tensors)


def loader_dataset(data_loader: DataLoader | ShuffledBatches) -> TensorDataset:
    """The ``TensorDataset`` of ``(X, y)`` or ``(X, y, w)`` behind a loader built by :func:`make_loader`.

    ``DataLoader.dataset`` is typed as a plain ``Dataset``; this checks (rather than casts) that it is
    the tensor dataset the training loop reads the labels and weights from.
    """
    dataset = getattr(data_loader, "dataset", None)
    if not isinstance(dataset, TensorDataset) or len(dataset.tensors) not in (2, 3):
        raise ValueError(
            f"data_loader.dataset: {type(dataset).__name__}; allowed: a TensorDataset of "
            "(X, y) or (X, y, w), as built by make_loader (Opacus keeps it when wrapping)"
        )
    return dataset


def balanced_pos_weight(y: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """Weight of a positive row so both classes carry equal total weight: Σ w[y=0] / Σ w[y=1].

    Same class balance as scikit-learn's ``class_weight="balanced"`` (w_c = n / (2·n_c), King &
    Zeng 2001), expressed as the ``pos_weight`` of ``BCEWithLogitsLoss`` (negatives keep weight 1).
    """
    w = torch.ones_like(y) if weights is None else weights
    positive = float((w * y).sum())
    negative = float((w * (1 - y)).sum())
    if positive <= 0 or negative <= 0:
        raise ValueError(
            f"y: weighted positives {positive:g}, negatives {negative:g}; "
            "allowed: both classes present for class_weight='balanced'"
        )
    return negative / positive


# --------------------------------------------------------------------------------------------
# Weights exchange (plain and Opacus-wrapped models alike)
# --------------------------------------------------------------------------------------------
def weight_names(model: nn.Module) -> list[str]:
    """State-dict keys in :func:`get_weights` order, without Opacus' ``_module.`` prefix."""
    return [k.removeprefix(OPACUS_PREFIX) for k in model.state_dict()]


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Copies of every state-dict tensor as numpy arrays, in state-dict order (what FL exchanges)."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_weights(model: nn.Module, arrays: Sequence[np.ndarray]) -> None:
    """Load ``arrays`` (in :func:`get_weights` order) into ``model``, wrapped or not; shapes must match."""
    state = model.state_dict()
    if len(arrays) != len(state):
        raise ValueError(
            f"arrays: {len(arrays)} arrays; allowed: {len(state)} (one per entry of {weight_names(model)})"
        )
    new_state = {}
    for (key, current), array in zip(state.items(), arrays, strict=True):
        tensor = torch.as_tensor(np.asarray(array), dtype=current.dtype)
        if tensor.shape != current.shape:
            raise ValueError(
                f"arrays[{key.removeprefix(OPACUS_PREFIX)}]: shape {tuple(tensor.shape)}; "
                f"allowed: {tuple(current.shape)}"
            )
        new_state[key] = tensor
    model.load_state_dict(new_state, strict=True)


# --------------------------------------------------------------------------------------------
# FedProx
# --------------------------------------------------------------------------------------------
def _reference_tensors(
    model: nn.Module, reference_params: Sequence[np.ndarray] | None
) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """Pair each trainable parameter with its reference value (default: its value now)."""
    if reference_params is None:
        return [(p, p.detach().clone()) for p in model.parameters() if p.requires_grad]
    names = weight_names(model)
    if len(reference_params) != len(names):
        raise ValueError(
            f"reference_params: {len(reference_params)} arrays; allowed: {len(names)} in get_weights order ({names})"
        )
    by_name = dict(zip(names, reference_params, strict=True))
    pairs = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        ref = torch.as_tensor(np.asarray(by_name[name.removeprefix(OPACUS_PREFIX)]), dtype=p.dtype)
        if ref.shape != p.shape:
            raise ValueError(f"reference_params[{name}]: shape {tuple(ref.shape)}; allowed: {tuple(p.shape)}")
        pairs.append((p, ref))
    return pairs


def _add_proximal_gradient(pairs: list[tuple[torch.nn.Parameter, torch.Tensor]], mu: float) -> None:
    """Add ∇ of the FedProx term μ/2·‖w − w_ref‖², i.e. μ·(w − w_ref), to each parameter's gradient.

    FedProx: Li, Sahu, Zaheer, Sanjabi, Talwalkar & Smith 2020, "Federated Optimization in
    Heterogeneous Networks", MLSys, eq. (2). Called right before the inner optimizer's update,
    after Opacus has clipped and noised the data gradient (the term uses no data, so it costs no ε).
    """
    with torch.no_grad():
        for p, ref in pairs:
            prox = mu * (p - ref)
            if p.grad is None:
                p.grad = prox
            else:
                p.grad.add_(prox)


# --------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------
def time_validation_split(
    times: np.ndarray, y: np.ndarray, *, fraction: float = VALIDATION_FRACTION, min_positives: int = MIN_VAL_POSITIVES
) -> np.ndarray | None:
    """Boolean mask of the validation rows: the latest ``fraction`` of the training rows in time.

    Validation design of evaluation.md §3: never a random row split, never test rows. The cut is a
    time: every row at or after it is held out (rows sharing a timestamp stay together), so the
    validation slice is the end of the training window, about ``fraction`` of its rows. Reports arrive
    late, so the end of the window holds few labelled positives and a loss on one or two of them is noise
    (measured: 1–4 of 66–87 on the small realistic world): the cut moves back until the slice holds
    ``min(min_positives, half the positives)`` positives (at least one). None when no cut leaves both
    sides with a positive and a negative (too few reports to early-stop on; train a fixed budget).

    Args:
        times: ``(n,)`` decision time of each training row (any monotone clock, e.g. seconds).
        y: ``(n,)`` 0/1 labels of the same rows.
        fraction: target share of rows held out, in (0, 1).
        min_positives: positives the slice should hold (count); it grows back in time to reach them.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction: {fraction!r}; allowed: a share strictly between 0 and 1")
    ts = np.asarray(times, dtype=np.float64)
    labels = np.asarray(y)
    if ts.ndim != 1 or labels.shape != ts.shape or ts.size == 0:
        raise ValueError(f"times, y: shapes {ts.shape}, {labels.shape}; allowed: the same (n,) with n >= 1")
    if not np.isfinite(ts).all():
        raise ValueError("times: contains NaN or ±inf; allowed: finite decision times")
    cut = float(np.quantile(ts, 1.0 - fraction, method="higher"))
    positive_times = np.sort(ts[labels == 1])[::-1]  # latest first
    wanted = min(int(min_positives), positive_times.size // 2) if positive_times.size else 0
    wanted = max(wanted, 1) if positive_times.size else 0
    if wanted and (positive_times >= cut).sum() < wanted:
        cut = float(positive_times[wanted - 1])  # the wanted-th latest positive's time
    held = ts >= cut
    for side in (held, ~held):
        if not side.any() or np.unique(labels[side]).size < 2:
            return None
    return held


@torch.no_grad()
def validation_loss(model: nn.Module, validation: Validation, *, class_weight: Literal["balanced"] | None) -> float:
    """Weighted mean loss on held-out rows, weighted as in training: ``Σ wᵢ·ℓᵢ / Σ wᵢ``.

    ℓ is ``BCEWithLogitsLoss`` with the validation set's own :func:`balanced_pos_weight` (both classes
    carry half the weight, as they do in training) when ``class_weight == "balanced"``; the weights are
    rescaled to mean 1 like training weights. Runs in eval mode; the mode is restored.
    """
    features = _as_features(validation.X)
    labels = _as_labels(validation.y, features.shape[0])
    weights = None if validation.sample_weight is None else _as_weights(validation.sample_weight, features.shape[0])
    pos_weight = balanced_pos_weight(labels, weights) if class_weight == "balanced" else 1.0
    criterion = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.tensor(pos_weight))
    was_training = model.training
    model.eval()
    try:
        per_row = criterion(model(features).reshape(-1), labels)
    finally:
        model.train(was_training)
    if weights is not None:
        per_row = per_row * weights
    return float(per_row.mean())


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or SGD over the trainable parameters with ``config``'s learning rate and weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def _batch_loss(
    model: nn.Module, batch: Sequence[torch.Tensor], criterion: nn.Module
) -> tuple[torch.Tensor, float, int]:
    """Mean weighted loss over the actual rows of one batch (0 for an empty batch), its sum, its size."""
    xb, yb = batch[0], batch[1]
    per_row = criterion(model(xb).reshape(-1), yb)
    if len(batch) == 3:
        per_row = per_row * batch[2]
    total = per_row.sum()
    n_rows = int(yb.shape[0])
    return total / max(n_rows, 1), float(total.detach()), n_rows


def fit(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    config: TrainConfig,
    sample_weight: np.ndarray | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    data_loader: DataLoader | None = None,
    reference_params: Sequence[np.ndarray] | None = None,
    progress: Callable[[int, float], None] | None = None,
    validation: Validation | None = None,
) -> FitReport:
    """Train ``model`` in place on features ``X`` ``(n, d)`` and 0/1 labels ``y`` ``(n,)``; the shared loop.

    Loss: ``BCEWithLogitsLoss(pos_weight)`` per row, times the row's sample weight, averaged over the
    batch; ``pos_weight`` = :func:`balanced_pos_weight` when ``config.class_weight == "balanced"``.

    Args:
        model: maps ``(B, d)`` → ``(B,)`` logits; may be an Opacus ``GradSampleModule``.
        X, y: the training rows. If ``data_loader`` is given it must iterate over these same rows
            (only the row count is checked) and the class balance is read from its dataset.
        config: hyper-parameters; ``config.seed`` seeds the loader built here.
        sample_weight: ``(n,)`` weights, used when the loader is built here; with your own
            ``data_loader`` put them in it (``make_loader(..., sample_weight=...)``).
        optimizer: used as is (e.g. Opacus ``DPOptimizer``); default :func:`make_optimizer`.
        data_loader: used as is (e.g. Opacus' Poisson ``DPDataLoader``); default :func:`make_loader`.
        reference_params: FedProx anchor ``w_ref`` in :func:`get_weights` order; used only if
            ``config.proximal_mu > 0``; default: the model's weights at the start of this call
            (in FedProx the global model the client received).
        progress: called after each epoch with ``(epoch (1-based), epoch loss)``.
        validation: held-out rows (the end of the training window, :func:`time_validation_split`) for
            early stopping; requires ``config.patience``. After each epoch the :func:`validation_loss`
            is measured; training stops once it has not improved by ``config.min_delta`` for
            ``config.patience`` epochs (``converged``) or after ``config.epochs`` epochs (the budget:
            did not converge), and the best epoch's weights are restored (Prechelt 1998, "Early
            stopping — but when?", in Neural Networks: Tricks of the Trade, LNCS 1524). Not under DP:
            choosing the epoch on non-private validation loss leaks, and the accountant needs a fixed
            number of steps, so DP training keeps a fixed epoch budget (a DP optimizer with a
            validation set is refused).
    """
    started = time.perf_counter()
    if validation is not None and config.patience is None:
        raise ValueError("validation: given with config.patience None; allowed: set patience to early-stop")
    if validation is not None and hasattr(optimizer, "original_optimizer"):
        raise ValueError(
            "validation: given with a DP optimizer; allowed: a fixed epoch budget under DP "
            "(early stopping on non-private validation loss leaks and breaks the accountant's step count)"
        )
    features = _as_features(X)
    labels = _as_labels(y, features.shape[0])
    batches: DataLoader | ShuffledBatches
    if data_loader is None:
        loader = make_loader(
            features.numpy(),
            labels.numpy(),
            batch_size=config.batch_size,
            seed=config.seed,
            sample_weight=sample_weight,
        )
        batches = ShuffledBatches(loader_dataset(loader), batch_size=config.batch_size, seed=config.seed)
    elif sample_weight is not None:
        raise ValueError(
            "sample_weight: given together with data_loader; allowed: put the weights in the "
            "loader instead (make_loader(..., sample_weight=...))"
        )
    else:
        batches = data_loader
    tensors = loader_dataset(batches).tensors
    if tensors[1].shape[0] != labels.shape[0]:
        raise ValueError(f"data_loader: {tensors[1].shape[0]} rows; allowed: {labels.shape[0]} (rows of X)")
    pos_weight = 1.0
    if config.class_weight == "balanced":
        pos_weight = balanced_pos_weight(tensors[1], tensors[2] if len(tensors) == 3 else None)
    criterion = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.tensor(pos_weight))
    if optimizer is None:
        optimizer = make_optimizer(model, config)

    hook = None
    if config.proximal_mu > 0:
        pairs = _reference_tensors(model, reference_params)
        # An Opacus DPOptimizer overwrites .grad with the noised data gradient and then calls its
        # original optimizer; hook that one so the proximal gradient survives.
        inner = getattr(optimizer, "original_optimizer", optimizer)
        hook = inner.register_step_pre_hook(
            lambda _opt, _args, _kwargs: _add_proximal_gradient(pairs, config.proximal_mu)
        )

    model.train()
    steps, epoch_losses = 0, []
    stopper = _EarlyStopper(config) if validation is not None else None
    try:
        for epoch in range(1, config.epochs + 1):
            loss_sum, rows = 0.0, 0
            for batch in batches:
                optimizer.zero_grad(set_to_none=True)
                loss, batch_sum, n_rows = _batch_loss(model, batch, criterion)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {float(loss)} at epoch {epoch}, step {steps}; "
                        "lower config.learning_rate or check the features"
                    )
                loss.backward()
                optimizer.step()  # also on an empty Poisson batch: DP-SGD adds noise every step
                steps += 1
                loss_sum, rows = loss_sum + batch_sum, rows + n_rows
            epoch_losses.append(loss_sum / rows if rows else float("nan"))
            if progress is not None:
                progress(epoch, epoch_losses[-1])
            if stopper is not None and validation is not None:
                loss_now = validation_loss(model, validation, class_weight=config.class_weight)
                if not np.isfinite(loss_now):
                    raise FloatingPointError(f"validation loss is {loss_now} at epoch {epoch}; check the features")
                if stopper.stop(model, epoch, loss_now):
                    break
    finally:
        if hook is not None:
            hook.remove()
        optimizer.zero_grad(set_to_none=True)
    if stopper is not None:
        model.load_state_dict(stopper.best_state)
    return FitReport(
        epochs=len(epoch_losses),
        steps=steps,
        final_loss=epoch_losses[-1],
        epoch_losses=tuple(epoch_losses),
        n_examples=int(labels.shape[0]),
        pos_weight=pos_weight,
        seconds=time.perf_counter() - started,
        validation_losses=tuple(stopper.losses) if stopper is not None else (),
        best_epoch=stopper.best_epoch if stopper is not None else None,
        converged=stopper.converged if stopper is not None else None,
        n_validation=len(validation.y) if validation is not None else 0,
    )


class _EarlyStopper:
    """Patience bookkeeping: the best validation loss so far, its epoch and a copy of its weights."""

    def __init__(self, config: TrainConfig) -> None:
        self.patience = int(config.patience or 1)
        self.min_delta = config.min_delta
        self.losses: list[float] = []
        self.best_loss, self.best_epoch = float("inf"), 0
        self.best_state: dict[str, torch.Tensor] = {}
        self.converged = False

    def stop(self, model: nn.Module, epoch: int, loss: float) -> bool:
        """Record this epoch's validation loss; True once ``patience`` epochs passed without improvement."""
        self.losses.append(loss)
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - self.best_epoch >= self.patience:
            self.converged = True
        return self.converged


def fit_early_stopping(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    times: np.ndarray,
    config: TrainConfig = DEFAULT_EARLY_STOPPING,
    sample_weight: np.ndarray | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
    min_validation_positives: int = MIN_VAL_POSITIVES,
    refit: bool = False,
) -> FitReport:
    """Train to convergence: hold out the end of the training window in time and early-stop on it.

    Splits with :func:`time_validation_split` (``times``: ``(n,)`` decision time per row), trains on
    the earlier rows with :func:`fit` and its ``validation`` argument, and keeps the best epoch's weights.
    When no split leaves a positive on both sides, trains on all rows for ``config.epochs`` and
    reports ``converged=False`` (and logs why). Non-private only (see :func:`fit`).

    refit: then restart from the model's initial weights and train on *all* rows (validation slice
    included) for the best epoch count — the "retrain on all the data for the same number of epochs"
    variant of early stopping (Goodfellow, Bengio & Courville 2016, *Deep Learning*, §7.8, Algorithm 7.2).
    The validation slice is the most recent part of the window (and must reach back for enough late
    reports), so without a refit the model never learns from its freshest rows.
    """
    if config.patience is None:
        raise ValueError("config.patience: None; allowed: an integer >= 1 (e.g. DEFAULT_EARLY_STOPPING)")
    labels = np.asarray(y)
    held = time_validation_split(times, labels, fraction=validation_fraction, min_positives=min_validation_positives)
    if held is None:
        logger.warning(
            "no validation slice with both classes at the end of the training window; "
            "training a fixed %d epochs (recorded as not converged)",
            config.epochs,
        )
        report = fit(model, X, y, config=config.model_copy(update={"patience": None}), sample_weight=sample_weight)
        return replace(report, converged=False)
    features = np.asarray(X)
    weights = None if sample_weight is None else np.asarray(sample_weight)
    validation = Validation(features[held], labels[held], None if weights is None else weights[held])
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stopped = fit(
        model,
        features[~held],
        labels[~held],
        config=config,
        sample_weight=None if weights is None else weights[~held],
        validation=validation,
    )
    if not refit or stopped.best_epoch is None:
        return stopped
    model.load_state_dict(initial)
    budget = config.model_copy(update={"epochs": stopped.best_epoch, "patience": None})
    final = fit(model, features, labels, config=budget, sample_weight=weights)
    return replace(
        final,
        seconds=stopped.seconds + final.seconds,
        validation_losses=stopped.validation_losses,
        best_epoch=stopped.best_epoch,
        converged=stopped.converged,
        n_validation=stopped.n_validation,
        refit=True,
    )


FLAT_WINDOW = 5
"""Rounds per window of the federated flattening test (count): the last ``FLAT_WINDOW`` against the ones before."""

FLAT_TOLERANCE = 0.01
"""Largest relative change between the two windows' mean train loss that still counts as flat (1%)."""


def loss_flattened(
    losses: Sequence[float], *, window: int = FLAT_WINDOW, tolerance: float = FLAT_TOLERANCE
) -> bool | None:
    """Whether a per-round train loss curve has flattened: the convergence check of a federated run.

    A federated run has no validation slice to early-stop on (each partner holds its own rows), so its
    convergence is judged on the curve it has: flat when the mean loss of the last ``window`` rounds is
    within ``tolerance`` (relative) of the mean of the ``window`` rounds before,
    ``|mean(ℓ_last) − mean(ℓ_prev)| ≤ tolerance·mean(ℓ_prev)`` — the relative-improvement stopping test of
    numerical optimisation (e.g. Nocedal & Wright 2006, *Numerical Optimization*, §3), on window means
    because local SGD makes single rounds jitter by ~1% (measured on the demo world). Rounds whose loss is
    unknown (NaN: no partner replied, or secure aggregation hid it) are skipped. None when fewer than
    ``2·window`` known losses exist (cannot tell).
    """
    if window < 1 or not 0.0 < tolerance < 1.0:
        raise ValueError(f"window, tolerance: {window!r}, {tolerance!r}; allowed: window >= 1, 0 < tolerance < 1")
    known = [float(v) for v in losses if np.isfinite(v)]
    if len(known) < 2 * window:
        return None
    last, previous = float(np.mean(known[-window:])), float(np.mean(known[-2 * window : -window]))
    return abs(last - previous) <= tolerance * abs(previous)


@torch.no_grad()
def predict_scores(model: nn.Module, X: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """P(y = 1) per row, shape ``(n,)`` float64: sigmoid of the logits, in eval mode, without gradients.

    The model's train/eval mode is restored afterwards.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: {batch_size!r}; allowed: an integer >= 1")
    features = _as_features(X)
    was_training = model.training
    model.eval()
    try:
        chunks = [
            torch.sigmoid(model(features[i : i + batch_size]).reshape(-1))
            for i in range(0, features.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros(0, dtype=np.float64)
    return torch.cat(chunks).numpy().astype(np.float64)
