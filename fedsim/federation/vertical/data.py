"""What each party of a split-learning federation holds, the coordinator's plan, and state helpers.

No Flower here. Each partner gets a *bundle* with only its own data, written to its own directory
(``<run>/<partner>/``: JSON header, npz arrays, Parquet tables; never pickle) and read back inside that
partner's ClientApp process; the coordinator gets a :class:`Plan` (settings, no data). Partners write
their local outputs (scores, their half of the alignment) to ``<run>/<partner>/out/``: that is where a
real partner would keep its alerts, and where the experimenter collects them after the run — never
through a federation message.

Party state between messages (Flower's ``context.state``) is a flat ``dict[str, numpy array]``:
model weights, Adam moments, standardiser statistics, schedules. The helpers here turn torch modules,
optimisers and :class:`~fedsim.models.Standardizer` into such dicts and back.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch import nn

from fedsim.features import PartnerFeatures
from fedsim.models import Standardizer
from synthetic.world_data import PartnerView

Payload = dict[str, Any]
"""A message body: name → numpy array, bytes, str, int, float or bool (see fedsim.federation.vertical)."""
State = dict[str, np.ndarray]
"""A party's state between messages: name → numpy array."""

Mode = Literal["vertical", "hybrid"]
SCORE_CHUNK = 20_000
"""Rows scored per message exchange (keeps every message a few MB at most)."""


# ------------------------------------------------------------------------------------------------
# Bundles: one per partner, only its own data
# ------------------------------------------------------------------------------------------------
@dataclass
class HolderData:
    """A label holder's own data: its decision rows, its own features, its labels (never sent).

    Shapes: ``x_train`` (n_train, d) raw features (NaN = missing); ``y_train``, ``w_train`` (n_train,)
    labels and sample weights (undo negative subsampling); ``entity_*``/``ts_*`` the row's entity id
    and decision time (s); ``window_test`` 0 = test window, 1 = second (drift) window.
    """

    name: str
    block: str
    keys: pd.DataFrame
    feature_names: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    w_train: np.ndarray
    entity_train: np.ndarray
    ts_train: np.ndarray
    x_test: np.ndarray
    entity_test: np.ndarray
    ts_test: np.ndarray
    window_test: np.ndarray
    role: str = "holder"
    y_true: np.ndarray | None = None
    """Under label DP, the true labels of the training rows (``y_train`` holds their randomized response);
    kept by the holder for evaluation only, not written to the bundle."""


@dataclass
class PartyData:
    """A feature party's own data: its join keys and its point-in-time feature builder."""

    name: str
    block: str
    keys: pd.DataFrame
    features: PartnerFeatures
    role: str = "party"


Bundle = HolderData | PartyData


_HOLDER_ARRAYS = (
    "x_train",
    "y_train",
    "w_train",
    "entity_train",
    "ts_train",
    "x_test",
    "entity_test",
    "ts_test",
    "window_test",
)


def write_bundle(bundle: Bundle, run_dir: Path) -> Path:
    """Write a partner's bundle into ``<run_dir>/<name>/`` as JSON + npz + Parquet (nothing a reader
    must unpickle); returns the bundle's JSON header ``bundle.json``, the path the node is given.

    Holder: arrays in ``arrays.npz``, join keys in ``keys.parquet``. Party: join keys and its own tables
    (``table_<name>.parquet``), from which the party rebuilds its feature builder."""
    d = Path(run_dir) / bundle.name
    (d / "out").mkdir(parents=True, exist_ok=True)
    bundle.keys.to_parquet(d / "keys.parquet", index=False)
    header: dict[str, Any] = {"name": bundle.name, "block": bundle.block, "role": bundle.role}
    if isinstance(bundle, HolderData):
        header["feature_names"] = list(bundle.feature_names)
        with (d / "arrays.npz").open("wb") as f:
            np.savez(f, **{k: np.asarray(getattr(bundle, k)) for k in _HOLDER_ARRAYS}, allow_pickle=False)
    else:
        header["kind"] = bundle.features.view.kind
        header["tables"] = sorted(bundle.features.view.tables)
        for name, table in bundle.features.view.tables.items():
            pq.write_table(table, d / f"table_{name}.parquet")
    path = d / "bundle.json"
    path.write_text(json.dumps(header))
    return path


@functools.lru_cache(maxsize=6)
def load_bundle(path: str) -> Bundle:
    """A partner's bundle, read once per process (a simulation actor serves many messages).

    Six slots: the largest chain (three banks, telco, marketplace, placebo); a later run's bundles
    push out an earlier run's, so a warm actor holds at most one run's worth of partner data."""
    d = Path(path).parent
    header = json.loads(Path(path).read_text())
    keys = pd.read_parquet(d / "keys.parquet")
    if header.get("role") == "holder":
        with np.load(d / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in _HOLDER_ARRAYS}
        return HolderData(
            name=str(header["name"]),
            block=str(header["block"]),
            keys=keys,
            feature_names=[str(c) for c in header["feature_names"]],
            **arrays,
        )
    if header.get("role") == "party":
        tables = {str(t): pq.read_table(d / f"table_{t}.parquet") for t in header["tables"]}
        view = PartnerView(name=str(header["name"]), kind=str(header["kind"]), tables=tables)
        return PartyData(
            name=str(header["name"]), block=str(header["block"]), keys=keys, features=PartnerFeatures.for_view(view)
        )
    raise ValueError(f"bundle {path}: role {header.get('role')!r}; allowed: 'holder' or 'party'")


