"""Experiment files → a grid of runs, and a resumable loop over that grid.

A researcher adds a study by adding a YAML file under ``experiments/``. This module

1. validates that file once, at the boundary (:func:`load_experiment`, :func:`parse_experiment`,
   :meth:`ExperimentSpec.validate_against`), raising one :class:`ExperimentError` whose message
   names the field path, the value and what is allowed;
2. expands it into grid cells (:func:`expand` → :class:`RunSpec`), each with a stable
   :attr:`RunSpec.config_hash`;
3. runs the grid (:func:`run_grid`), reusing every cell the tracker already holds as a finished run
   and redoing the ones that crashed, so an interrupted experiment resumes where it stopped.

It does not build worlds, train models or talk to MLflow itself: the caller hands in the world's
partner names, an ``execute(cell) -> RunResult`` function and a tracker
(:class:`fedsim.tracking.Tracker` or anything with the same methods).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, get_args

import yaml
from pydantic import (
    BaseModel,
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
from pydantic_core import PydanticCustomError

from fedsim.errors import FedsimError
from fedsim.privacy import DEFAULT_ROWS_PER_ENTITY, ClientLevelDP, PrivacySettings
from fedsim.settings import FederationSettings

if TYPE_CHECKING:
    from synthetic.config import WorldConfig

logger = logging.getLogger(__name__)

Regime = Literal["status_quo", "siloed", "watchlist", "pooled", "pooled_oracle", "horizontal", "vertical", "hybrid"]
Model = Literal["logistic", "mlp", "gbt"]
WorldPreset = Literal["small", "default", "known-answer", "placebo"]

REGIMES: tuple[str, ...] = get_args(Regime)
"""Allowed regimes. ``status_quo`` = every partner siloed, side by side, scored together."""

MODELS: tuple[str, ...] = get_args(Model)
"""Allowed model families. ``gbt`` is the scikit-learn gradient-boosted baseline (no DP-SGD)."""

WORLD_PRESETS: tuple[str, ...] = get_args(WorldPreset)
"""World presets the generator offers (synthetic/presets)."""

GBT_REGIMES: frozenset[str] = frozenset({"status_quo", "siloed", "watchlist", "pooled", "pooled_oracle"})
FEDERATED_REGIMES: frozenset[str] = frozenset({"horizontal", "vertical", "hybrid"})
SPLIT_REGIMES: frozenset[str] = frozenset({"vertical", "hybrid"})
"""Split-learning regimes: their model is the split network whatever `models` lists (cells use `mlp`)."""
"""Regimes where one party trains on rows it holds, so a non-torch tree model can run there.
Federated regimes (horizontal, vertical, hybrid) need the shared torch training loop."""

NON_DP_MODELS: frozenset[str] = frozenset({"gbt"})
"""Models that cannot be trained with DP-SGD; they only run at ε = ∞."""

HASH_VERSION = 1
"""Bump when the meaning of a field changes, so old runs are no longer reused."""

ALL: Literal["all"] = "all"
_SLUG = r"^[a-z0-9_-]+$"
_PATTERN_WORDS = {_SLUG: "only lowercase letters, digits, '_' and '-'"}
_UNION_TAGS = {"word", "list"}


class ExperimentError(FedsimError):
    """A bad experiment file or spec (a ValueError); the message names field path, value and allowed."""


# --------------------------------------------------------------------------------------------
# Spec models
# --------------------------------------------------------------------------------------------
class _Spec(BaseModel):
    """Frozen, strict-keyed base. Build specs with :func:`parse_experiment` / :func:`load_experiment`,
    which turn pydantic's errors into :class:`ExperimentError` (pydantic calls a custom ``__init__``
    for nested models too, so the translation cannot live in the constructor)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


Slug = Annotated[str, Field(pattern=_SLUG)]
Seed = Annotated[int, Field(ge=0, strict=True)]
PositiveDays = Annotated[int, Field(ge=1, strict=True)]
NonNegativeDays = Annotated[int, Field(ge=0, strict=True)]
Coalition = Annotated[tuple[Slug, ...], Field(min_length=1)]


def _coalitions_kind(value: Any) -> str:
    return "word" if isinstance(value, str) else "list"


