"""The experiment file's schema: frozen pydantic models, validated once, with errors that name the field.

:class:`ExperimentSpec` is one experiment file (world, split, regimes × coalitions × models × seeds × ε,
training, privacy, federation and metrics settings). Regime names are checked against the regime
registry (:mod:`fedsim.regimes.registry`), and a regime refuses federation settings it cannot honour.
Loading YAML and translating pydantic's errors: :mod:`fedsim.experiment.loading`; grid cells:
:mod:`fedsim.experiment.grid`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from fedsim.errors import FedsimError
from fedsim.privacy import DEFAULT_ROWS_PER_ENTITY, PrivacySettings
from fedsim.regimes import BUILTIN_REGIMES, get_regime, regime_names
from fedsim.settings import LABEL_HOLDER_PATTERN, FederationSettings
from synthetic.schema import partner_block

if TYPE_CHECKING:
    from synthetic.config import WorldConfig

Model = Literal["logistic", "mlp", "gbt"]
WorldPreset = Literal["small", "default", "known-answer", "placebo"]

REGIMES: tuple[str, ...] = BUILTIN_REGIMES
"""The regimes fedsim ships. Valid names are the registry's (:func:`fedsim.regimes.regime_names`),
which a study may extend with :func:`fedsim.regimes.register_regime`."""

MODELS: tuple[str, ...] = get_args(Model)
"""Allowed model families. ``gbt`` is the scikit-learn gradient-boosted baseline (no DP-SGD)."""

WORLD_PRESETS: tuple[str, ...] = get_args(WorldPreset)
"""World presets the generator offers (synthetic/presets)."""

NON_DP_MODELS: frozenset[str] = frozenset({"gbt"})
"""Models that cannot be trained with DP-SGD; they only run at ε = ∞."""

ALL: Literal["all"] = "all"
_SLUG = r"^[a-z0-9_-]+$"
_PATTERN_WORDS = {
    _SLUG: "only lowercase letters, digits, '_' and '-'",
    LABEL_HOLDER_PATTERN: "a partner kind or name: lowercase letters, digits and '_' (e.g. bank, bank_2)",
}
_UNION_TAGS = {"word", "list"}


class ExperimentError(FedsimError):
    """A bad experiment file or spec (a ValueError); the message names field path, value and allowed."""


class _Spec(BaseModel):
    """Frozen, strict-keyed base. Build specs with :func:`parse_experiment` / :func:`load_experiment`,
    which turn pydantic's errors into :class:`ExperimentError` (pydantic calls a custom ``__init__``
    for nested models too, so the translation cannot live in the constructor)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Slug = Annotated[str, Field(pattern=_SLUG)]


def _registered(value: str) -> str:
    """A regime name must be registered (built in, or added by the study with register_regime)."""
    names = regime_names()
    if value not in names:
        raise PydanticCustomError(
            "fedsim_regime",
            "not a registered regime; allowed: {allowed}",
            {"allowed": ", ".join(repr(n) for n in names)},
        )
    return value


RegimeName = Annotated[str, AfterValidator(_registered)]
MAX_SEED = 2**32 - 1
"""Largest seed: scikit-learn's ``random_state`` (the gbt model) and numpy's legacy seeding need < 2³²."""
Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]
PositiveDays = Annotated[int, Field(ge=1, strict=True)]
NonNegativeDays = Annotated[int, Field(ge=0, strict=True)]
Coalition = Annotated[tuple[Slug, ...], Field(min_length=1)]


LATTICE: Literal["lattice"] = "lattice"
MAX_LATTICE_PLAYERS = 16
"""Most partners a lattice may name (the value operators are dense over 2^n coalitions)."""


