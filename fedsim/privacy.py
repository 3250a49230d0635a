"""Differential privacy in fedsim: settings, person-level DP-SGD (Opacus), accounting, ε in plain words.

**For a federated regime — one call per party per round** (horizontal FL; split learning
has its own DP path in :mod:`fedsim.federation.vertical.split_dp`: DP-SGD on the parties' bottom models and
randomized-response label DP at the label holder)::

    from fedsim.privacy import make_private_fit, privacy_for

    settings = privacy_for(ctx)                       # None → train without record-level DP
    state = None                                      # one AccountantState per party, kept across rounds
    for rnd in range(rounds):
        model = make_model(...); set_weights(model, global_weights)   # a FRESH model every round
        out = make_private_fit(model, X, y, privacy=settings, config=cfg, seed=seed, groups=entity_ids,
                               sample_weight=w, reference_params=global_weights, state=state,
                               total_rounds=rounds)
        state = out.state                             # carries accountant.history: ε accumulates
        out.ledger.epsilon                            # ε spent by this party so far (all rounds)
        metrics.update(out.ledger.as_metrics(suffix=f".{party}"))   # dp_epsilon.bank_1, dp_sigma.bank_1, ...

**Where the settings come from.** An experiment's ``privacy:`` section becomes each grid cell's
``RunSpec.privacy`` (:class:`PrivacySettings`, None for a non-private cell); the runner hands it to the
regime as ``ctx.privacy`` and :func:`privacy_for` reads it back (without it, a finite
``ctx.epsilon`` means target-ε mode with default settings). :func:`run_params` gives the text params
(mode, accountant, unit of privacy) to log with the run; the numbers come as ``dp_*`` metrics.

``state.to_dict()`` / ``AccountantState.from_dict`` make the state fit a Flower ``ConfigRecord``
(``context.state``). In target-ε mode the noise multiplier is chosen once, in the first round, for
the whole schedule (``total_rounds`` × epochs × steps per epoch), so the last round ends at or under
the target; calling past ``total_rounds`` raises :class:`PrivacyError` before training.

**What is protected (unit of privacy).** With ``groups`` (the partner entity id of each row: a bank
customer, a telco subscriber, a marketplace user) each entity's rows in one training set are capped
at ``max_rows_per_entity`` and trained as **one example** (a padded block): Poisson sampling draws
entities, and Opacus clips each entity's summed gradient as one per-sample gradient — user-level
DP-SGD (McMahan, Ramage, Talwar & Zhang 2018, "Learning differentially private recurrent language
models", ICLR). So (ε, δ) holds for adding or removing one entity with all its rows — per model. A
person is in a model through every example that holds one of their entities: their own entity, or an
entity whose features were joined into another example (pooled: one telco subscriber can sit inside two
bank examples). :mod:`fedsim.person_privacy` counts those examples per person from the data
(``dp_max_entities_per_person``, the group size k) and composes every model of the run per person
(``dp_epsilon_person_*``, the ε that reports and the odds wording use). δ defaults
to 1 / (10·n) for n entities in the training set. Not covered by ε (stated in the leakage register):
the Standardizer's per-feature mean and scale, and labels or watchlist features that other persons'
reports put on an entity's rows.

**Randomness.** ``secure_mode`` is off (no torchcsprng): noise and Poisson sampling come from seeded
``torch.Generator``s, so a run is reproducible. Fine for research; a deployment would retrain once with
``secure_mode=True``.

Heavy libraries (torch, Opacus, dp-accounting) are imported inside the functions that need them, so
importing this module (the experiment loader does) stays fast.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fedsim.errors import FedsimError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fedsim.training import FitReport, TrainConfig

Accountant = Literal["prv", "rdp"]
ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")
DEFAULT_ROWS_PER_ENTITY = 16
"""Default cap on one entity's rows per training set (the small world's median is 3, its 99th pct 14–32)."""


class PrivacyError(FedsimError):
    """Bad privacy settings or a DP request that cannot be honoured; raised before any training."""


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
class PrivacySettings(BaseModel):
    """DP settings of one run (or one party). Frozen; validated once when built.

    Record-level DP-SGD runs in one of two modes — exactly one of ``target_epsilon`` (Opacus picks σ
    for the planned schedule) or ``noise_multiplier`` (σ given; ε is reported).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_epsilon: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="ε to reach at the end of training; finite > 0"
    )
    noise_multiplier: float | None = Field(
        default=None, gt=0, le=1e4, allow_inf_nan=False, description="σ: noise std / clipping norm; > 0"
    )
    delta: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="δ; None → 1/(10·n), n = entities (persons) in the training set",
    )
    max_grad_norm: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="C: per-example (per-entity) L2 clipping norm of the gradient",
    )
    accountant: Accountant = Field(
        default="prv", description="Opacus accountant: 'prv' (Gopi et al. 2021) or 'rdp' (Mironov 2017)"
    )
    max_rows_per_entity: int = Field(
        default=DEFAULT_ROWS_PER_ENTITY,
        ge=1,
        le=10_000,
        strict=True,
        description="cap on one entity's rows per training set (count)",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> PrivacySettings:
        if self.target_epsilon is not None and self.noise_multiplier is not None:
            raise ValueError(
                f"target_epsilon = {self.target_epsilon} and noise_multiplier = "
                f"{self.noise_multiplier}: give one of them (target-ε mode: Opacus picks the "
                "noise; noise mode: ε is reported), not both"
            )
        if self.target_epsilon is None and self.noise_multiplier is None:
            raise ValueError(
                "target_epsilon and noise_multiplier are both None; allowed: "
                "one mode (or pass privacy=None to train without DP)"
            )
        return self

    @property
    def record_level(self) -> bool:
        """Always True: every DP setting fedsim offers is record-level DP-SGD inside each party."""
        return True

    @property
    def mode(self) -> str:
        """'target_epsilon' or 'noise_multiplier'."""
        return "target_epsilon" if self.target_epsilon is not None else "noise_multiplier"


def privacy_for(ctx: Any) -> PrivacySettings | None:
    """The privacy settings of a regime run, or None for a non-private run. The one place to ask.

    Reads ``ctx.privacy`` (a :class:`PrivacySettings` or its dict, put there by the runner from the
    grid cell); without it a finite ``ctx.epsilon`` means target-ε mode with the defaults.
    Raises :class:`PrivacyError` for a model family DP-SGD cannot train (``gbt``).
    """
    raw = getattr(ctx, "privacy", None)
    if raw is None:
        eps = float(getattr(ctx, "epsilon", math.inf))
        settings = None if math.isinf(eps) else PrivacySettings(target_epsilon=eps)
    else:
        settings = raw if isinstance(raw, PrivacySettings) else PrivacySettings.model_validate(raw)
    model = getattr(ctx, "model", None)
    if settings is not None and model == "gbt":
        raise PrivacyError(
            f"model = 'gbt' with {settings.mode} DP: gradient-boosted trees cannot be trained "
            "with DP-SGD; allowed: logistic or mlp (gbt runs only at ε = inf)"
        )
    return settings


PER_MODEL_UNIT = "partner entity, per model (no per-person composition recorded for this run)"


def run_params(settings: PrivacySettings | None) -> dict[str, str]:
    """Run-level privacy params (text) for tracking: mode, accountant, unit of privacy, C, δ rule, cap.

    ``dp_unit`` says what the run's headline ε protects: :data:`PER_MODEL_UNIT` here, replaced by
    :data:`fedsim.person_privacy.PERSON_UNIT` when the run's models were composed per person."""
    if settings is None:
        out = {"dp_mode": "none", "dp_unit": "none (no record-level DP)"}
    else:
        out = {
            "dp_mode": settings.mode,
            "dp_accountant": settings.accountant,
            # the run's unit is the person once fedsim.person_privacy has composed every model (the runner
            # then overrides dp_unit); each model's own unit is the example
            "dp_unit": PER_MODEL_UNIT,
            "dp_example_unit": unit_of_privacy(grouped=True, cap=settings.max_rows_per_entity),
            "dp_max_grad_norm": f"{settings.max_grad_norm:g}",
            "dp_delta_rule": "1/(10·n entities)" if settings.delta is None else f"{settings.delta:g}",
            "dp_noise_seeded": "yes (secure_mode off)",
        }
    return out


def unit_of_privacy(*, grouped: bool, cap: int | None) -> str:
    """The unit of privacy in words, as every report states it."""
    if not grouped:
        return "row (each training row is treated as one person)"
    return (
        f"person = partner entity (customer / subscriber / user): at most {cap} rows per entity per "
        "training set, trained as one example (entity-level DP-SGD)"
    )


# --------------------------------------------------------------------------------------------
# Accounting (pure functions over an accountant history)
# --------------------------------------------------------------------------------------------
History = tuple[tuple[float, float, int], ...]
"""Opacus accountant history: (noise multiplier σ, sample rate q, steps) per homogeneous stretch."""


def default_delta(n_persons: int) -> float:
    """δ = 1 / (10·n) for n persons (entities) in the training set.

    A δ well below 1/n is the usual rule (Dwork & Roth 2014, §2.3: δ ≪ 1/n, since a mechanism that
    publishes one random person's record outright is (0, 1/n)-DP).
    """
    if isinstance(n_persons, bool) or not isinstance(n_persons, int | np.integer) or n_persons < 1:
        raise PrivacyError(f"n_persons: {n_persons!r}; allowed: an integer >= 1")
    return 1.0 / (10.0 * int(n_persons))


def _check_accountant(accountant: str) -> str:
    if accountant not in ACCOUNTANTS:
        raise PrivacyError(f"accountant: {accountant!r}; allowed: one of {ACCOUNTANTS}")
    return accountant


def epsilon_spent(history: Sequence[tuple[float, float, int]], *, delta: float, accountant: str) -> float:
    """ε after composing every step in ``history`` at ``delta`` (Poisson-subsampled Gaussian mechanism).

    ``rdp``: Rényi DP of the sampled Gaussian (Mironov, Talwar & Zhang 2019) converted with Balle et
    al. 2020, Thm 21; ``prv``: privacy random variables (Gopi, Lee & Wutschitz 2021), upper bound.
    Empty history → 0.
    """
    from opacus.accountants import create_accountant

    if not 0 < delta < 1:
        raise PrivacyError(f"delta: {delta!r}; allowed: 0 < delta < 1")
    if not history:
        return 0.0
    acc = create_accountant(mechanism=_check_accountant(accountant))
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    # A training set no larger than one batch has q = 1: Opacus' PRV then takes log(1 - q) = -inf on a branch
    # np.where discards. The result is right; only numpy's divide-by-zero warning would reach the terminal.
    with np.errstate(divide="ignore"):
        return float(acc.get_epsilon(delta=delta))


def noise_for_target(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """Smallest σ (to Opacus' 0.01 ε tolerance) whose ε after ``steps`` steps at rate q stays ≤ target.

    Opacus' ``get_noise_multiplier`` (binary search on the accountant; it returns the upper end of the
    bracket, so ε(σ) ≤ target_epsilon by construction) — the noise choice of ``make_private_with_epsilon``,
    but for an explicit step count so that a multi-round schedule is budgeted as a whole. Cached: the
    seeds of one grid share their schedules, and the PRV search takes seconds.
    """
    if not (isinstance(target_epsilon, int | float) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise PrivacyError(f"target_epsilon: {target_epsilon!r}; allowed: a finite number > 0")
    if not 0 < delta < 1:
        raise PrivacyError(f"delta: {delta!r}; allowed: 0 < delta < 1")
    return _noise_for_target(
        float(target_epsilon), float(delta), float(sample_rate), int(steps), _check_accountant(accountant)
    )


@functools.lru_cache(maxsize=512)
def _noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    try:
        with warnings.catch_warnings(), np.errstate(divide="ignore"):  # q = 1: see epsilon_spent
            # the search probes very large σ, where RDP's best order is the largest one: expected there
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(
                get_noise_multiplier(
                    target_epsilon=target_epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps,
                    accountant=accountant,
                )
            )
    except ValueError as err:  # Opacus: "The privacy budget is too low."
        raise PrivacyError(
            f"target_epsilon = {target_epsilon:g} at δ = {delta:.3g}, q = {sample_rate:.4g}, "
            f"{steps} steps: no noise multiplier up to 1e6 reaches it ({err}); allowed: a "
            "larger ε, fewer epochs/rounds or a smaller batch"
        ) from None


@dataclass(frozen=True)
class CrossCheck:
    """fedsim's (Opacus) ε against an independent implementation (Google's dp-accounting)."""

    fedsim_epsilon: float
    reference_epsilon: float
    reference: str
    relative_difference: float


def crosscheck_epsilon(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> CrossCheck:
    """Same (σ, q, steps, δ) through Opacus and through dp-accounting; relative difference |a − b| / b.

    Reference: ``rdp`` ↔ dp-accounting ``RdpAccountant``; ``prv`` ↔ dp-accounting ``PLDAccountant``
    (privacy loss distributions, Koskela et al. 2020 / Doroshenko et al. 2022), both on the event
    ``SelfComposed(PoissonSampled(q, Gaussian(σ)), steps)``.
    """
    try:
        import dp_accounting
    except ImportError:  # a dev dependency
        raise PrivacyError("the accountant cross-check needs dp-accounting: pip install -e '.[dev]'") from None
    ours = epsilon_spent([(noise_multiplier, sample_rate, steps)], delta=delta, accountant=accountant)
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(sample_rate, gaussian), int(steps))
    if accountant == "rdp":
        ref_acc: Any = dp_accounting.rdp.RdpAccountant()
        name = "dp_accounting.rdp.RdpAccountant"
    else:
        ref_acc = dp_accounting.pld.PLDAccountant()
        name = "dp_accounting.pld.PLDAccountant"
    ref_acc.compose(event)
    ref = float(ref_acc.get_epsilon(delta))
    return CrossCheck(ours, ref, name, abs(ours - ref) / ref if ref > 0 else math.inf)


# --------------------------------------------------------------------------------------------
# ε in plain words
# --------------------------------------------------------------------------------------------
def odds_factor(epsilon: float) -> float:
    """e^ε: the most an attacker's odds (person in the training data vs not) can be multiplied by.

    ε-DP bounds the likelihood ratio of any output under neighbouring data sets by e^ε, hence the
    posterior odds ≤ e^ε × prior odds for any prior (Kasiviswanathan & Smith 2014, "On the
    'semantics' of differential privacy"; Wood et al. 2018, "Differential privacy: a primer for a
    non-technical audience"). With δ > 0 this holds except with probability about δ.

    A finite ε above ~709.8 (a per-person ε composed over many models and a large group can reach it) has an e^ε
    beyond floating point: it is returned as ``math.inf``; tell it from "no DP" by ε itself, and word it with
    :data:`NO_PRACTICAL_BOUND_ODDS`.
    """
    if not epsilon >= 0:
        raise PrivacyError(f"epsilon: {epsilon!r}; allowed: >= 0 (inf = no DP)")
    return math.inf if epsilon > _LARGEST_EXP_ARGUMENT else math.exp(epsilon)


_LARGEST_EXP_ARGUMENT = math.log(np.finfo(float).max)
"""ln of the largest float (≈ 709.78): e^ε of any larger ε overflows."""

NO_PRACTICAL_BOUND_ODDS = 1e9
"""Odds multipliers from here on (ε ≥ 20.7) are worded "more than a billion-fold" instead of as a number: a
guarantee that lets an attacker's odds grow a billion-fold protects nobody in practice, and the exact figure (up to
e^1809 for one person of the default world's pooled chain at ε = 4 per model) only distracts."""

_NO_PRACTICAL_BOUND_WORDS = {"en": "more than a billion", "nl": "meer dan een miljard"}


def _fold(x: float, language: str) -> str:
    """2.718 → '2.7' (nl '2,7'); 54.6 → '55'; 2981 → '3,000' (nl '3.000'); from a billion on (inf included)
    'more than a billion' (nl 'meer dan een miljard')."""
    if x >= NO_PRACTICAL_BOUND_ODDS:
        return _NO_PRACTICAL_BOUND_WORDS["nl" if language == "nl" else "en"]
    if x < 10:
        text = f"{x:.1f}"
    elif x < 1000:
        text = f"{x:.0f}"
    else:
        digits = int(math.floor(math.log10(x))) - 1
        text = f"{round(x, -digits):,.0f}"
    if language == "nl":  # Dutch: decimal comma, thousands dot
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


PERSON_WORDS = {"en": "per person, all models composed", "nl": "per persoon, alle modellen samen"}
"""The unit of a per-person ε (:mod:`fedsim.person_privacy`), as the odds wording names it."""


def explain_epsilon(
    epsilon: float, *, delta: float | None = None, language: str = "en", per_person: bool = False
) -> str:
    """One sentence for non-experts: the attacker's odds rise at most e^ε-fold (:func:`odds_factor`).

    ``per_person``: ε is a person's composed guarantee over every model of the run (the figure reports
    should use; evaluation.md §5), and the sentence names that unit; otherwise one model's ε."""
    if language not in ("en", "nl"):
        raise PrivacyError(f"language: {language!r}; allowed: 'en' or 'nl'")
    if math.isinf(epsilon):
        return (
            "ε = ∞: no formal privacy guarantee (the model was trained without differential privacy)."
            if language == "en"
            else "ε = ∞: geen formele privacygarantie (het model is zonder differentiële privacy getraind)."
        )
    fold = _fold(odds_factor(epsilon), language)
    eps_text = f"{epsilon:.3g}".replace(".", ",") if language == "nl" else f"{epsilon:.3g}"
    if odds_factor(epsilon) >= NO_PRACTICAL_BOUND_ODDS:
        return _no_practical_bound(eps_text, per_person=per_person, language=language)
    subject = {"en": "the model raises", "nl": "het model vergroot"}
    if per_person:
        eps_text += f" ({PERSON_WORDS[language]})"
        subject = {"en": "the run's models together raise", "nl": "de modellen van de run samen vergroten"}
    tail_en = f", except with probability δ = {delta:.0e}" if delta else ""
    tail_nl = f", behalve met kans δ = {delta:.0e}" if delta else ""
    if language == "en":
        return (
            f"ε = {eps_text}: whatever an attacker believed beforehand, {subject['en']} their odds "
            f"that a given person's data was used at most {fold}-fold (×e^ε){tail_en}."
        )
    return (
        f"ε = {eps_text}: wat een aanvaller vooraf ook dacht, {subject['nl']} de kans (odds) dat de "
        f"gegevens van een bepaalde persoon zijn gebruikt hooguit {fold} keer (×e^ε){tail_nl}."
    )


# --------------------------------------------------------------------------------------------
# Person-level examples
# --------------------------------------------------------------------------------------------
def cap_rows_per_entity(groups: np.ndarray, y: np.ndarray, *, cap: int, seed: int) -> np.ndarray:
    """Boolean mask ``(n,)`` keeping at most ``cap`` rows of each entity: its positive rows first, then
    a seeded random share of the rest.

    Which rows an entity keeps depends only on that entity's own rows, so adding or removing one
    entity changes exactly one block of the capped training set (contribution bounding; Amin, Kulesza,
    Muñoz Medina & Vassilvitskii 2019, "Bounding user contributions").
    """
    groups = np.asarray(groups)
    if groups.ndim not in (1, 2) or len(groups) != len(np.asarray(y)):
        raise PrivacyError(
            f"groups: shape {groups.shape}; allowed: one entity id (or key row) per row of "
            f"y, ({len(np.asarray(y))},) or ({len(np.asarray(y))}, k)"
        )
    if isinstance(cap, bool) or not isinstance(cap, int | np.integer) or cap < 1:
        raise PrivacyError(f"cap: {cap!r}; allowed: an integer >= 1")
    rng = np.random.default_rng(seed)
    entity = _group_codes(groups)
    # order: entity, then positives before negatives, then random — rank within entity < cap is kept
    order = np.lexsort((rng.random(len(groups)), -np.asarray(y, dtype=float), entity))
    codes = entity[order]
    starts = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]
    rank = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    keep = np.zeros(len(groups), dtype=bool)
    keep[order[rank < cap]] = True
    return keep


def _group_codes(groups: np.ndarray) -> np.ndarray:
    """Dense integer codes of entity ids (any hashable values, or rows of a 2-d key array)."""
    import pandas as pd

    arr = np.asarray(groups)
    frame = pd.DataFrame(arr if arr.ndim == 2 else arr.reshape(-1, 1))
    # pandas groups object keys (e.g. partner name + entity id) that np.unique(axis=0) cannot
    return frame.groupby(list(frame.columns), sort=True, dropna=False).ngroup().to_numpy()


@dataclass(frozen=True)
class PersonBlocks:
    """Training rows regrouped as one padded block per entity.

    X: ``(P, R, d)`` float32, y and w: ``(P, R)`` float32 (padding rows have w = 0), where P is the
    number of entities and R = the most rows any kept entity has (≤ the cap).
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    rows_kept: int
    rows_dropped: int


def person_blocks(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, cap: int, seed: int, sample_weight: np.ndarray | None = None
) -> PersonBlocks:
    """Cap each entity at ``cap`` rows (:func:`cap_rows_per_entity`) and pad its rows into one block.

    Weights are rescaled to mean 1 over the kept rows (as :func:`fedsim.training.make_loader` does).
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise PrivacyError(f"X, y: shapes {X.shape}, {y.shape}; allowed: (n, d) and (n,)")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != y.shape or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise PrivacyError(
            f"sample_weight: shape {w.shape}; allowed: ({len(y)},) finite weights >= 0 with a positive sum"
        )
    keep = cap_rows_per_entity(groups, y, cap=cap, seed=seed)
    codes = _group_codes(np.asarray(groups))[keep]
    Xk, yk, wk = X[keep], y[keep], w[keep]
    order = np.argsort(codes, kind="stable")
    codes, Xk, yk, wk = codes[order], Xk[order], yk[order], wk[order]
    _, dense = np.unique(codes, return_inverse=True)
    counts = np.bincount(dense)
    slot = np.arange(len(dense)) - np.repeat(np.r_[0, np.cumsum(counts)[:-1]], counts)
    P, R = len(counts), int(counts.max())
    bx = np.zeros((P, R, X.shape[1]), dtype=np.float32)
    by = np.zeros((P, R), dtype=np.float32)
    bw = np.zeros((P, R), dtype=np.float32)
    bx[dense, slot], by[dense, slot] = Xk, yk
    bw[dense, slot] = (wk / wk.mean()).astype(np.float32)
    return PersonBlocks(bx, by, bw, rows_kept=int(keep.sum()), rows_dropped=int((~keep).sum()))


class _Gathered(tuple):
    """A batch already gathered by index (one tensor per field), as ``BatchedTensorDataset`` returns it."""


@functools.cache
def _tensor_dataset_class() -> type:
    from torch.utils.data import TensorDataset

    class BatchedTensorDataset(TensorDataset):
        """A TensorDataset that gathers a whole batch with one index per tensor (``__getitems__``).

        PyTorch's default fetch indexes row by row and stacks; under Opacus' Poisson sampling that was
        a large share of a small model's step time.
        """

        def __getitems__(self, indices: list[int]) -> list[_Gathered]:
            import torch

            index = torch.as_tensor(indices, dtype=torch.long)
            return [_Gathered(t[index] for t in self.tensors)]

    return BatchedTensorDataset


def collate_person_blocks(batch: list[Any]) -> list[torch.Tensor]:
    """Batch → ``[x, y, w]`` with labels and weights flattened to ``(B·R,)`` (rows: ``(B,)``).

    Entity blocks: x ``(B, R, d)``. :func:`fedsim.training.fit` compares ``model(x).reshape(-1)`` with
    the labels, so labels and weights line up row by row while the model still sees one example per
    entity (Opacus takes dim 0, the entity, as the sample dimension).
    """
    from torch.utils.data import default_collate

    if len(batch) == 1 and isinstance(batch[0], _Gathered):
        xb, yb, wb = batch[0]
    else:
        xb, yb, wb = default_collate(batch)
    return [xb, yb.reshape(-1), wb.reshape(-1)]


# --------------------------------------------------------------------------------------------
# Accountant state carried across federated rounds
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountantState:
    """What one party must remember between rounds so ε accumulates (Opacus resets it per engine).

    history: the accountant's (σ, q, steps) list; noise_multiplier, sample_rate, delta: fixed in round
    one; planned_steps: the whole schedule (target-ε mode); rounds_done: completed rounds.
    """

    accountant: str
    history: History = ()
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    delta: float | None = None
    planned_steps: int | None = None
    total_rounds: int | None = None
    rounds_done: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON- and Flower-``ConfigRecord``-friendly form (scalars and flat lists; unset fields are
        left out); :meth:`from_dict` reverses it."""
        out: dict[str, Any] = {
            "accountant": self.accountant,
            "rounds_done": self.rounds_done,
            "history_sigma": [h[0] for h in self.history],
            "history_q": [h[1] for h in self.history],
            "history_steps": [h[2] for h in self.history],
        }
        for name in ("noise_multiplier", "sample_rate", "delta", "planned_steps", "total_rounds"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountantState:
        history = tuple(
            (float(s), float(q), int(n))
            for s, q, n in zip(
                data.get("history_sigma", []), data.get("history_q", []), data.get("history_steps", []), strict=True
            )
        )
        return cls(
            accountant=str(data["accountant"]),
            history=history,
            noise_multiplier=data.get("noise_multiplier"),
            sample_rate=data.get("sample_rate"),
            delta=data.get("delta"),
            planned_steps=data.get("planned_steps"),
            total_rounds=data.get("total_rounds"),
            rounds_done=int(data.get("rounds_done", 0)),
        )


@dataclass(frozen=True)
class DPLedger:
    """Everything to log about one party's DP training so far (units in each field's comment)."""

    epsilon: float  # ε spent over all rounds so far, at delta
    delta: float
    noise_multiplier: float  # σ (noise std = σ·C on the summed clipped gradients)
    max_grad_norm: float  # C, L2
    sample_rate: float  # q: Poisson probability that an entity is in a batch
    steps: int  # optimizer steps in this call
    total_steps: int  # steps over all rounds so far
    rounds: int  # rounds done (1 outside federation)
    accountant: str
    mode: str
    target_epsilon: float | None
    n_examples: int  # entities (or rows, ungrouped) in the training set
    rows_kept: int
    rows_dropped_by_cap: int
    cap: int | None
    unit: str
    extra: dict[str, float] = field(default_factory=dict)

    def as_metrics(self, *, suffix: str = "") -> dict[str, float]:
        """Numeric fields as MLflow metrics ``dp_<name><suffix>`` (e.g. suffix '.bank_1')."""
        values = {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "sigma": self.noise_multiplier,
            "max_grad_norm": self.max_grad_norm,
            "sample_rate": self.sample_rate,
            "steps": self.total_steps,
            "rounds": self.rounds,
            "examples": self.n_examples,
            "rows_kept": self.rows_kept,
            "rows_dropped_by_cap": self.rows_dropped_by_cap,
            "target_epsilon": math.nan if self.target_epsilon is None else self.target_epsilon,
            **self.extra,
        }
        return {f"dp_{k}{suffix}": float(v) for k, v in values.items()}

    def as_params(self) -> dict[str, str]:
        """Text fields as params: accountant, mode, unit of privacy."""
        return {"dp_accountant": self.accountant, "dp_mode": self.mode, "dp_unit": self.unit}


class PrivateFit(NamedTuple):
    """What :func:`make_private_fit` returns; unpack it or use the names."""

    report: FitReport
    state: AccountantState
    ledger: DPLedger


# --------------------------------------------------------------------------------------------
# DP-SGD through the shared loop
# --------------------------------------------------------------------------------------------
def check_private_model(model: nn.Module) -> None:
    """Raise :class:`PrivacyError` if Opacus cannot compute per-example gradients for ``model``.

    Uses Opacus' ``ModuleValidator`` (e.g. BatchNorm mixes examples in a batch, so it is refused).
    """
    from opacus.validators import ModuleValidator

    was_training = model.training
    model.train()
    try:
        errors = ModuleValidator.validate(model, strict=False)
    finally:
        model.train(was_training)
    if errors:
        problems = "; ".join(str(e) for e in errors)
        raise PrivacyError(
            f"model {type(model).__name__}: Opacus cannot train it with DP-SGD ({problems}); "
            "allowed: layers with per-example gradients (Linear, ReLU, …; no BatchNorm — "
            "opacus.validators.ModuleValidator.fix replaces it with GroupNorm)"
        )


def _round_seed(seed: int, round_index: int, stream: int) -> int:
    """A 32-bit seed per (seed, round, stream): fresh noise and fresh Poisson batches every round.

    Re-using one noise draw in two rounds would let the difference of two updates cancel it.
    """
    return int(np.random.SeedSequence([int(seed), int(round_index), int(stream)]).generate_state(1)[0])


def _build_loader(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None,
    sample_weight: np.ndarray | None,
    *,
    privacy: PrivacySettings,
    batch_size: int,
    cap_seed: int,
    sampling_seed: int,
) -> tuple[Any, np.ndarray, np.ndarray, PersonBlocks | None]:
    """Loader over entities (padded blocks) or rows, plus the (X, y) that fit() checks row counts on."""
    import torch
    from torch.utils.data import DataLoader

    from fedsim.training import make_loader

    if groups is None:
        X32, y32 = np.asarray(X, np.float32), np.asarray(y, np.float32)
        # built only to validate X, y and the weights with the shared loop's own checks
        make_loader(X32, y32, batch_size=batch_size, seed=sampling_seed, sample_weight=sample_weight)
        w = np.ones(len(y32)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        tensors = (X32, y32, (w / w.mean()).astype(np.float32))
        blocks = None
    else:
        blocks = person_blocks(
            X, y, np.asarray(groups), cap=privacy.max_rows_per_entity, seed=cap_seed, sample_weight=sample_weight
        )
        tensors = (blocks.X, blocks.y, blocks.w)
    dataset = _tensor_dataset_class()(*(torch.from_numpy(np.ascontiguousarray(t)) for t in tensors))
    # Opacus' DPDataLoader keeps this collate_fn and this generator (it drives Poisson sampling).
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate_person_blocks,
        generator=torch.Generator().manual_seed(sampling_seed),
    )
    if blocks is None:
        return loader, tensors[0], tensors[1], None
    # fit() only checks that its (X, y) have one row per example: give it one cheap row per entity.
    n = blocks.X.shape[0]
    return loader, np.zeros((n, 1), np.float32), blocks.y.max(axis=1), blocks


def _plan(
    state: AccountantState | None,
    *,
    privacy: PrivacySettings,
    n_examples: int,
    sample_rate: float,
    steps_per_call: int,
    total_rounds: int,
) -> AccountantState:
    """First round: fix δ and σ for the whole schedule. Later rounds: check nothing changed or ran over."""
    if state is not None:
        if state.accountant != privacy.accountant:
            raise PrivacyError(
                f"state.accountant = {state.accountant!r}, privacy.accountant = "
                f"{privacy.accountant!r}; allowed: the same accountant in every round"
            )
        if state.sample_rate is not None and not math.isclose(state.sample_rate, sample_rate):
            raise PrivacyError(
                f"sample rate {sample_rate:.6g} differs from round one's "
                f"{state.sample_rate:.6g}; allowed: the same training set and batch size in "
                "every round"
            )
        if state.total_rounds is not None and state.rounds_done >= state.total_rounds:
            raise PrivacyError(
                f"round {state.rounds_done + 1}: the privacy budget was planned for "
                f"{state.total_rounds} round(s); allowed: at most total_rounds rounds "
                "(more would overshoot the target ε)"
            )
        return state
    delta = privacy.delta if privacy.delta is not None else default_delta(n_examples)
    planned = steps_per_call * total_rounds
    if privacy.target_epsilon is not None:
        sigma = noise_for_target(
            target_epsilon=privacy.target_epsilon,
            delta=delta,
            sample_rate=sample_rate,
            steps=planned,
            accountant=privacy.accountant,
        )
    else:
        sigma = float(privacy.noise_multiplier or 0.0)  # one of the two modes is set
    return AccountantState(
        accountant=privacy.accountant,
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        delta=delta,
        planned_steps=planned,
        total_rounds=total_rounds if privacy.target_epsilon is not None else None,
    )


def _ledger(
    state: AccountantState,
    *,
    privacy: PrivacySettings,
    report: FitReport,
    n_examples: int,
    blocks: PersonBlocks | None,
    n_rows: int,
    seconds: float,
) -> DPLedger:
    """The ledger after a round: ε over the whole carried history, at the δ fixed in round one."""
    delta, sigma = float(state.delta or 0.0), float(state.noise_multiplier or 0.0)  # set by _plan
    sample_rate = float(state.sample_rate or 0.0)
    return DPLedger(
        epsilon=epsilon_spent(state.history, delta=delta, accountant=state.accountant),
        delta=delta,
        noise_multiplier=sigma,
        max_grad_norm=privacy.max_grad_norm,
        sample_rate=sample_rate,
        steps=report.steps,
        total_steps=sum(n for _, _, n in state.history),
        rounds=state.rounds_done,
        accountant=state.accountant,
        mode=privacy.mode,
        target_epsilon=privacy.target_epsilon,
        n_examples=n_examples,
        rows_kept=blocks.rows_kept if blocks else n_rows,
        rows_dropped_by_cap=blocks.rows_dropped if blocks else 0,
        cap=privacy.max_rows_per_entity if blocks else None,
        unit=unit_of_privacy(grouped=blocks is not None, cap=privacy.max_rows_per_entity),
        extra={"seconds": seconds},
    )


def make_private_fit(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    *,
    privacy: PrivacySettings,
    config: TrainConfig,
    seed: int,
    groups: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
    state: AccountantState | None = None,
    total_rounds: int = 1,
    reference_params: Sequence[np.ndarray] | None = None,
) -> PrivateFit:
    """Train ``model`` in place with DP-SGD through :func:`fedsim.training.fit`; return report, state, ledger.

    Args:
        model: a FRESH, unwrapped model ``(B, …, d) → (B, …)`` logits (build a new one every round:
            Opacus must never wrap a module twice). It is wrapped here, trained, and unwrapped again,
            so afterwards it is a plain module with the trained weights (no ``_module.`` prefix).
        X, y: rows ``(n, d)`` and 0/1 labels ``(n,)``.
        privacy: the DP settings (target-ε or noise mode).
        config: the shared training hyper-parameters; ``batch_size`` is the expected number of
            entities (rows, without ``groups``) per Poisson batch, so q = 1 / ceil(P / batch_size).
        seed: seeds the row cap (same every round) and, with the round number, the noise;
            ``config.seed`` with the round number seeds Poisson sampling.
        groups: ``(n,)`` entity id per row (or ``(n, k)`` composite keys, e.g. partner + entity): the
            unit of privacy. None: each row is its own unit (only for data with one row per person).
        sample_weight: ``(n,)`` non-negative row weights.
        state: the party's :class:`AccountantState` from the previous round (None in round one).
        total_rounds: rounds planned for this party (target-ε mode budgets them all up front).
        reference_params: FedProx anchor, passed on to ``fit``.
    """
    import torch
    from opacus import PrivacyEngine

    from fedsim.training import fit, make_optimizer

    started = time.perf_counter()
    if privacy is None:
        raise PrivacyError(
            "privacy: no record-level mode; allowed: settings with target_epsilon or "
            "noise_multiplier (train with fedsim.training.fit when there is no DP)"
        )
    if isinstance(total_rounds, bool) or not isinstance(total_rounds, int) or total_rounds < 1:
        raise PrivacyError(f"total_rounds: {total_rounds!r}; allowed: an integer >= 1")
    check_private_model(model)
    round_index = state.rounds_done if state is not None else 0
    loader, X_check, y_check, blocks = _build_loader(
        X,
        y,
        groups,
        sample_weight,
        privacy=privacy,
        batch_size=config.batch_size,
        cap_seed=seed,
        sampling_seed=_round_seed(config.seed, round_index, 1),
    )
    sample_rate = 1.0 / len(loader)
    steps_per_call = int(1 / sample_rate) * config.epochs  # Opacus' Poisson sampler: int(1/q) steps per epoch
    plan = _plan(
        state,
        privacy=privacy,
        n_examples=len(loader.dataset),
        sample_rate=sample_rate,
        steps_per_call=steps_per_call,
        total_rounds=total_rounds,
    )

    with warnings.catch_warnings():
        # seeded on purpose, see the module doc
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=plan.accountant, secure_mode=False)
    engine.accountant.history = [tuple(h) for h in plan.history]  # carry ε across rounds
    dp_model, dp_optimizer, dp_loader = engine.make_private(
        module=model,
        optimizer=make_optimizer(model, config),
        data_loader=loader,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm,
        poisson_sampling=True,
        noise_generator=torch.Generator().manual_seed(_round_seed(seed, round_index, 2)),
    )
    try:
        with warnings.catch_warnings():
            # Opacus hooks fire on module outputs when inputs need no grad: expected, harmless
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            report = fit(
                dp_model,
                X_check,
                y_check,
                config=config,
                optimizer=dp_optimizer,
                data_loader=dp_loader,
                reference_params=reference_params,
            )
    finally:
        dp_model.to_standard_module()  # hooks and per-sample grads off: `model` is a plain module again
    history = tuple((float(s), float(q), int(n)) for s, q, n in engine.accountant.history)
    new_state = replace(plan, history=history, rounds_done=plan.rounds_done + 1)
    ledger = _ledger(
        new_state,
        privacy=privacy,
        report=report,
        n_examples=len(loader.dataset),
        blocks=blocks,
        n_rows=len(y),
        seconds=time.perf_counter() - started,
    )
    return PrivateFit(report, new_state, ledger)


def _no_practical_bound(eps_text: str, *, per_person: bool, language: str) -> str:
    """The sentence of :func:`explain_epsilon` for an ε whose odds multiplier passes :data:`NO_PRACTICAL_BOUND_ODDS`."""
    unit = f" ({PERSON_WORDS[language]})" if per_person else ""
    if language == "en":
        return (
            f"ε = {eps_text}{unit}: a bound this large protects nobody in practice; it lets an attacker's odds that a "
            "given person's data was used grow more than a billion-fold (×e^ε)."
        )
    return (
        f"ε = {eps_text}{unit}: een grens die zo ruim is, beschermt in de praktijk niemand; de kans (odds) dat een "
        "aanvaller vaststelt dat iemands gegevens zijn gebruikt, mag meer dan een miljard keer zo groot worden (×e^ε)."
    )