Coalitions = Annotated[
    Annotated[Literal["all"], Tag("word")] | Annotated[tuple[Coalition, ...], Tag("list")],
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
    seed: Seed = Field(description="Seed of the world generator; integer >= 0. Required.")
    overrides: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="World config fields on top of the preset/config, nested as in a world config "
        "(e.g. {partners: {banks: 2}}), plus the shorthands persons (count) and days (horizon) that "
        "apply to either world mode, as `fedsim world generate --persons/--days` do. Validated by "
        "synthetic.config when the experiment is loaded. Default: {}.",
    )

    @field_validator("config")
    @classmethod
    def _resolve_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        base = Path((info.context or {}).get("base_dir", "."))
        path = value if value.is_absolute() else base / value
        if not path.is_file():
            raise _fail("world.config", str(value), f"no such file (looked for {path.resolve()})")
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
    """Training settings shared by every torch model of the grid."""

    epochs: int = Field(
        default=5, ge=1, strict=True, description="Local epochs (per round when federated); int >= 1. Default 5."
    )
    batch_size: int = Field(default=512, ge=1, strict=True, description="Rows per mini-batch; int >= 1. Default 512.")
    learning_rate: float = Field(
        default=0.01, gt=0, allow_inf_nan=False, description="Optimizer step size; float > 0. Default 0.01."
    )
    negative_rate: float = Field(
        default=0.1,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of legitimate entity-days kept for training (recorded with each run); "
        "0 < rate <= 1. Evaluation always uses every scored entity-day. Default 0.1.",
    )