class LatticeSpec(_Spec):
    """``coalitions: lattice`` or ``{lattice: [partners], max_exact: 5, permutations: 20}``: the coalition game.

    Up to ``max_exact`` partners, every non-empty subset (2^n − 1) is run, for exact Shapley and Banzhaf values.
    Above it, the coalitions are the prefixes of ``permutations`` random orders of the partners (permutation
    sampling, Castro, Gómez & Tejada 2009), enough for an unbiased Shapley estimate
    (:mod:`fedsim.evaluation.value`)."""

    lattice: tuple[Slug, ...] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LATTICE_PLAYERS,
        description="Partners of the game, in the order the value tables list them; default: every partner of "
        f"the world (at most {MAX_LATTICE_PLAYERS}).",
    )
    max_exact: int = Field(
        default=5,
        ge=1,
        le=MAX_LATTICE_PLAYERS,
        strict=True,
        description="Largest number of partners whose full lattice is run; above it, permutation sampling. "
        "1 <= int <= 16. Default 5 (31 coalitions).",
    )
    permutations: int = Field(
        default=20,
        ge=1,
        le=10_000,
        strict=True,
        description="Random orders of the partners sampled above max_exact; their prefixes are the coalitions "
        "run. 1 <= int <= 10000. Default 20.",
    )
    permutation_seed: Seed = Field(default=0, description="Seed of the sampled orders; integer >= 0. Default 0.")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        """Unknown keys named here: the union tag in pydantic's error path hides this model from the loader."""
        if isinstance(data, Mapping):
            for key in data:
                if key not in cls.model_fields:
                    raise _fail(
                        f"coalitions.{key}", data[key], f"unknown key; allowed keys here: {', '.join(cls.model_fields)}"
                    )
        return data

    @field_validator("lattice")
    @classmethod
    def _distinct(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            _unique(value, path="coalitions.lattice")
        return value

    def players(self, partners: Sequence[str]) -> tuple[str, ...]:
        """The game's partners: the listed ones, or every partner of the world in its order."""
        return tuple(self.lattice) if self.lattice is not None else tuple(partners)

    def exact(self, partners: Sequence[str]) -> bool:
        """Whether the full lattice is run (at most ``max_exact`` partners)."""
        return len(self.players(partners)) <= self.max_exact

    def coalitions(self, partners: Sequence[str]) -> list[tuple[str, ...]]:
        """The coalitions to run (each in player order): the lattice, or the sampled orders' prefixes."""
        from fedsim.evaluation.value import lattice, members, permutation_coalitions, sample_permutations

        players = self.players(partners)
        if self.exact(partners):
            return lattice(players)
        orders = sample_permutations(len(players), self.permutations, self.permutation_seed)
        masks = sorted(permutation_coalitions(orders), key=lambda m: (m.bit_count(), m))
        return [members(m, players) for m in masks]


def _coalitions_kind(value: Any) -> str:
    if value == LATTICE or isinstance(value, Mapping | LatticeSpec):
        return "lattice"
    return "word" if isinstance(value, str) else "list"


def _lattice_word(value: Any) -> Any:
    return {} if value == LATTICE else value


Coalitions = Annotated[
    Annotated[Literal["all"], Tag("word")]
    | Annotated[tuple[Coalition, ...], Tag("list")]
    | Annotated[LatticeSpec, BeforeValidator(_lattice_word), Tag("lattice")],
    Discriminator(_coalitions_kind),
]


def _fail(path: str, value: Any, problem: str) -> PydanticCustomError:
    """An error that carries its own field path (for checks that span several fields)."""
    return PydanticCustomError(
        "fedsim", "{path} = {value}: {problem}", {"path": path, "value": repr(value), "problem": problem}
    )


def _unique(values: Sequence[Any], *, path: str) -> None:
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise _fail(f"{path}[{i}]", value, "appears twice; list each value once")
        seen.add(value)


RegimeSettings = dict[str, JsonValue]
"""One regime's settings as stored in a spec: every field of its ``settings_model``, defaults filled in."""
_KNOWN_ERRORS = frozenset(get_args(ErrorType))


def regimes_with_settings() -> list[str]:
    """Registered regimes that declare a ``settings_model``."""
    return [n for n in regime_names() if get_regime(n).settings_model is not None]


def validate_regime_settings(regime: str, raw: Mapping[str, Any] | None) -> RegimeSettings:
    """``raw`` checked against the regime's ``settings_model``: all its fields, defaults filled in.

    Raised inside a field validator, the errors keep their own path under the regime's name (e.g.
    ``regime_settings.mo_alerts.min_count``), so the loader names field, value and what is allowed."""
    model = get_regime(regime).settings_model
    if model is None:
        raise _fail(
            f"regime_settings.{regime}",
            raw,
            f"regime {regime} has no settings; allowed: settings of {', '.join(regimes_with_settings()) or 'none'}",
        )
    try:
        return dict(model.model_validate({} if raw is None else raw).model_dump(mode="json"))
    except ValidationError as err:
        raise ValidationError.from_exception_data(
            err.title, [_under(regime, e) for e in err.errors(include_url=False)]
        ) from None


def _under(regime: str, e: Any) -> InitErrorDetails:
    """One settings error re-rooted under the regime's name (a custom error type keeps its context)."""
    loc = (regime, *e["loc"])
    ctx = dict(e.get("ctx") or {})
    if e["type"] in _KNOWN_ERRORS:
        return InitErrorDetails(type=e["type"], loc=loc, input=e["input"], ctx=ctx)
    custom = PydanticCustomError(e["type"], "{message}", {**ctx, "message": e["msg"]})
    return InitErrorDetails(type=custom, loc=loc, input=e["input"])


def settings_defaults(regime: str) -> RegimeSettings:
    """The regime's settings at their defaults (regimes without settings: an empty mapping)."""
    model = get_regime(regime).settings_model
    return {} if model is None else dict(model().model_dump(mode="json"))


class WorldSpec(_Spec):
    """Which world to generate: a preset or a world config file, plus a seed and overrides."""

    preset: WorldPreset | None = Field(
        default=None,
        description="Name of a world preset; allowed: small, default, known-answer, placebo. "
        "Exactly one of preset / config. Default: none.",
    )
    config: Path | None = Field(
        default=None,
        description="Path to a world config YAML, relative to the experiment file. Exactly one of "
        "preset / config. Its content (not its path) enters the config hash. Default: none.",
    )
    seed: Seed = Field(description="Seed of the world generator; integer 0 <= seed < 2**32. Required.")
    overrides: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="World config fields on top of the preset/config, nested as in a world config "
        "(e.g. {partners: {banks: 2}}), plus the shorthands persons (count) and days (horizon) that "
        "apply to either world mode, as `fedsim world generate --persons/--days` do. Validated by "
        "synthetic.config when the experiment is loaded. Default: {}.",
    )
    secret_file: Path | None = Field(
        default=None,
        description="Path to the world secret (a file of >= 32 random bytes), relative to the experiment file; "
        "FEDSIM_WORLD_SECRET_FILE is used when unset. With a secret every random stream and the join keys depend "
        "on it (partner exports need one). Only its fingerprint enters the config hash. Default: none.",
    )

    @field_validator("config", "secret_file")
    @classmethod
    def _resolve_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = Path((info.context or {}).get("base_dir", "."))
        path = value if value.is_absolute() else base / value
        if not path.is_file():
            raise _fail(f"world.{info.field_name}", str(value), f"no such file (looked for {path.resolve()})")
        return path.resolve()

    @model_validator(mode="after")
    def _one_source(self) -> WorldSpec:
        if (self.preset is None) == (self.config is None):
            raise _fail(
                "world",
                {"preset": self.preset, "config": self.config},
                "give exactly one of preset (small, default, known-answer, placebo) or config",
            )
        return self

    def world_config(self) -> WorldConfig:
        """The validated world config: preset or file, then the overrides (synthetic.config)."""
        from synthetic.config import build_config, shorthand_overrides

        rest = {k: v for k, v in self.overrides.items() if k not in _SHORTHANDS}
        # Shorthand values are checked by the world config itself (population.persons, ...).
        short_args: dict[str, Any] = {k: v for k, v in self.overrides.items() if k in _SHORTHANDS}
        short = shorthand_overrides(**short_args)
        return build_config(preset=self.preset, config_file=self.config, overrides=_merge(short, rest))

    def content_digest(self) -> str:
        """sha256 (hex) of the fully resolved world config (preset/file + overrides); enters the config
        hash, so a moved file or an equivalent preset gives the same digest, an edited one does not."""
        resolved = _canonical_json(self.world_config().model_dump(mode="json"))
        return hashlib.sha256(resolved.encode()).hexdigest()


