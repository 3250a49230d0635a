"""Models every regime trains: torch networks, split-learning parts, input scaling and a tree baseline.

* :func:`make_model` — ``logistic`` (one linear layer → logit) and ``mlp`` (two hidden ReLU layers).
  Both output one **logit** per row, shape ``(n,)``; :func:`fedsim.training.predict_scores` turns it
  into a probability. No BatchNorm anywhere, so Opacus can compute per-sample gradients.
* :class:`BottomModel`, :class:`TopModel`, :class:`SplitNet` — split learning for vertical FL
  (Vepakomma et al. 2018, "Split learning for health", arXiv:1812.00564): each party's bottom model
  maps its own features to an embedding; the label holder's top model maps the concatenated
  embeddings to a logit. The same :class:`SplitNet` runs centrally (pooled regime) or is cut into
  ``bottoms[k]`` / ``top`` and spread over parties, so "pooled vs. vertical" compares one architecture.
* :class:`Standardizer` — z-scores with train statistics; missing values become 0 plus an indicator.
* :class:`GBTBaseline` — scikit-learn histogram gradient boosting, the strong non-private baseline.

Initialisation draws only from a ``torch.Generator`` seeded by the caller: no global RNG is touched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from fedsim.columns import uninformative_reasons

MODEL_NAMES: tuple[str, ...] = ("logistic", "mlp")


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------
def _init_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    """Re-draw a linear layer's parameters from ``generator``, with torch's own default scheme.

    Same distribution as ``nn.Linear.reset_parameters`` (He et al. 2015 uniform with a = √5, i.e.
    U(−1/√fan_in, 1/√fan_in) for weight and bias), but from an explicit generator so a seed fixes it.
    """
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


def _init_all_linear_(module: nn.Module, *, seed: int) -> None:
    """Initialise every ``nn.Linear`` in ``module`` (in registration order) from one seeded generator."""
    generator = torch.Generator().manual_seed(int(seed))
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            _init_linear_(layer, generator)


def _check_positive_int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{field}: {value!r}; allowed: an integer >= 1")
    return int(value)


# --------------------------------------------------------------------------------------------
# Single-block models
# --------------------------------------------------------------------------------------------
class LogitHead(nn.Module):
    """Wraps a network whose last layer has one output and drops that axis: ``(n, d) → (n,)`` logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def make_model(name: str, *, n_features: int, hidden: int = 32, seed: int) -> nn.Module:
    """Build a fresh, deterministically initialised model that maps ``(n, n_features)`` → ``(n,)`` logits.

    Args:
        name: ``"logistic"`` (one ``Linear`` → logit; ``hidden`` is ignored) or ``"mlp"``
            (Linear–ReLU–Linear–ReLU–Linear, both hidden layers ``hidden`` wide).
        n_features: input width (columns after :class:`Standardizer`, indicators included).
        hidden: hidden-layer width (units) for ``mlp``.
        seed: seeds the ``torch.Generator`` that draws the initial weights.

    Build a new model for every Opacus ``make_private`` call: Opacus must never wrap a module twice.
    """
    n_features = _check_positive_int("n_features", n_features)
    hidden = _check_positive_int("hidden", hidden)
    if name == "logistic":
        net: nn.Module = nn.Linear(n_features, 1)
    elif name == "mlp":
        net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
    else:
        raise ValueError(f"name: {name!r}; allowed: one of {MODEL_NAMES}")
    model = LogitHead(net)
    _init_all_linear_(model, seed=seed)
    return model


# --------------------------------------------------------------------------------------------
# Split learning (vertical FL) and its pooled twin
# --------------------------------------------------------------------------------------------
class BottomModel(nn.Module):
    """One party's part of a split network: ``(n, n_features)`` → ``(n, embedding_dim)`` embedding.

    A single Linear + ReLU: small on purpose, since each party may hold only a handful of features
    and the embedding is what leaves the party (fewer dimensions, less to leak).
    """

    def __init__(self, n_features: int, embedding_dim: int) -> None:
        super().__init__()
        self.n_features = _check_positive_int("n_features", n_features)
        self.embedding_dim = _check_positive_int("embedding_dim", embedding_dim)
        self.layer = nn.Linear(self.n_features, self.embedding_dim)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.layer(x))