def out_dir(bundle_path: str | Path) -> Path:
    """The partner's local output directory (next to its bundle)."""
    return Path(bundle_path).parent / "out"


# ------------------------------------------------------------------------------------------------
# The coordinator's plan (settings only)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """Settings of one split-learning run, as the coordinator (ServerApp) reads them.

    ``mode``: ``vertical`` (each holder its own federation with the parties, model state kept
    across rounds) or ``hybrid`` (holders' federations FedAvg-ed after every round; optimisers
    restart each round as in FedAvg). ``rounds`` × ``local_epochs`` passes over each holder's
    training rows. ``hidden``/``embedding_dim`` size the :func:`fedsim.models.make_split_net`.
    """

    mode: Mode
    holders: tuple[str, ...]
    parties: tuple[str, ...]
    seed: int
    rounds: int
    local_epochs: int
    batch_size: int
    learning_rate: float
    embedding_dim: int
    hidden: int
    out_dir: str
    capture: bool = False
    score_chunk: int = SCORE_CHUNK
    dp: str = ""
    """DP-SGD on the parties' bottom models: a :class:`fedsim.privacy.PrivacySettings` as JSON; "" = off."""
    label_epsilon: float | None = None
    """Label DP at the holders: randomized response at this ε per training row; None = labels as they are."""

    def __post_init__(self) -> None:
        if self.mode not in ("vertical", "hybrid"):
            raise ValueError(f"mode: {self.mode!r}; allowed: 'vertical' or 'hybrid'")
        if not self.holders or not self.parties:
            raise ValueError(f"holders {self.holders}, parties {self.parties}: allowed: at least one of each")
        if set(self.holders) & set(self.parties):
            raise ValueError(f"holders {self.holders} and parties {self.parties}: allowed: disjoint sets")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        raw["holders"], raw["parties"] = tuple(raw["holders"]), tuple(raw["parties"])
        return cls(**raw)

    def write(self, path: Path) -> Path:
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        return cls.from_json(Path(path).read_text())

    @property
    def bottom_dp(self) -> bool:
        """Whether the parties train their bottom models with DP-SGD (the holders then draw Poisson batches)."""
        return bool(self.dp)

    def privacy(self) -> Any:
        """The bottom models' :class:`fedsim.privacy.PrivacySettings` (None without DP)."""
        from fedsim.privacy import PrivacySettings

        return PrivacySettings.model_validate_json(self.dp) if self.dp else None

    @property
    def always_indicators(self) -> bool:
        """Hybrid averages models across holders, so every input width must agree: give every
        column a missing-value indicator instead of only the columns that had NaN locally."""
        return self.mode == "hybrid"


# ------------------------------------------------------------------------------------------------
# State helpers: modules, Adam and standardisers as flat numpy dicts
# ------------------------------------------------------------------------------------------------
def module_arrays(module: nn.Module, prefix: str) -> State:
    return {f"{prefix}{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_module(module: nn.Module, arrays: dict[str, np.ndarray], prefix: str) -> None:
    state = {k: torch.as_tensor(np.asarray(arrays[f"{prefix}{k}"])) for k in module.state_dict()}
    module.load_state_dict(state, strict=True)


def adam_arrays(optimizer: torch.optim.Optimizer, prefix: str) -> State:
    """Adam moments and step counts per parameter (the optimiser's state survives between messages)."""
    out: State = {}
    for i, st in optimizer.state_dict()["state"].items():
        for name, value in st.items():
            out[f"{prefix}{i}.{name}"] = torch.as_tensor(value).detach().cpu().numpy().copy()
    return out


def load_adam(optimizer: torch.optim.Optimizer, arrays: dict[str, np.ndarray], prefix: str) -> None:
    sd = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        if key.startswith(prefix):
            i, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(i), {})[name] = torch.as_tensor(np.asarray(value))
    if state:
        optimizer.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def fit_standardizer(x: np.ndarray, *, add_missing_row: bool) -> Standardizer:
    """Standardiser on training rows; ``add_missing_row`` fits as if one all-missing row were there.

    Mean and scale use observed values only, so the extra row changes nothing but the indicator set:
    every column then gets a missing flag — exactly what a central fit sees when some rows belong to
    people the party does not hold (their features are all NaN)."""
    rows = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[1])
    if add_missing_row or len(rows) == 0:
        rows = np.vstack([rows, np.full((1, rows.shape[1]), np.nan)])
    return Standardizer().fit(rows)


def standardizer_arrays(std: Standardizer, prefix: str) -> State:
    return {
        f"{prefix}mean": std.mean_,
        f"{prefix}scale": std.scale_,
        f"{prefix}missing": np.asarray(std.missing_columns_, dtype=np.int64),
    }


def load_standardizer(arrays: dict[str, np.ndarray], prefix: str) -> Standardizer:
    std = Standardizer()
    std.mean_ = np.asarray(arrays[f"{prefix}mean"], dtype=np.float64)
    std.scale_ = np.asarray(arrays[f"{prefix}scale"], dtype=np.float64)
    std.missing_columns_ = np.asarray(arrays[f"{prefix}missing"], dtype=np.int64)
    std.n_features_in_ = len(std.mean_)
    return std


def names(text: str | np.ndarray | None) -> list[str]:
    """Comma-separated names (how lists of partner names travel in a message) → list."""
    if text is None:
        return []
    s = str(text)
    return [n for n in s.split(",") if n]