_SHORTHANDS = ("persons", "days")


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict merge; ``extra`` wins."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        out[key] = _merge(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    return out


def world_days(config: WorldConfig) -> int:
    """Horizon of a world config in days (the known-answer mode keeps its own)."""
    return config.known_answer.days if config.mode == "known_answer" else config.population.days


class SplitSpec(_Spec):
    """Temporal split, in days from the world's start: train | gap | test | second test."""

    train_days: PositiveDays = Field(description="Length of the training window, days; integer >= 1.")
    gap_days: NonNegativeDays = Field(
        description="Days between training and test windows, so that fraud reported late is not "
        "used before it would be known; integer >= 0."
    )
    test_days: PositiveDays = Field(description="Length of the test window, days; integer >= 1.")
    second_test_days: NonNegativeDays = Field(
        default=0,
        description="Length of a second test window right after the first (drift); integer >= 0; 0 = none. Default 0.",
    )

    @property
    def total_days(self) -> int:
        """Days the split needs from the world, from day 0 to the end of the last window."""
        return self.train_days + self.gap_days + self.test_days + self.second_test_days

    def windows(self) -> dict[str, tuple[int, int]]:
        """Half-open day ranges ``[start, end)`` per window: train, gap, test (and second_test)."""
        t = self.train_days
        g = t + self.gap_days
        e = g + self.test_days
        out = {"train": (0, t), "gap": (t, g), "test": (g, e)}
        if self.second_test_days:
            out["second_test"] = (e, e + self.second_test_days)
        return out