class TopModel(nn.Module):
    """The label holder's part: concatenated embeddings ``(n, sum(embedding_dims))`` → ``(n,)`` logits.

    Linear–ReLU–Linear with ``hidden`` units. It takes one concatenated tensor (not a list) so Opacus
    can wrap it on its own when the label holder trains under DP.
    """

    def __init__(self, embedding_dims: Sequence[int], hidden: int) -> None:
        super().__init__()
        if len(embedding_dims) == 0:
            raise ValueError("embedding_dims: []; allowed: one positive width per party (at least one)")
        self.embedding_dims = [_check_positive_int("embedding_dims", d) for d in embedding_dims]
        self.hidden = _check_positive_int("hidden", hidden)
        self.net = nn.Sequential(nn.Linear(sum(self.embedding_dims), self.hidden), nn.ReLU(), nn.Linear(self.hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class SplitNet(nn.Module):
    """Bottoms side by side, then the top: the pooled twin of a split-learning network.

    ``forward(x)`` takes the pooled feature matrix ``(n, sum(n_features))`` whose columns are the
    parties' blocks in ``bottoms`` order, so the pooled regime can train it with the ordinary loop.
    Vertical FL uses ``bottoms[k]`` at party k and ``top`` at the label holder instead.
    """

    def __init__(self, bottoms: Sequence[BottomModel], top: TopModel) -> None:
        super().__init__()
        dims = [b.embedding_dim for b in bottoms]
        if dims != list(top.embedding_dims):
            raise ValueError(
                f"top.embedding_dims: {top.embedding_dims}; allowed: the bottoms' embedding widths in order, {dims}"
            )
        self.bottoms = nn.ModuleList(bottoms)
        self.top = top
        self.feature_blocks = [b.n_features for b in bottoms]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(n, sum(feature_blocks))`` → joined embeddings ``(n, sum(embedding_dims))``."""
        if x.shape[-1] != sum(self.feature_blocks):
            raise ValueError(
                f"x: {x.shape[-1]} columns; allowed: {sum(self.feature_blocks)} (party blocks {self.feature_blocks})"
            )
        parts = torch.split(x, self.feature_blocks, dim=-1)
        return torch.cat([bottom(part) for bottom, part in zip(self.bottoms, parts, strict=True)], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.top(self.embed(x))


def make_split_net(feature_blocks: Sequence[int], *, embedding_dim: int = 8, hidden: int = 32, seed: int) -> SplitNet:
    """Build a seeded :class:`SplitNet` with one bottom per party.

    Args:
        feature_blocks: number of feature columns each party holds, in party order.
        embedding_dim: width of every bottom model's embedding (units).
        hidden: width of the top model's hidden layer (units).
        seed: seeds the generator that draws all weights (bottoms first, then top), so the split and
            pooled versions built from one seed start identical.
    """
    if len(feature_blocks) == 0:
        raise ValueError("feature_blocks: []; allowed: one positive column count per party (at least one)")
    bottoms = [BottomModel(n, embedding_dim) for n in feature_blocks]
    net = SplitNet(bottoms, TopModel([embedding_dim] * len(bottoms), hidden))
    _init_all_linear_(net, seed=seed)
    return net


# --------------------------------------------------------------------------------------------
# Input scaling with explicit missingness
# --------------------------------------------------------------------------------------------
def _as_2d_float(field: str, X: object) -> np.ndarray:
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{field}: array of shape {arr.shape}; allowed: 2-d (rows, features)")
    if np.isinf(arr).any():
        raise ValueError(f"{field}: contains ±inf; allowed: finite numbers or NaN (missing)")
    return arr


class Standardizer:
    """z-score each feature with training statistics; a missing value becomes 0 plus a flag.

    ``transform`` returns ``(n, n_features + n_indicators)`` float32: first the standardised
    features ((x − mean_) / scale_, NaN → 0, i.e. the training mean), then one 0/1 column per
    feature that had any NaN in the training data, in feature order. A person unknown at a partner
    is thus "mean value, flagged missing" — no magic value. The indicator set is fixed at ``fit``
    so the width never changes; a NaN in a column without an indicator is still mapped to 0.

    Fitted state: ``mean_``, ``scale_`` (population std, ddof = 0; 1 where std is 0 or the column
    is all NaN), ``missing_columns_`` (indices with an indicator), ``n_features_in_``.
    """

    def fit(self, X: np.ndarray) -> Standardizer:
        arr = _as_2d_float("X", X)
        observed = ~np.isnan(arr)
        counts = observed.sum(axis=0)
        filled = np.where(observed, arr, 0.0)
        mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(arr.shape[1]), where=counts > 0)
        var = np.divide(
            (np.where(observed, arr - mean, 0.0) ** 2).sum(axis=0), counts, out=np.zeros(arr.shape[1]), where=counts > 0
        )
        std = np.sqrt(var)
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0)  # constant column: centre only, avoid 0/0
        self.missing_columns_ = np.flatnonzero(~observed.all(axis=0))
        self.n_features_in_ = arr.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise RuntimeError("Standardizer.transform called before fit")
        arr = _as_2d_float("X", X)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(f"X: {arr.shape[1]} columns; allowed: {self.n_features_in_} (as in fit)")
        missing = np.isnan(arr)
        z = np.where(missing, 0.0, (arr - self.mean_) / self.scale_)
        indicators = missing[:, self.missing_columns_].astype(np.float64)
        return np.hstack([z, indicators]).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    @property
    def n_features_out_(self) -> int:
        """Width of ``transform``'s output (features + indicators)."""
        return self.n_features_in_ + len(self.missing_columns_)

    def get_feature_names_out(self, input_features: Sequence[str]) -> list[str]:
        """Output column names: the inputs, then ``<name>__missing`` per indicator."""
        if len(input_features) != self.n_features_in_:
            raise ValueError(f"input_features: {len(input_features)} names; allowed: {self.n_features_in_}")
        names = list(input_features)
        return names + [f"{names[i]}__missing" for i in self.missing_columns_]


# --------------------------------------------------------------------------------------------
# Gradient-boosted trees
# --------------------------------------------------------------------------------------------
class GBTBaseline:
    """Histogram gradient-boosted trees (scikit-learn), the non-private baseline for siloed and pooled.

    Friedman 2001 gradient boosting with LightGBM-style histograms (Ke et al. 2017); NaN is routed
    natively at each split, so raw features (no :class:`Standardizer`) go in. Constructor only
    stores arguments; ``fit`` builds the estimator with ``random_state = seed`` (it matters only for
    early-stopping's validation split and feature subsampling, but is fixed either way).

    Columns that are all-missing or constant in the training rows (:func:`fedsim.columns.uninformative_reasons`)
    are left out of the trees; ``dropped_columns_`` (index → reason) says which, ``predict_score`` still takes
    all ``n_features_in_`` columns.
    """

    def __init__(
        self,
        *,
        seed: int,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        l2_regularization: float = 0.0,
        class_weight: Literal["balanced"] | None = None,
        early_stopping: bool = False,
    ) -> None:
        self.seed = seed
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight
        self.early_stopping = early_stopping

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> GBTBaseline:
        """Fit on features ``(n, d)`` (NaN allowed) and 0/1 labels ``(n,)``; weights ``(n,)`` optional."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight: {self.class_weight!r}; allowed: 'balanced' or None")
        arr = _as_2d_float("X", X)
        labels = np.asarray(y)
        if labels.shape != (arr.shape[0],) or not np.isin(labels, (0, 1)).all():
            raise ValueError(f"y: shape {labels.shape}; allowed: 0/1 labels of shape ({arr.shape[0]},)")
        if np.unique(labels).size < 2:
            raise ValueError(f"y: only class {labels[:1]}; allowed: both 0 and 1 present")
        # A column with no observed value crashes the histogram binning ("window shape cannot be larger than
        # input array shape"); a constant one cannot be split on. Neither reaches the trees (fedsim.columns).
        reasons = uninformative_reasons(arr)
        self.columns_used_ = np.flatnonzero([r is None for r in reasons])
        self.dropped_columns_ = {j: r for j, r in enumerate(reasons) if r is not None}
        self.n_features_in_ = arr.shape[1]
        if self.columns_used_.size == 0:
            raise ValueError(
                f"X: all {arr.shape[1]} columns are constant or all-missing in the training rows; "
                "allowed: at least one column that varies"
            )
        self.model_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            l2_regularization=self.l2_regularization,
            class_weight=self.class_weight,
            early_stopping=self.early_stopping,
            random_state=self.seed,
        )
        self.model_.fit(arr[:, self.columns_used_], labels.astype(np.int64), sample_weight=sample_weight)
        return self

    def predict_score(self, X: np.ndarray) -> np.ndarray:
        """Estimated P(y = 1) per row, shape ``(n,)``."""
        if not hasattr(self, "model_"):
            raise RuntimeError("GBTBaseline.predict_score called before fit")
        arr = _as_2d_float("X", X)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(f"X: {arr.shape[1]} columns; allowed: {self.n_features_in_} (as in fit)")
        proba = self.model_.predict_proba(arr[:, self.columns_used_])
        return proba[:, list(self.model_.classes_).index(1)]
