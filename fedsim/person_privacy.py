"""Per-person ε across a whole run: every DP model whose training data holds any of a person's entities.

Each DP-trained model of a run protects its *examples* (one partner entity with its capped rows, plus the
features of the entities joined in as context). A person is in a model's data through every example that
holds one of their entities — their own customer there, or their subscriber at the telco whose features
were joined into a bank example — so the person's guarantee from model m is group privacy over k_m, the
number of examples of m that hold the person (taken from the data, not assumed 1), and the run's guarantee
is the composition over all its models.

**For a regime** (any regime that trains with DP; call it in the main process, after training)::

    from fedsim.person_privacy import ModelExposure, home_examples, register_exposure

    examples = home_examples(groups)                    # (partner, entity_id) per training row → examples
    examples = with_joined_context(examples)            # + entities joined in (pooled sets a join resolver)
    register_exposure(ModelExposure.from_ledger("bank_1", ledger, examples, history=state.history))

Outside :func:`recording` (e.g. a unit test that trains one model) :func:`register_exposure` does nothing;
the runner records every cell and logs :func:`summary_metrics` of :func:`person_epsilons`.

**Two bounds per person, both valid; the reported per-person ε is the smaller valid one:**

* basic: group privacy per model then basic composition, ε = Σ k_m ε_m and δ = Σ k_m e^{(k_m−1)ε_m} δ_m
  (group privacy: Dwork & Roth 2014, Thm 2.2 for ε, with the δ of Vadhan 2017, "The complexity of
  differential privacy", Lemma 2.2; composition: Dwork & Roth 2014, Thm 3.16);
* RDP: each model's Poisson-subsampled Gaussian mechanism in Rényi DP (Mironov, Talwar & Zhang 2019,
  through ``opacus.accountants.analysis.rdp``), group size k handled by RDP group privacy (Mironov 2017,
  "Rényi differential privacy", Prop. 2: a (α, ε)-RDP mechanism is (α/2^c, 3^c·ε)-RDP for groups of
  2^c when α ≥ 2^{c+1}; k is rounded up to a power of two), orders added up over the models
  (Mironov 2017, Prop. 1) and converted to (ε, δ) (Balle et al. 2020, Thm 21).

Every person of a run is stated at one δ, the sum of the run's model δs, at most 1/(10·persons)
(:func:`run_delta`). The basic bound counts only where its δ is no larger (all k_m = 1), so the minimum
states one (ε, δ) pair. At a fixed δ, adding a model never lowers anyone's ε; a run with one model gives
a person in it once exactly its ε.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError

if TYPE_CHECKING:
    from fedsim.privacy import DPLedger

History = tuple[tuple[float, float, int], ...]
"""(noise multiplier σ, Poisson sample rate q, steps) per homogeneous stretch of training."""
EXAMPLE_COLUMNS = ("example", "partner", "entity_id")
JoinResolver = Callable[[str, np.ndarray], pd.DataFrame]
"""(home partner, home entity ids) → frame ``entity_id`` (home), ``partner``, ``joined_entity_id``: whose
features were joined into that home entity's example."""
PERSON_UNIT = "person (per person, all models composed)"


class PersonPrivacyError(FedsimError):
    """Malformed exposures (no examples columns, bad ledger) handed to the per-person accounting."""