class TrainingSpec(_Spec):
    """Training settings shared by every torch model of the grid.

    Non-private central training runs to convergence (issue 9): early stopping on the end of the training
    window (``patience``, at most ``max_epochs``), then a refit on all training rows for the chosen epoch
    count (Goodfellow, Bengio & Courville 2016, §7.8). ``epochs`` is the fixed budget where early stopping
    cannot be used: DP-SGD (the accountant needs the step count up front) and the local epochs of each
    federated round and of split learning.
    """

    epochs: int = Field(
        default=5,
        ge=1,
        le=10_000,
        strict=True,
        description="Fixed epoch budget: DP-SGD training, and local epochs per round when federated; "
        "1 <= int <= 10000. Default 5.",
    )
    max_epochs: int = Field(
        default=200,
        ge=1,
        le=10_000,
        strict=True,
        description="Non-private central training: most epochs early stopping may run; int >= 1. Default 200.",
    )
    patience: int = Field(
        default=5,
        ge=1,
        le=10_000,
        strict=True,
        description="Non-private central training: epochs without a validation-loss improvement before "
        "stopping; int >= 1. Default 5.",
    )
    refit: bool = Field(
        default=True,
        strict=True,
        description="Non-private central training: after early stopping, retrain on all training rows "
        "(validation slice included) for the best epoch count; false keeps the best epoch's weights "
        "(trained without the latest rows). Default true.",
    )
    batch_size: int = Field(
        default=512, ge=1, le=10_000_000, strict=True, description="Rows per mini-batch; 1 <= int <= 1e7. Default 512."
    )
    learning_rate: float = Field(
        default=0.01,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="Optimizer step size; 0 < float <= 10. Default 0.01.",
    )
    negative_rate: float = Field(
        default=0.1,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of legitimate entity-days kept for training (recorded with each run); "
        "0 < rate <= 1. Evaluation always uses every scored entity-day. Default 0.1.",
    )


Epsilon = Annotated[float, Field(gt=0, allow_inf_nan=True)]


Sigma = Annotated[float, Field(gt=0, le=1e4, allow_inf_nan=False)]