Epsilon = Annotated[float, Field(gt=0)]


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
    client_level: ClientLevelDP | None = Field(
        default=None,
        description="Client-level DP across partners (Flower DP wrappers), federated regimes only: "
        "{noise_multiplier, clipping_norm, clipping: fixed|adaptive, side: server|client}. With few "
        "partners the noise drowns the signal; not the default. Default: none.",
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

    def settings(self, *, epsilon: float, noise_multiplier: float | None, federated: bool) -> PrivacySettings | None:
        """The cell's DP settings, or None when the cell trains without any DP."""
        client = self.client_level if federated else None
        target = None if math.isinf(epsilon) else epsilon
        if target is None and noise_multiplier is None and client is None:
            return None
        return PrivacySettings(
            target_epsilon=target,
            noise_multiplier=noise_multiplier,
            delta=self.delta,
            max_grad_norm=self.max_grad_norm,
            accountant=self.accountant,
            max_rows_per_entity=self.max_rows_per_entity,
            client_level=client,
        )


FederationSpec = FederationSettings
"""The experiment's ``federation:`` section: :class:`fedsim.settings.FederationSettings` (one source)."""


Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Hours = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class MetricsSpec(_Spec):
    """What the evaluation computes for each run (see evaluation.md §2)."""

    capacities: tuple[Fraction, ...] = Field(
        default=(0.001, 0.005, 0.01),
        min_length=1,
        description="Alert capacity k: fraction of a partner's entities it can investigate per day; "
        "each 0 < k <= 1. Default [0.001, 0.005, 0.01].",
    )
    horizons_h: tuple[Hours, ...] = Field(
        default=(0, 1, 6, 24, 72),
        min_length=1,
        description="Early-detection horizons h, hours before the first irreversible money-out; "
        "each >= 0. Default [0, 1, 6, 24, 72].",
    )
    latencies_h: tuple[Hours, ...] = Field(
        default=(0, 1, 4),
        min_length=1,
        description="Intervention latency Δ after an alert, hours; each >= 0. Default [0, 1, 4].",
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
        strict=True,
        description="Case-level cluster-bootstrap resamples for the 95% CIs; int >= 1 "
        "(evaluation.md asks >= 1000; use fewer only for smoke tests). Default 1000.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> MetricsSpec:
        for name in ("capacities", "horizons_h", "latencies_h", "interdiction"):
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
    capacity: Fraction = Field(description="Alert capacity k of the contrast; one of metrics.capacities.")
    contrast: tuple[str, str] = Field(
        description="[A, B]: the primary comparison A − B; two different regimes of the experiment."
    )


class ExperimentSpec(_Spec):
    """One experiment file: a world, a split, and the grid of regimes × coalitions × models × seeds × ε."""

    name: Slug = Field(description="MLflow experiment name; lowercase letters, digits, '_' and '-'.")
    description: str = Field(default="", description="Free text for the report; not part of any hash.")
    world: WorldSpec = Field(description="The world every run of the experiment uses.")
    split: SplitSpec = Field(description="Temporal train | gap | test split, days.")
    regimes: tuple[Regime, ...] = Field(
        min_length=1,
        description="Regimes to run; allowed: status_quo, siloed, watchlist, pooled, horizontal, vertical, hybrid.",
    )
    coalitions: Coalitions = Field(
        default=ALL,
        description="List of coalitions (each a list of partner names of the world), or the word "
        "'all' = one coalition of every partner. Default 'all'.",
    )
    models: tuple[Model, ...] = Field(min_length=1, description="Model families; allowed: logistic, mlp, gbt.")
    seeds: tuple[Seed, ...] = Field(
        min_length=1, description="Training seeds, one run each; integers >= 0 (>= 3 advised)."
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

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        _unique(self.regimes, path="regimes")
        _unique(self.models, path="models")
        _unique(self.seeds, path="seeds")
        if self.coalitions != ALL:
            for i, coalition in enumerate(self.coalitions):
                _unique(coalition, path=f"coalitions[{i}]")
        self._check_world_and_split()
        self._check_primary()
        return self

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
        days = world_days(config)
        if self.split.total_days > days:
            raise _fail(
                "split",
                self.split.model_dump(),
                f"train + gap + test + second_test = "
                f"{self.split.total_days} days; allowed: at most the world's {days} days",
            )

    def _check_primary(self) -> None:
        p = self.primary
        if p is None:
            if len(self.regimes) >= 2:
                raise _fail(
                    "primary",
                    None,
                    "missing; an experiment with several regimes pre-declares "
                    "one primary contrast {metric, capacity, contrast: [A, B]}",
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
        if p.capacity not in self.metrics.capacities:
            raise _fail(
                "primary.capacity", p.capacity, f"allowed: one of metrics.capacities {list(self.metrics.capacities)}"
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
        if self.coalitions != ALL:
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
        return [tuple(sorted(c)) for c in self.coalitions]


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


# --------------------------------------------------------------------------------------------
# Loading and error translation
# --------------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last silently)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Read and validate one experiment YAML file; relative world config paths are taken from its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ExperimentError(f"cannot read experiment file {path}: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ExperimentError(f"experiment file {where}: not valid YAML: {problem}") from None
    return parse_experiment(data, source=str(path), base_dir=path.parent)


def parse_experiment(data: Any, *, source: str = "<dict>", base_dir: str | Path = ".") -> ExperimentSpec:
    """Validate a mapping (as read from YAML) into an :class:`ExperimentSpec`."""
    if data is None:
        raise ExperimentError(
            f"experiment {source} is empty; it needs at least name, world, split, regimes, models and seeds"
        )
    if not isinstance(data, Mapping):
        raise ExperimentError(f"experiment {source}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return ExperimentSpec.model_validate(dict(data), context={"base_dir": str(base_dir)})
    except ValidationError as err:
        raise ExperimentError(_describe(err, ExperimentSpec, header=f"invalid experiment {source}")) from None


def _describe(err: ValidationError, root: type[BaseModel], *, header: str) -> str:
    """Turn pydantic's errors into 'path = value: problem; allowed: …' lines under a header."""
    errors = err.errors(include_url=False)
    # pydantic adds "too short" for a list whose every item failed; the item errors say more.
    item_locs = {e["loc"][:-1] for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    kept = [e for e in errors if not (e["type"] == "too_short" and e["loc"] in item_locs)]
    lines = [_describe_one(e, root) for e in kept]
    return f"{header}:\n  - " + "\n  - ".join(dict.fromkeys(lines))


def _describe_one(e: Mapping[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(part for part in e["loc"] if part not in _UNION_TAGS)
    kind, ctx, value = e["type"], e.get("ctx") or {}, e.get("input")
    if kind == "fedsim":
        return f"{ctx['path']} = {ctx['value']}: {ctx['problem']}"
    path = _path(loc)
    if kind == "extra_forbidden":
        allowed = ", ".join(_model_at(root, loc[:-1]).model_fields)
        return f"{path}: unknown key; allowed keys here: {allowed}"
    if kind == "missing":
        return f"{path}: required field is missing"
    return f"{path} = {value!r}: {_problem(kind, ctx, e['msg'])}"


def _problem(kind: str, ctx: Mapping[str, Any], msg: str) -> str:
    if kind == "literal_error":
        return f"not allowed; allowed: {ctx['expected']}"
    if kind == "too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"needs >= {ctx['min_length']} items"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "should be a whole number (integer)"
    if kind in ("tuple_type", "list_type"):
        return "should be a list"
    if kind == "dict_type" or kind == "model_type":
        return "should be a mapping of key: value"
    if kind == "string_pattern_mismatch":
        return f"should contain {_PATTERN_WORDS.get(ctx['pattern'], 'text matching ' + ctx['pattern'])}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le")))
        return f"allowed: {bounds[kind]} {limit}"
    return msg[0].lower() + msg[1:] if msg else kind


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<experiment>"


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel]:
    model = root
    for part in loc:
        if isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            candidates = getattr(annotation, "__args__", (annotation,))
            model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return model


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------
class RunSpec(_Spec):
    """One grid cell: a (regime, coalition, model, seed, ε) run plus the experiment's shared settings."""

    regime: Regime = Field(description="Form of sharing; see evaluation.md §1.")
    coalition: tuple[Slug, ...] = Field(
        min_length=1, description="Sorted partner names; for status_quo every partner of the world."
    )
    model: Model = Field(description="Model family.")
    seed: Seed = Field(description="Training seed; integer >= 0.")
    epsilon: Epsilon = Field(description="Target DP ε; inf = no DP.")
    world: WorldSpec = Field(description="World of the experiment.")
    world_digest: str = Field(
        description="sha256 of the resolved world config; `fedsim run` replaces it by the world's content hash "
        "once the world exists, so another generator version never reuses runs."
    )
    split: SplitSpec = Field(description="Temporal split, days.")
    training: TrainingSpec = Field(description="Shared training settings.")
    metrics: MetricsSpec = Field(description="Evaluation settings.")
    federation: FederationSpec | None = Field(
        default=None,
        description="Federated settings; only for federated regimes (so they never change the "
        "hash of a non-federated run).",
    )
    privacy: PrivacySettings | None = Field(
        default=None,
        description="DP settings of this cell (mode, δ, C, accountant, row cap, client-level); "
        "None = no DP. Left out of the hash when None, so non-private runs keep their hash.",
    )

    @model_validator(mode="after")
    def _privacy_matches_epsilon(self) -> RunSpec:
        target = None if self.privacy is None else self.privacy.target_epsilon
        if not math.isinf(self.epsilon) and target != self.epsilon:
            raise _fail(
                "privacy.target_epsilon",
                target,
                f"must equal epsilon ({format_epsilon(self.epsilon)}) for a DP cell; build cells with expand()",
            )
        return self

    @field_validator("coalition")
    @classmethod
    def _sorted_distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        _unique(value, path="coalition")
        return tuple(sorted(value))

    @property
    def config_hash(self) -> str:
        """sha256 (hex) of the canonical JSON of every field that determines the run's result.

        The world enters as its seed plus ``world_digest`` (the resolved world config), not as
        preset name / file path / overrides. Not included: the experiment's name and description,
        the primary contrast, and the code version (logged separately as the git commit).
        """
        return hashlib.sha256(_canonical_json(self.result_fields()).encode()).hexdigest()

    def result_fields(self) -> dict[str, Any]:
        """The fields hashed into :attr:`config_hash`, as plain JSON-able values."""
        data = self.model_dump(mode="python", exclude={"world"} | ({"privacy"} if self.privacy is None else set()))
        data["world_seed"] = self.world.seed
        data["hash_version"] = HASH_VERSION
        return data

    @property
    def run_name(self) -> str:
        """Human-readable name, e.g. ``pooled|bank_1+telco|logistic|seed0|eps=inf``."""
        parts = [self.regime, "+".join(self.coalition), self.model, f"seed{self.seed}", self._privacy_tag()]
        if self.privacy is not None and self.privacy.client_level is not None:
            parts.append("client-dp")
        return "|".join(parts)

    def _privacy_tag(self) -> str:
        sigma = None if self.privacy is None else self.privacy.noise_multiplier
        return f"eps={format_epsilon(self.epsilon)}" if sigma is None else f"sigma={format_number(sigma)}"

    def describe(self) -> str:
        """The cell in words, e.g. ``pooled on bank_1+telco, logistic, seed 0``."""
        who = "every partner alone" if self.regime == "status_quo" else "+".join(self.coalition)
        dp = "" if math.isinf(self.epsilon) else f", ε = {format_epsilon(self.epsilon)}"
        if self.privacy is not None and self.privacy.noise_multiplier is not None:
            dp = f", σ = {format_number(self.privacy.noise_multiplier)} (ε reported after training)"
        if self.privacy is not None and self.privacy.client_level is not None:
            dp += ", client-level DP"
        return f"{self.regime} on {who}, {self.model}, seed {self.seed}{dp}"


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


def expand(
    spec: ExperimentSpec,
    partners: Sequence[str],
    *,
    admits: Callable[[str, tuple[str, ...]], bool] | None = None,
) -> list[RunSpec]:
    """Expand an experiment into its grid cells, deduplicated, in a deterministic order.

    Rules: ``status_quo`` ignores the coalitions (one cell per model × ε × seed with every
    partner); ``siloed`` gives one cell per partner of the union of the coalitions; every other
    regime takes each coalition of two or more partners. ``gbt`` runs only in GBT_REGIMES and only
    at ε = ∞. ``admits(regime, coalition)`` may drop cells a regime cannot run (e.g. horizontal
    needs partners of one kind). Order: regimes, coalitions (first appearance), models, ε, seeds —
    each as listed in the spec.
    """
    spec.validate_against(partners)
    coalitions = list(dict.fromkeys(spec.coalition_list(partners)))
    digest = spec.world.content_digest()
    cells: dict[tuple[Any, ...], RunSpec] = {}
    for regime in spec.regimes:
        for coalition in _coalitions_for(regime, coalitions, partners):
            if admits is not None and not admits(regime, coalition):
                continue
            for model, epsilon, privacy, seed in _model_eps_seed(spec, regime):
                key = (regime, coalition, model, epsilon, privacy, seed)
                if key not in cells:
                    cells[key] = RunSpec(
                        regime=regime,
                        coalition=coalition,
                        model=model,
                        seed=seed,
                        epsilon=epsilon,
                        privacy=privacy,
                        world=spec.world,
                        world_digest=digest,
                        split=spec.split,
                        training=spec.training,
                        metrics=spec.metrics,
                        federation=spec.federation if regime in FEDERATED_REGIMES else None,
                    )
    if not cells:
        raise ExperimentError(
            f"experiment {spec.name!r} expands to no runs: check regimes, coalitions "
            "(non-status-quo regimes other than siloed need 2+ partners) and models"
        )
    return list(cells.values())


def _coalitions_for(regime: str, coalitions: list[tuple[str, ...]], partners: Sequence[str]) -> list[tuple[str, ...]]:
    if regime == "status_quo":
        return [tuple(sorted(partners))]
    if regime == "siloed":
        members = dict.fromkeys(p for c in coalitions for p in c)
        return [(p,) for p in members]
    return [c for c in coalitions if len(c) >= 2]


def _model_eps_seed(spec: ExperimentSpec, regime: str) -> Iterator[tuple[Model, float, PrivacySettings | None, int]]:
    federated = regime in FEDERATED_REGIMES
    # Split learning always trains the split network (an MLP per party + top model): one model per cell.
    models = ("mlp",) if regime in SPLIT_REGIMES else spec.models
    for model in models:
        if model == "gbt" and regime not in GBT_REGIMES:
            continue
        for epsilon, sigma in spec.privacy.points():
            privacy = spec.privacy.settings(epsilon=epsilon, noise_multiplier=sigma, federated=federated)
            if model in NON_DP_MODELS and privacy is not None and privacy.record_level:
                continue
            for seed in spec.seeds:
                yield model, epsilon, privacy, seed


# --------------------------------------------------------------------------------------------
# Running the grid, resumably
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    """What one executed cell hands back to be tracked.

    params: extra settings (δ, σ, C, steps, ...); metrics: name → float, with ``name_lo`` /
    ``name_hi`` for 95% CI bounds; artifacts: name → local file path; tags: name → text.
    """

    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    artifacts: Mapping[str, str | Path] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    step_metrics: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Per-round curves (e.g. federated loss per round): name → value per step."""


class GridTracker(Protocol):
    """What :func:`run_grid` needs from a tracker (fedsim.tracking.Tracker provides it)."""

    def find_runs(self, config_hash: str) -> list[tuple[str, str]]: ...

    def delete_run(self, run_id: str) -> None: ...

    def start_run(
        self, cell: RunSpec, *, world_hash: str | None = None, tags: Mapping[str, str] | None = None
    ) -> AbstractContextManager[str]: ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def log_step_metrics(self, name: str, values: Sequence[float]) -> None: ...

    def log_artifact(self, path: str | Path, *, name: str | None = None) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...


class RunFailedError(RuntimeError):
    """A grid cell raised; the message names the cell. Finished runs stay as they are."""


@dataclass
class GridSummary:
    """Outcome of :func:`run_grid`: run ids per cell and how many were run, reused and replaced."""

    run_ids: list[str] = field(default_factory=list)
    executed: int = 0
    reused: int = 0
    replaced: int = 0


FINISHED = "FINISHED"


def run_grid(
    spec: ExperimentSpec,
    cells: Sequence[RunSpec],
    execute: Callable[[RunSpec], RunResult],
    tracker: GridTracker,
    *,
    world_hash: str | None = None,
    progress: bool = True,
) -> GridSummary:
    """Run every cell that the tracker does not already hold as a finished run.

    A finished run with the cell's config hash is reused; an unfinished one (RUNNING, FAILED,
    KILLED — e.g. a crash) is deleted and the cell redone. If ``execute`` raises, that run is
    marked FAILED and :class:`RunFailedError` naming the cell is raised; runs finished earlier
    are kept, so calling again resumes. ``world_hash`` is logged as a param of every new run.
    """
    summary = GridSummary()
    with _Reporter(spec, len(cells), enabled=progress) as report:
        for number, cell in enumerate(cells, start=1):
            head = f"run {number}/{len(cells)}: {cell.describe()}"
            runs = tracker.find_runs(cell.config_hash)
            finished = [run_id for run_id, status in runs if status == FINISHED]
            if finished:
                summary.reused += 1
                summary.run_ids.append(finished[0])
                report.say(f"{head} — reusing finished run {finished[0]}")
                report.advance()
                continue
            for run_id, status in runs:
                tracker.delete_run(run_id)
                summary.replaced += 1
                report.say(f"{head} — removing unfinished run {run_id} ({status.lower()}) to redo it")
            report.say(f"{head} — running")
            summary.run_ids.append(_execute_one(cell, execute, tracker, world_hash=world_hash, head=head))
            summary.executed += 1
            report.advance()
        report.say(
            f"experiment {spec.name}: {summary.executed} run(s) done, {summary.reused} reused, "
            f"{summary.replaced} unfinished run(s) replaced"
        )
    return summary


def _execute_one(
    cell: RunSpec, execute: Callable[[RunSpec], RunResult], tracker: GridTracker, *, world_hash: str | None, head: str
) -> str:
    try:
        with tracker.start_run(cell, world_hash=world_hash) as run_id:
            result = execute(cell)
            tracker.log_params(result.params)
            tracker.log_metrics(result.metrics)
            for curve, values in result.step_metrics.items():
                tracker.log_step_metrics(curve, values)
            for name, path in result.artifacts.items():
                tracker.log_artifact(path, name=name)
            tracker.set_tags(result.tags)
    except Exception as err:
        raise RunFailedError(f"{head} failed ({cell.run_name}): {type(err).__name__}: {err}") from err
    return run_id


class _Reporter:
    """Progress bar (rich, on stderr like the CLI's other messages) with the log lines printed above
    it; plain logging when progress is off."""

    def __init__(self, spec: ExperimentSpec, total: int, *, enabled: bool) -> None:
        self._enabled, self._total, self._spec = enabled, total, spec
        self._bar: Any = None

    def __enter__(self) -> _Reporter:
        if self._enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._bar.start()
            self._task = self._bar.add_task(f"experiment {self._spec.name}", total=self._total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def say(self, line: str) -> None:
        # With a bar the researcher reads the console; without one the caller's logging decides.
        if self._bar is None:
            logger.info(line)
            return
        logger.debug(line)
        self._bar.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