@dataclass(frozen=True)
class ModelExposure:
    """One DP-trained model of a run: its DP ledger and which entities each of its training examples holds.

    model: a name unique in the run (the unit or party name, e.g. ``bank_1+bank_2`` or ``bank_1``).
    history: its accountant's (σ, q, steps) stretches; delta, epsilon: the model's own (ε, δ) as its
    accountant (``accountant``: 'prv' or 'rdp') reported it. examples: one row per (example, entity) with
    columns ``example`` (int, the privacy unit of the model), ``partner``, ``entity_id``; an example holds
    its home entity and every entity whose features were joined into it. pure_epsilon: a pure ε-DP
    mechanism on the same examples that is part of the model (e.g. labels by randomized response), 0 if
    none; ``epsilon`` must then cover it too. A model of a pure mechanism only has no history and δ = 0.
    """

    model: str
    history: History
    delta: float
    epsilon: float
    accountant: str
    examples: pd.DataFrame = field(repr=False)
    pure_epsilon: float = 0.0

    def __post_init__(self) -> None:
        missing = set(EXAMPLE_COLUMNS) - set(self.examples.columns)
        if missing:
            raise PersonPrivacyError(f"examples of {self.model!r}: missing columns {sorted(missing)}")
        gaussian_ok = bool(self.history) and 0 < self.delta < 1
        pure_only = not self.history and self.pure_epsilon > 0 and 0 <= self.delta < 1
        if not (gaussian_ok or pure_only) or not self.epsilon >= self.pure_epsilon >= 0:
            raise PersonPrivacyError(
                f"{self.model!r}: delta = {self.delta!r}, epsilon = {self.epsilon!r}, history = {self.history!r}, "
                f"pure_epsilon = {self.pure_epsilon!r}; allowed: at least one (σ, q, steps) stretch with "
                "0 < delta < 1, or a pure mechanism only (pure_epsilon > 0, 0 <= delta < 1); "
                "epsilon >= pure_epsilon >= 0"
            )

    @classmethod
    def from_ledger(
        cls, model: str, ledger: DPLedger, examples: pd.DataFrame, *, history: Sequence[tuple[float, float, int]] = ()
    ) -> ModelExposure:
        """From a :class:`fedsim.privacy.DPLedger`; ``history`` (the accountant state's) when it has several
        stretches, else the ledger's one stretch (σ, q, total steps)."""
        hist = tuple((float(s), float(q), int(n)) for s, q, n in history) or (
            (float(ledger.noise_multiplier), float(ledger.sample_rate), int(ledger.total_steps)),
        )
        return cls(model, hist, float(ledger.delta), float(ledger.epsilon), ledger.accountant, examples)


# --------------------------------------------------------------------------------------------
# Examples: which entities each training example holds
# --------------------------------------------------------------------------------------------
def home_examples(groups: np.ndarray) -> pd.DataFrame:
    """(partner, entity_id) of every training row ``(n, 2)`` → one example per distinct entity."""
    frame = pd.DataFrame(np.asarray(groups, dtype=object), columns=["partner", "entity_id"]).drop_duplicates()
    frame = frame.astype({"partner": str, "entity_id": np.int64}).sort_values(["partner", "entity_id"])
    frame.insert(0, "example", np.arange(len(frame), dtype=np.int64))
    return frame.reset_index(drop=True)


_JOIN: ContextVar[JoinResolver | None] = ContextVar("fedsim_join_resolver", default=None)


@contextmanager
def joining(resolver: JoinResolver) -> Iterator[None]:
    """Within this block, :func:`with_joined_context` adds the entities ``resolver`` says were joined in.

    A regime that joins other partners' features into its examples (pooled) sets it around training, so the
    fitting step, which does not know the regime's join, counts the joined entities as part of each example.
    """
    token = _JOIN.set(resolver)
    try:
        yield
    finally:
        _JOIN.reset(token)