class PrivacySpec(_Spec):
    """Differential privacy: a DP-SGD sweep (target ε, or noise multiplier σ, per run) and its settings.

    Record-level DP-SGD runs inside every party (fedsim.privacy); the unit of privacy is the partner
    entity (a person at that partner), each capped at ``max_rows_per_entity`` rows per training set.
    """

    epsilon: tuple[Epsilon, ...] = Field(
        default=(math.inf,),
        min_length=1,
        description="Target-ε mode: ε values, each a float > 0 or inf (= no DP). One run per value; "
        "Opacus picks the noise to end at (or under) ε. Default [inf].",
    )
    noise_multiplier: tuple[Sigma, ...] | None = Field(
        default=None,
        min_length=1,
        description="Noise mode: σ values (noise std / clipping norm), each 0 < σ <= 1e4; one run each, ε is "
        "reported after training. Give either epsilon or noise_multiplier, not both. Default: none.",
    )
    delta: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="δ of every DP run, 0 < δ < 1. Default none = 1/(10·n) per training set, n = its "
        "entities (persons).",
    )
    max_grad_norm: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="C: per-entity L2 gradient clipping norm; > 0. Default 1.",
    )
    accountant: Literal["prv", "rdp"] = Field(default="prv", description="Opacus accountant: prv or rdp. Default prv.")
    max_rows_per_entity: int = Field(
        default=DEFAULT_ROWS_PER_ENTITY,
        ge=1,
        le=10_000,
        strict=True,
        description="Cap on one entity's rows per training set (its positive rows kept first); int >= 1. "
        f"Default {DEFAULT_ROWS_PER_ENTITY}.",
    )

    @field_validator("epsilon")
    @classmethod
    def _distinct(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        _unique(value, path="privacy.epsilon")
        return value

    @field_validator("noise_multiplier")
    @classmethod
    def _distinct_sigma(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None:
            _unique(value, path="privacy.noise_multiplier")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> PrivacySpec:
        if self.noise_multiplier is not None and "epsilon" in self.model_fields_set:
            raise _fail(
                "privacy",
                {"epsilon": list(self.epsilon), "noise_multiplier": list(self.noise_multiplier)},
                "give epsilon (target-ε mode: Opacus picks the noise) or noise_multiplier (noise mode: "
                "ε is reported), not both",
            )
        return self

    def points(self) -> list[tuple[float, float | None]]:
        """(target ε, σ) per sweep point: (ε, None) in target-ε mode, (inf, σ) in noise mode."""
        if self.noise_multiplier is not None:
            return [(math.inf, sigma) for sigma in self.noise_multiplier]
        return [(eps, None) for eps in self.epsilon]

    def settings(self, *, epsilon: float, noise_multiplier: float | None) -> PrivacySettings | None:
        """The cell's DP settings, or None when the cell trains without any DP."""
        target = None if math.isinf(epsilon) else epsilon
        if target is None and noise_multiplier is None:
            return None
        return PrivacySettings(
            target_epsilon=target,
            noise_multiplier=noise_multiplier,
            delta=self.delta,
            max_grad_norm=self.max_grad_norm,
            accountant=self.accountant,
            max_rows_per_entity=self.max_rows_per_entity,
        )


FederationSpec = FederationSettings
"""The experiment's ``federation:`` section: :class:`fedsim.settings.FederationSettings` (one source).
Its field names and defaults enter the config hash of every federated cell."""


Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Hours = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


Scale = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
CALIBRATED_WORDS = (
    "multiples of the calibrated alert capacity (fedsim.evaluation.alerts: bank 20, telco 5, marketplace 10 "
    "alerts/day per 100k customers, × the world's prevalence multiplier); 1 = calibrated"
)


def _refuse_old_field(data: Any, old: str, new: str, example: str) -> None:
    """The fraction-of-entities capacity fields were replaced by multiples of the calibrated profile (issue 9)."""
    if isinstance(data, Mapping) and old in data:
        raise _fail(
            old,
            data[old],
            f"no longer a field: capacities are now {new}, {CALIBRATED_WORDS}; e.g. {example}",
        )


class MetricsSpec(_Spec):
    """What the evaluation computes for each run (see evaluation.md §2)."""

    capacity_scales: tuple[Scale, ...] = Field(
        default=(0.25, 0.5, 1.0, 2.0, 4.0),
        min_length=1,
        description=f"Alert capacities to evaluate, as {CALIBRATED_WORDS}; each 0 < scale <= 1000. "
        "Default [0.25, 0.5, 1, 2, 4].",
    )
    horizons_h: tuple[Hours, ...] = Field(
        default=(0, 1, 6, 24, 72),
        min_length=1,
        description="Early-detection horizons h, hours before the first irreversible money-out; "
        "each 0 <= h <= 1e6. Default [0, 1, 6, 24, 72].",
    )
    latencies_h: tuple[Hours, ...] = Field(
        default=(0, 1, 4),
        min_length=1,
        description="Intervention latency Δ after an alert, hours; each 0 <= Δ <= 1e6. Default [0, 1, 4].",
    )
    interdiction: tuple[Fraction, ...] = Field(
        default=(1.0, 0.7),
        min_length=1,
        description="Interdiction success ρ: share of money-outs after t_alert + Δ that is stopped; "
        "each 0 < ρ <= 1. Default [1.0, 0.7].",
    )
    bootstrap: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        strict=True,
        description="Case-level cluster-bootstrap resamples for the 95% CIs; 1 <= int <= 1e6 "
        "(evaluation.md asks >= 1000; use fewer only for smoke tests). Default 1000.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_fractions(cls, data: Any) -> Any:
        _refuse_old_field(data, "capacities", "metrics.capacity_scales", "capacity_scales: [0.25, 0.5, 1, 2, 4]")
        return data

    @model_validator(mode="after")
    def _distinct(self) -> MetricsSpec:
        for name in ("capacity_scales", "horizons_h", "latencies_h", "interdiction"):
            _unique(getattr(self, name), path=f"metrics.{name}")
        return self


PRIMARY_METRICS = (
    "ed_h<h>",
    "ap",
    "lift",
    "detected",
    "recall",
    "precision",
    "prevented_eur_d<Δ>_r<ρ>",
    "prevented_share_d<Δ>_r<ρ>",
)
"""Primary outcomes, named as fedsim.evaluation flattens them (without the ``_k<k>`` suffix:
the capacity is its own field). h, Δ, ρ must be values listed under ``metrics``."""
_PRIMARY_RE = re.compile(
    r"^(?:ed_h(?P<h>[0-9.]+)|ap|lift|detected|recall|precision"
    r"|prevented_(?:eur|share)_d(?P<d>[0-9.]+)_r(?P<r>[0-9.]+))$"
)


class PrimarySpec(_Spec):
    """The one pre-declared primary contrast of the experiment (evaluation.md §3)."""

    metric: str = Field(
        description="Primary outcome: ed_h<h> (share of cases alerted >= h hours before the money "
        "left), ap, lift, detected, recall, precision, prevented_eur_d<Δ>_r<ρ> or "
        "prevented_share_d<Δ>_r<ρ>; h, Δ, ρ from metrics.horizons_h / latencies_h / interdiction."
    )
    capacity_scale: Scale = Field(
        default=1.0,
        description=f"Alert capacity of the contrast, one of metrics.capacity_scales ({CALIBRATED_WORDS}). Default 1.",
    )
    contrast: tuple[str, str] = Field(
        description="[A, B]: the primary comparison A − B; two different regimes of the experiment."
    )
    min_seeds: int = Field(
        default=5,
        ge=1,
        le=1000,
        strict=True,
        description="Training seeds the primary contrast needs (issue 9: at least 5); `fedsim compare` warns "
        "in its output when fewer are present. Default 5.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_fraction(cls, data: Any) -> Any:
        _refuse_old_field(data, "capacity", "primary.capacity_scale", "capacity_scale: 1")
        return data


class ExperimentSpec(_Spec):
    """One experiment file: a world, a split, and the grid of regimes × coalitions × models × seeds × ε."""

    name: Slug = Field(description="MLflow experiment name; lowercase letters, digits, '_' and '-'.")
    description: str = Field(default="", description="Free text for the report; not part of any hash.")
    world: WorldSpec = Field(description="The world every run of the experiment uses.")
    split: SplitSpec = Field(description="Temporal train | gap | test split, days.")
    regimes: tuple[RegimeName, ...] = Field(
        min_length=1,
        description="Regimes to run; allowed: the registered regimes (built in: status_quo, siloed, watchlist, "
        "reports, pooled, pooled_oracle, horizontal, vertical, hybrid, rules, mo_alerts; a study may register "
        "more).",
    )
    regime_settings: dict[RegimeName, dict[str, JsonValue]] = Field(
        default_factory=dict,
        description="Per-regime settings, {regime: {setting: value}}, e.g. {mo_alerts: {min_count: 20}}; "
        "allowed: regimes of this experiment that declare settings (their settings_model documents each field "
        "and default). A regime's settings enter the config hash of its own cells only. Default {}.",
    )
    coalitions: Coalitions = Field(
        default=ALL,
        description="List of coalitions (each a list of partner names of the world), the word "
        "'all' = one coalition of every partner, or 'lattice' / {lattice: [partners], max_exact: 5, "
        "permutations: 20} = every non-empty subset (permutation sampling above max_exact), for `fedsim value`. "
        "Default 'all'.",
    )
    models: tuple[Model, ...] = Field(min_length=1, description="Model families; allowed: logistic, mlp, gbt.")
    seeds: tuple[Seed, ...] = Field(
        min_length=1, description="Training seeds, one run each; integers 0 <= seed < 2**32 (>= 3 advised)."
    )
    training: TrainingSpec = Field(default_factory=TrainingSpec, description="Shared training settings.")
    privacy: PrivacySpec = Field(default_factory=PrivacySpec, description="DP sweep; default no DP.")
    federation: FederationSpec = Field(
        default_factory=FederationSpec, description="Federated-regime settings; default 5 rounds FedAvg."
    )
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Evaluation settings.")
    primary: PrimarySpec | None = Field(
        default=None,
        description="Pre-declared primary contrast; required when the experiment has two or more regimes.",
    )

    @field_validator("regime_settings")
    @classmethod
    def _valid_settings(cls, value: dict[str, dict[str, JsonValue]]) -> dict[str, dict[str, JsonValue]]:
        return {name: validate_regime_settings(name, raw) for name, raw in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        _unique(self.regimes, path="regimes")
        self._check_regime_settings()
        self._check_federation()
        _unique(self.models, path="models")
        _unique(self.seeds, path="seeds")
        if isinstance(self.coalitions, tuple):
            for i, coalition in enumerate(self.coalitions):
                _unique(coalition, path=f"coalitions[{i}]")
        self._check_world_and_split()
        self._check_primary()
        return self

    def _check_regime_settings(self) -> None:
        """Settings of a regime the experiment does not run would be silently ignored: refused."""
        for name, value in self.regime_settings.items():
            if name not in self.regimes:
                raise _fail(
                    f"regime_settings.{name}",
                    value,
                    f"{name} is not a regime of this experiment; allowed: settings of its regimes {list(self.regimes)}",
                )

    def settings_of(self, regime: str) -> RegimeSettings | None:
        """The settings a cell of ``regime`` carries: all fields of its settings model (the experiment's values,
        else the defaults), or None for a regime without settings."""
        if get_regime(regime).settings_model is None:
            return None
        return dict(self.regime_settings.get(regime) or settings_defaults(regime))

    def _check_federation(self) -> None:
        """A regime refuses federation settings it would otherwise silently ignore."""
        for name in self.regimes:
            for key, value in get_regime(name).refuse_settings(self.federation).items():
                default = FederationSettings.model_fields[key].default
                raise _fail(
                    f"federation.{key}",
                    value,
                    f"regime {name} cannot honour it (split learning has no {key}); allowed: the default "
                    f"{default!r}, or run {name} in an experiment of its own",
                )

    def _check_world_and_split(self) -> None:
        from synthetic.config import ConfigError

        try:
            config = self.world.world_config()
        except ConfigError as err:
            lines = str(err).replace("\n", "\n      ")
            raise _fail(
                "world",
                self.world.model_dump(mode="json", exclude_defaults=True),
                f"the world generator refuses this world:\n      {lines}",
            ) from None
        self._check_label_holder(config.partner_kinds())
        days = world_days(config)
        if self.split.total_days > days:
            raise _fail(
                "split",
                self.split.model_dump(),
                f"train + gap + test + second_test = "
                f"{self.split.total_days} days; allowed: at most the world's {days} days",
            )

    def _check_label_holder(self, kinds: Mapping[str, str]) -> None:
        """``federation.label_holder`` names a kind or a partner of the world (checked when a split-network
        regime reads it, or when it was changed from the default)."""
        holder = self.federation.label_holder
        reads = any(get_regime(name).split_network for name in self.regimes)
        if not reads and "label_holder" not in self.federation.model_fields_set:
            return
        allowed = label_holder_choices(kinds)
        if holder not in allowed:
            raise _fail(
                "federation.label_holder",
                holder,
                f"not a partner kind or name of this world; allowed: {', '.join(allowed)}",
            )

    def _check_primary(self) -> None:
        p = self.primary
        if p is None:
            if len(self.regimes) >= 2:
                raise _fail(
                    "primary",
                    None,
                    "missing; an experiment with several regimes pre-declares "
                    "one primary contrast {metric, capacity_scale, contrast: [A, B]}",
                )
            return
        if not _is_primary_metric(p.metric, self.metrics):
            m = self.metrics
            raise _fail(
                "primary.metric",
                p.metric,
                f"allowed: {', '.join(PRIMARY_METRICS)} with h in {_numbers(m.horizons_h)}, "
                f"Δ in {_numbers(m.latencies_h)}, ρ in {_numbers(m.interdiction)}",
            )
        if p.capacity_scale not in self.metrics.capacity_scales:
            raise _fail(
                "primary.capacity_scale",
                p.capacity_scale,
                f"allowed: one of metrics.capacity_scales {_numbers(self.metrics.capacity_scales)}",
            )
        for i, regime in enumerate(p.contrast):
            if regime not in self.regimes:
                raise _fail(
                    f"primary.contrast[{i}]", regime, f"allowed: a regime of this experiment {list(self.regimes)}"
                )
        if p.contrast[0] == p.contrast[1]:
            raise _fail("primary.contrast", list(p.contrast), "compare two different regimes")

    def validate_against(self, partners: Sequence[str], *, horizon_days: int | None = None) -> None:
        """Check the spec against a built world; raise :class:`ExperimentError` on a mismatch.

        partners: the world's partner names. horizon_days: the world's length in days, if known.
        """
        known = list(partners)
        if not known:
            raise ExperimentError("the world has no partners; nothing to run")
        problems: list[str] = []
        if isinstance(self.coalitions, LatticeSpec) and self.coalitions.lattice is not None:
            problems = [
                f"coalitions.lattice[{j}] = {name!r}: not a partner of this world; allowed: {', '.join(known)}"
                for j, name in enumerate(self.coalitions.lattice)
                if name not in known
            ]
        if isinstance(self.coalitions, tuple):
            problems = [
                f"coalitions[{i}][{j}] = {name!r}: not a partner of this world; allowed: {', '.join(known)}"
                for i, coalition in enumerate(self.coalitions)
                for j, name in enumerate(coalition)
                if name not in known
            ]
        if problems:
            raise ExperimentError(f"invalid experiment {self.name!r}:\n  - " + "\n  - ".join(problems))
        if horizon_days is not None and self.split.total_days > horizon_days:
            raise ExperimentError(
                f"invalid experiment {self.name!r}:\n  - split = {self.split.total_days} days: train + gap "
                f"+ test + second_test must fit in the world's {horizon_days} days"
            )

    def coalition_list(self, partners: Sequence[str]) -> list[tuple[str, ...]]:
        """The coalitions as sorted tuples, with 'all' resolved against the world's partners."""
        if self.coalitions == ALL:
            return [tuple(sorted(partners))]
        if isinstance(self.coalitions, LatticeSpec):
            return [tuple(sorted(c)) for c in self.coalitions.coalitions(partners)]
        return [tuple(sorted(c)) for c in self.coalitions]

    @property
    def lattice(self) -> LatticeSpec | None:
        """The coalition game's settings when ``coalitions`` is a lattice, else None."""
        return self.coalitions if isinstance(self.coalitions, LatticeSpec) else None


def label_holder_choices(kinds: Mapping[str, str]) -> list[str]:
    """Values ``federation.label_holder`` may take in a world of ``kinds`` (partner → kind): each feature
    block (the kind; for a known-answer world's signal partners the name without its number, as
    :attr:`fedsim.features.PartnerFeatures.block`), then each partner name."""
    blocks = [partner_block(name) for name in kinds]
    return list(dict.fromkeys([*blocks, *kinds]))


def _is_primary_metric(metric: str, m: MetricsSpec) -> bool:
    match = _PRIMARY_RE.match(metric)
    if match is None:
        return False
    wanted = {"h": m.horizons_h, "d": m.latencies_h, "r": m.interdiction}
    try:
        return all(float(v) in wanted[k] for k, v in match.groupdict().items() if v is not None)
    except ValueError:  # e.g. 'ed_h1.2.3'
        return False


def _numbers(values: Sequence[float]) -> str:
    return "[" + ", ".join(format_number(v) for v in values) + "]"


def format_number(value: float) -> str:
    """A number as in names and params: shortest exact form; 1.0 → '1', 0.5 → '0.5', inf → 'inf'."""
    if not math.isfinite(value):
        return str(float(value))
    return str(int(value)) if float(value).is_integer() else repr(float(value))


format_epsilon = format_number
"""ε in run names and params: inf → 'inf', 1.0 → '1', 0.5 → '0.5'."""


def _canonical_json(value: Any) -> str:
    """Key-sorted, whitespace-free JSON; floats via repr, ±inf/nan as strings (JSON has none)."""
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