def with_joined_context(examples: pd.DataFrame, resolver: JoinResolver | None = None) -> pd.DataFrame:
    """``examples`` plus one row per entity joined into an example (``resolver`` or the one :func:`joining` set)."""
    resolver = resolver if resolver is not None else _JOIN.get()
    if resolver is None or examples.empty:
        return examples
    parts = [examples]
    for partner, own in examples.groupby("partner", sort=True):
        joined = resolver(str(partner), own["entity_id"].to_numpy(np.int64))
        if joined.empty:
            continue
        m = own[["example", "entity_id"]].merge(joined, on="entity_id", how="inner")
        parts.append(
            pd.DataFrame(
                {
                    "example": m["example"].to_numpy(np.int64),
                    "partner": m["partner"].astype(str).to_numpy(),
                    "entity_id": m["joined_entity_id"].to_numpy(np.int64),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).drop_duplicates(list(EXAMPLE_COLUMNS)).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# The run's log of DP models
# --------------------------------------------------------------------------------------------
@dataclass
class ExposureLog:
    """The DP models of one run, in the order they were registered."""

    exposures: list[ModelExposure] = field(default_factory=list)


_LOG: ContextVar[ExposureLog | None] = ContextVar("fedsim_exposure_log", default=None)


@contextmanager
def recording() -> Iterator[ExposureLog]:
    """Collect every :func:`register_exposure` call made inside the block (one run)."""
    log = ExposureLog()
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def register_exposure(exposure: ModelExposure) -> None:
    """Add a DP model to the run being recorded (nothing happens outside :func:`recording`)."""
    log = _LOG.get()
    if log is not None:
        if any(e.model == exposure.model for e in log.exposures):
            raise PersonPrivacyError(f"model {exposure.model!r} registered twice in one run; allowed: unique names")
        log.exposures.append(exposure)


# --------------------------------------------------------------------------------------------
# Group sizes: persons × models
# --------------------------------------------------------------------------------------------
def person_keys(examples: pd.DataFrame, entities: pd.DataFrame | None) -> np.ndarray:
    """The person behind each row of ``examples`` (truth ``entities``: partner, entity_id, person_id).

    An entity without a person (a crew's burner, person_id −1) or missing from the truth is its own person,
    keyed ``"<partner>:<entity_id>"``; persons are keyed ``"p<person_id>"``.
    """
    own = examples["partner"].astype(str) + ":" + examples["entity_id"].astype(np.int64).astype(str)
    if entities is None or not {"partner", "entity_id", "person_id"} <= set(entities.columns):
        return own.to_numpy()
    lookup = entities[["partner", "entity_id", "person_id"]].astype({"partner": str, "entity_id": np.int64})
    m = examples[["partner", "entity_id"]].astype({"partner": str, "entity_id": np.int64})
    pid = m.merge(lookup.drop_duplicates(["partner", "entity_id"]), on=["partner", "entity_id"], how="left")[
        "person_id"
    ]
    has = pid.notna().to_numpy() & (pid.fillna(-1).to_numpy() >= 0)
    return np.where(has, "p" + pid.fillna(-1).astype(np.int64).astype(str).to_numpy(), own.to_numpy())


def group_sizes(exposures: Sequence[ModelExposure], entities: pd.DataFrame | None) -> pd.DataFrame:
    """Persons × models: k = how many of the model's examples hold any entity of the person (0 = absent)."""
    cols = []
    for e in exposures:
        persons = person_keys(e.examples, entities)
        per = pd.DataFrame({"person": persons, "example": e.examples["example"].to_numpy()}).drop_duplicates()
        cols.append(per.groupby("person").size().rename(e.model))
    if not cols:
        return pd.DataFrame(dtype=np.int64)
    return pd.concat(cols, axis=1).fillna(0).astype(np.int64)


def max_group_size(examples: pd.DataFrame, entities: pd.DataFrame | None) -> int:
    """Most examples of one model that hold one person (the k of the group-privacy statement); 1 when empty."""
    if examples.empty:
        return 1
    per = pd.DataFrame({"person": person_keys(examples, entities), "example": examples["example"].to_numpy()})
    return int(per.drop_duplicates().groupby("person").size().max())


# --------------------------------------------------------------------------------------------
# Accounting
# --------------------------------------------------------------------------------------------
def group_basic(epsilon: float, delta: float, k: int) -> tuple[float, float]:
    """(ε, δ)-DP for one example → (k·ε, k·e^{(k−1)ε}·δ) for k examples (Vadhan 2017, Lemma 2.2)."""
    if k <= 0:
        return 0.0, 0.0
    if math.isinf(epsilon):
        return math.inf, 1.0
    return k * epsilon, min(1.0, k * math.exp((k - 1) * epsilon) * delta)


def basic_composition(exposures: Sequence[ModelExposure], ks: Sequence[int]) -> tuple[float, float]:
    """Σ over models of group-privacy (ε, δ) (Dwork & Roth 2014, Thm 3.16)."""
    eps, delta = 0.0, 0.0
    for e, k in zip(exposures, ks, strict=True):
        ge, gd = group_basic(e.epsilon, e.delta, int(k))
        eps, delta = eps + ge, delta + gd
    return eps, min(delta, 1.0)


def _orders() -> np.ndarray:
    from opacus.accountants.rdp import RDPAccountant

    return np.asarray(RDPAccountant.DEFAULT_ALPHAS, dtype=float)


def _model_rdp(history: History, orders: np.ndarray) -> np.ndarray:
    """RDP curve of a model's Poisson-subsampled Gaussian steps at ``orders`` (Mironov, Talwar & Zhang 2019)."""
    return np.asarray(_cached_rdp(tuple(history), tuple(float(a) for a in orders)))


@functools.lru_cache(maxsize=256)
def _cached_rdp(history: History, orders: tuple[float, ...]) -> tuple[float, ...]:
    # fractional orders are a slow series in Opacus; persons of a run share few (model, group size) pairs
    from opacus.accountants.analysis.rdp import compute_rdp

    total = np.zeros(len(orders))
    for sigma, q, steps in history:
        total += np.asarray(compute_rdp(q=q, noise_multiplier=sigma, steps=steps, orders=list(orders)), dtype=float)
    return tuple(total.tolist())


def group_rdp(history: History, k: int, orders: np.ndarray, pure_epsilon: float = 0.0) -> np.ndarray:
    """RDP curve at ``orders`` for a group of k examples.

    Sampled Gaussian steps: Mironov 2017, Prop. 2 with k rounded up to 2^c; order α of the group needs the
    model's order 2^c·α, valid for α ≥ 2, so lower orders get +inf. A pure ε-DP part is kε-DP for the group
    (Dwork & Roth 2014, Thm 2.2), hence (α, min(kε, α(kε)²/2))-RDP (Bun & Steinke 2016, Prop. 3.3).
    """
    if k <= 0:
        return np.zeros(len(orders))
    pure = k * pure_epsilon
    out = np.minimum(pure, orders * pure**2 / 2) if pure > 0 else np.zeros(len(orders))
    if not history:
        return out
    c = math.ceil(math.log2(k)) if k > 1 else 0
    if c == 0:
        return out + _model_rdp(history, orders)
    scaled = _model_rdp(history, orders * 2**c) * 3**c
    return out + np.where(orders >= 2, scaled, np.inf)


def rdp_composition(exposures: Sequence[ModelExposure], ks: Sequence[int], delta: float) -> float:
    """ε at ``delta`` of all models composed in one RDP account, each with its group size (Mironov 2017)."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    orders = _orders()
    total = np.zeros(len(orders))
    for e, k in zip(exposures, ks, strict=True):
        if k > 0:
            total += group_rdp(e.history, int(k), orders, e.pure_epsilon)
    if not np.isfinite(total).any():
        return math.inf
    finite = np.isfinite(total)
    eps, _ = get_privacy_spent(orders=list(orders[finite]), rdp=list(total[finite]), delta=delta)
    return float(eps)


@dataclass(frozen=True)
class PersonBound:
    """One person's guarantee: the reported ε (the smaller valid bound) at δ, and both bounds."""

    epsilon: float
    delta: float
    epsilon_basic: float
    delta_basic: float
    epsilon_rdp: float


def run_delta(exposures: Sequence[ModelExposure], n_persons: int) -> float:
    """The δ of every per-person statement of a run, the same for every person: Σ of its models' δ (what
    basic composition of one example per model costs), but at most 1/(10·n) for the run's n persons — the
    rule each model's δ follows (:func:`fedsim.privacy.default_delta`, Dwork & Roth 2014 §2.3: δ ≪ 1/n), which
    small training sets would otherwise break once their δs are summed over models."""
    return min(sum(e.delta for e in exposures), 1.0 / (10.0 * max(int(n_persons), 1)))


def person_bound(exposures: Sequence[ModelExposure], ks: Sequence[int], *, delta: float) -> PersonBound:
    """The guarantee at ``delta`` of a person with group size ``ks[m]`` in model m (module doc: the smaller
    of two valid bounds). At a fixed δ, adding a model or raising a k never lowers it."""
    present = [(e, int(k)) for e, k in zip(exposures, ks, strict=True) if k > 0]
    if not present:
        return PersonBound(0.0, delta, 0.0, 0.0, 0.0)
    exps, kk = [e for e, _ in present], [k for _, k in present]
    eps_basic, delta_basic = basic_composition(exps, kk)
    eps_rdp = rdp_composition(exps, kk, delta) if 0 < delta < 1 else math.inf
    eps = min(eps_rdp, eps_basic) if delta_basic <= delta * (1 + 1e-12) else eps_rdp
    return PersonBound(eps, delta, eps_basic, delta_basic, eps_rdp)


def person_epsilons(
    exposures: Sequence[ModelExposure], entities: pd.DataFrame | None, *, delta: float | None = None
) -> pd.DataFrame:
    """One row per person in any model: k per model, ``n_models``, ``epsilon`` (reported), ``delta``,
    ``epsilon_basic``, ``delta_basic``, ``epsilon_rdp``. ``delta``: the δ of every statement (default
    :func:`run_delta`). Persons sharing one pattern of k share one account."""
    ks = group_sizes(exposures, entities)
    if ks.empty:
        return ks
    at = run_delta(exposures, len(ks)) if delta is None else float(delta)
    models = [e.model for e in exposures]
    patterns = ks[models].drop_duplicates()
    bounds = {tuple(row): person_bound(exposures, row, delta=at) for row in patterns.itertuples(index=False, name=None)}
    rows = [bounds[tuple(r)] for r in ks[models].itertuples(index=False, name=None)]
    out = ks.copy()
    out["n_models"] = (ks[models] > 0).sum(axis=1)
    for name in ("epsilon", "delta", "epsilon_basic", "delta_basic", "epsilon_rdp"):
        out[name] = [getattr(b, name) for b in rows]
    return out


def summary_metrics(persons: pd.DataFrame, n_models: int) -> dict[str, float]:
    """Run-level metrics of :func:`person_epsilons`: maximum and distribution of the per-person ε.

    ``dp_epsilon_person_{max,median,p90,p99}`` (reported bound), ``dp_delta_person_max``,
    ``dp_epsilon_person_basic_max``, ``dp_epsilon_person_rdp_max``, ``dp_persons``,
    ``dp_persons_share_multi_model`` (in ≥ 2 models), ``dp_persons_in_all_models``, ``dp_models``,
    ``dp_max_entities_per_person`` (largest k of any person in any model).
    """
    if persons.empty:
        return {}
    eps = persons["epsilon"].to_numpy(float)
    models = list(persons.columns[: persons.columns.get_loc("n_models")])
    return {
        "dp_epsilon_person_max": float(eps.max()),
        "dp_epsilon_person_median": float(np.median(eps)),
        "dp_epsilon_person_p90": float(np.quantile(eps, 0.9)),
        "dp_epsilon_person_p99": float(np.quantile(eps, 0.99)),
        "dp_delta_person_max": float(persons["delta"].max()),
        "dp_epsilon_person_basic_max": float(persons["epsilon_basic"].max()),
        "dp_epsilon_person_rdp_max": float(persons["epsilon_rdp"].max()),
        "dp_persons": float(len(persons)),
        "dp_persons_share_multi_model": float((persons["n_models"] >= 2).mean()),
        "dp_persons_in_all_models": float((persons["n_models"] == n_models).sum()),
        "dp_models": float(n_models),
        "dp_max_entities_per_person": float(persons[models].to_numpy().max()) if models else 1.0,
    }


NO_MODEL_UNIT = (
    "person: no DP model was trained in this run (no reported fraud in the training window), so no training data "
    "was released (ε = 0); that no model could be trained is itself outside ε"
)


def run_person_privacy(
    log: ExposureLog, entities: pd.DataFrame | None, *, dp_cell: bool = False
) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and params of one recorded run: the per-person ε and its unit. A run that is not a DP cell gets
    none; a DP cell whose regime trained no model (nothing reported to learn from) gets ε = 0 and says why."""
    if not log.exposures:
        if not dp_cell:
            return {}, {}
        zero = {f"dp_epsilon_person_{s}": 0.0 for s in ("max", "median", "p90", "p99")}
        return {**zero, "dp_models": 0.0, "dp_persons": 0.0}, {"dp_unit": NO_MODEL_UNIT}
    persons = person_epsilons(log.exposures, entities)
    params = {
        "dp_unit": PERSON_UNIT,
        "dp_person_accounting": "min(basic composition with group privacy, RDP composition with RDP group "
        "privacy (Mironov 2017 Prop. 2)) at δ = Σ model δ",
    }
    return summary_metrics(persons, len(log.exposures)), params
