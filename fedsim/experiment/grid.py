"""Grid cells: an experiment expanded into runs (:class:`RunSpec`), each with a stable config hash.

The hash is the resume contract: a cell whose hash the tracker holds as a finished run is not run again,
so the hashed fields (:meth:`RunSpec.result_fields`) change only with :data:`HASH_VERSION`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, JsonValue, field_validator, model_validator

from fedsim.experiment.spec import (
    NON_DP_MODELS,
    Epsilon,
    ExperimentError,
    ExperimentSpec,
    FederationSpec,
    MetricsSpec,
    Model,
    RegimeName,
    RegimeSettings,
    Seed,
    Slug,
    SplitSpec,
    TrainingSpec,
    WorldSpec,
    _canonical_json,
    _fail,
    _Spec,
    _unique,
    format_epsilon,
    format_number,
    settings_defaults,
    validate_regime_settings,
)
from fedsim.privacy import PrivacySettings
from fedsim.regimes import Regime, get_regime
from synthetic.schema import partner_block
from synthetic.world import secret_from

HASH_VERSION = 1
"""Bump when the meaning of a field changes, so old runs are no longer reused."""


class RunSpec(_Spec):
    """One grid cell: a (regime, coalition, model, seed, ε) run plus the experiment's shared settings."""

    regime: RegimeName = Field(description="Form of sharing (a registered regime); see evaluation.md §1.")
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
        description="DP settings of this cell (mode, δ, C, accountant, row cap); "
        "None = no DP. Left out of the hash when None, so non-private runs keep their hash.",
    )
    regime_settings: dict[str, JsonValue] | None = Field(
        default=None,
        description="This cell's regime's own settings (every field of its settings_model), from the "
        "experiment's regime_settings; None for a regime without settings (or its defaults). Only the fields "
        "that differ from the defaults enter the hash, so cells at the defaults keep the hash they had before "
        "the regime had settings.",
    )

    @model_validator(mode="after")
    def _settings_of_its_regime(self) -> RunSpec:
        if self.regime_settings is not None:
            validate_regime_settings(self.regime, self.regime_settings)
        return self

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
        data = self.model_dump(
            mode="python", exclude={"world", "regime_settings"} | ({"privacy"} if self.privacy is None else set())
        )
        changed = self.changed_settings()
        if changed:  # only this regime's cells, and only when a setting is off its default
            data["regime_settings"] = changed
        if self.privacy is not None:
            # Hash compatibility: cells hashed before client-level DP left the schema carried this key
            # (always None for a run that could finish), so keep it and their runs stay reusable.
            data["privacy"]["client_level"] = None
        data["world_seed"] = self.world.seed
        secret = secret_from(self.world.secret_file)
        if secret is not None:  # another secret is another world; runs without one keep their hash
            data["world_secret"] = secret.fingerprint()
        data["hash_version"] = HASH_VERSION
        return data

    def changed_settings(self) -> RegimeSettings:
        """The regime settings of this cell that differ from the regime's defaults (name → value)."""
        defaults = settings_defaults(self.regime)
        return {k: v for k, v in (self.regime_settings or {}).items() if defaults.get(k) != v}

    def typed_settings(self) -> BaseModel | None:
        """The regime settings as the regime's ``settings_model`` (its defaults when the cell carries none);
        None for a regime without settings."""
        model = get_regime(self.regime).settings_model
        if model is None:
            return None
        return model.model_validate(self.regime_settings or {})

    @property
    def run_name(self) -> str:
        """Human-readable name, e.g. ``pooled|bank_1+telco|logistic|seed0|eps=inf``."""
        parts = [self.regime, "+".join(self.coalition), self.model, f"seed{self.seed}", self._privacy_tag()]
        return "|".join(parts)

    def _privacy_tag(self) -> str:
        sigma = None if self.privacy is None else self.privacy.noise_multiplier
        return f"eps={format_epsilon(self.epsilon)}" if sigma is None else f"sigma={format_number(sigma)}"

    def describe(self) -> str:
        """The cell in words, e.g. ``pooled on bank_1+telco, logistic, seed 0``; a horizontal cell says who
        federates (partners of one kind) and who stays alone, e.g. ``horizontal (banks federate:
        bank_1+bank_2+bank_3; telco, marketplace alone)``."""
        who = "every partner alone" if self.regime == "status_quo" else "+".join(self.coalition)
        if self.regime == "horizontal":
            return f"horizontal ({_who_federates(self.coalition)}), {self.model}, seed {self.seed}{self._dp_words()}"
        return f"{self.regime} on {who}, {self.model}, seed {self.seed}{self._dp_words()}"

    def _dp_words(self) -> str:
        dp = "" if math.isinf(self.epsilon) else f", ε = {format_epsilon(self.epsilon)}"
        if self.privacy is not None and self.privacy.noise_multiplier is not None:
            dp = f", σ = {format_number(self.privacy.noise_multiplier)} (ε reported after training)"
        return dp


RUN_NAME_SEP = " · "


def short_run_names(
    cells: Sequence[RunSpec], *, partners: Sequence[str] | None = None, world_seed: int | None = None
) -> dict[str, str]:
    """Config hash → a short run name that says only what differs between the cells of one grid.

    A dimension enters the name only when it varies: regime, coalition (when it varies within a regime;
    shortened, e.g. ``b1+t+m``, ``full chain`` for every partner of ``partners`` — default: every partner the
    cells name — and ``each alone`` for a regime that runs every partner side by side), model, seed (``s0``),
    ε (``ε=1``, or ``σ=0.8``); ``world_seed`` adds ``w<seed>``. E.g. ``pooled · b1+t · s2``. Nothing varies:
    the regime. Names that would still coincide fall back to :attr:`RunSpec.run_name`. The config hash does
    not depend on the name."""
    everyone = (
        tuple(sorted(partners)) if partners is not None else tuple(sorted({p for c in cells for p in c.coalition}))
    )
    short = _partner_abbreviations(everyone)
    rows = [
        {
            "regime": c.regime,
            "coalition": _coalition_label(c, everyone, short),
            "model": c.model,
            "seed": f"s{c.seed}",
            "eps": c._privacy_tag().replace("eps=", "ε=").replace("sigma=", "σ="),
        }
        for c in cells
    ]
    varies = [dim for dim in ("regime", "model", "seed", "eps") if len({r[dim] for r in rows}) > 1]
    per_regime: dict[str, set[str]] = {}
    for r in rows:
        per_regime.setdefault(r["regime"], set()).add(r["coalition"])
    if any(len(labels) > 1 for labels in per_regime.values()):
        varies.insert(1 if "regime" in varies else 0, "coalition")
    shown = varies or ["regime"]
    names = [RUN_NAME_SEP.join(r[dim] for dim in shown) for r in rows]
    if world_seed is not None:
        names = [f"{n}{RUN_NAME_SEP}w{world_seed}" for n in names]
    clash = {n for n in names if names.count(n) > 1}
    return {c.config_hash: (c.run_name if n in clash else n) for c, n in zip(cells, names, strict=True)}


def _partner_abbreviations(partners: Sequence[str]) -> dict[str, str]:
    """``bank_1`` → ``b1``, ``telco`` → ``t``, ``marketplace`` → ``m``; the full names if two would coincide."""
    short = {p: p[0] + "".join(ch for ch in p if ch.isdigit()) for p in partners}
    return short if len(set(short.values())) == len(short) else {p: p for p in partners}


def _coalition_label(cell: RunSpec, everyone: tuple[str, ...], short: Mapping[str, str]) -> str:
    side_by_side = get_regime(cell.regime).coalitions([], ("x", "y")) == [("x", "y")]
    if side_by_side:  # every partner alone, side by side (status quo, rules): the coalition is no choice
        return "each alone"
    if len(cell.coalition) > 1 and cell.coalition == everyone:
        return "full chain"
    return "+".join(short.get(p, p) for p in cell.coalition)


def _who_federates(coalition: tuple[str, ...]) -> str:
    """Horizontal FL federates partners of one kind; the others run alone (fedsim.regimes.horizontal)."""
    groups: dict[str, list[str]] = {}
    for p in coalition:  # the kind from the name, as the grid does before any world is built (bank_2 → bank)
        groups.setdefault(partner_block(p), []).append(p)
    together = [f"{kind}s federate: {'+'.join(ms)}" for kind, ms in groups.items() if len(ms) >= 2]
    alone = [m for ms in groups.values() if len(ms) < 2 for m in ms]
    return "; ".join(together + ([f"{', '.join(alone)} alone"] if alone else []))


def expand(
    spec: ExperimentSpec,
    partners: Sequence[str],
    *,
    kinds: Mapping[str, str] | None = None,
    admits: Callable[[str, tuple[str, ...]], bool] | None = None,
) -> list[RunSpec]:
    """Expand an experiment into its grid cells, deduplicated, in a deterministic order.

    Every rule comes from the regime registry: each regime's :meth:`~fedsim.regimes.Regime.coalitions`
    (``status_quo``: one cell with every partner; ``siloed``: one per partner of the union of the
    coalitions; others: each coalition of two or more partners), its ``models`` (``gbt`` only where one
    party trains on rows it holds, and only at ε = ∞; the split network's regimes use ``mlp``), and,
    with ``kinds`` (partner → kind), its :meth:`~fedsim.regimes.Regime.admits` (cells it would refuse
    are dropped, e.g. horizontal without two partners of one kind). ``admits(regime, coalition)`` may
    drop more cells. Order: regimes, coalitions (first appearance), models, ε, seeds — as listed.
    """
    spec.validate_against(partners)
    coalitions = list(dict.fromkeys(spec.coalition_list(partners)))
    digest = spec.world.content_digest()
    cells: dict[tuple[Any, ...], RunSpec] = {}
    for name in spec.regimes:
        regime = get_regime(name)
        for coalition in regime.coalitions(coalitions, partners):
            if kinds is not None and regime.admits(coalition, kinds, spec.federation) is not None:
                continue
            if admits is not None and not admits(name, coalition):
                continue
            for model, epsilon, privacy, seed in _model_eps_seed(spec, regime):
                key = (name, coalition, model, epsilon, privacy, seed)
                if key not in cells:
                    cells[key] = RunSpec(
                        regime=name,
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
                        federation=spec.federation if regime.federated else None,
                        regime_settings=spec.settings_of(name),
                    )
    if not cells:
        raise ExperimentError(
            f"experiment {spec.name!r} expands to no runs: check regimes, coalitions "
            "(non-status-quo regimes other than siloed need 2+ partners) and models"
        )
    return list(cells.values())


def refused(
    spec: ExperimentSpec, partners: Sequence[str], *, kinds: Mapping[str, str]
) -> list[tuple[str, tuple[str, ...], str]]:
    """(regime, coalition, why) of every coalition a regime refuses (its :meth:`~fedsim.regimes.Regime.admits`);
    :func:`expand` skips them, so a lattice that holds coalitions a regime cannot run is still a valid grid."""
    coalitions = list(dict.fromkeys(spec.coalition_list(partners)))
    out = []
    for name in spec.regimes:
        regime = get_regime(name)
        for coalition in regime.coalitions(coalitions, partners):
            why = regime.admits(coalition, kinds, spec.federation)
            if why is not None:
                out.append((name, coalition, why))
    return out


def cells_by_regime_and_coalition(cells: Sequence[RunSpec]) -> list[tuple[str, tuple[str, ...], int]]:
    """(regime, coalition, number of cells) in grid order: what `fedsim run --dry-run` shows per coalition."""
    counts: dict[tuple[str, tuple[str, ...]], int] = {}
    for cell in cells:
        counts[(cell.regime, cell.coalition)] = counts.get((cell.regime, cell.coalition), 0) + 1
    return [(regime, coalition, n) for (regime, coalition), n in counts.items()]


def _model_eps_seed(spec: ExperimentSpec, regime: Regime) -> Iterator[tuple[Model, float, PrivacySettings | None, int]]:
    # Split learning always trains the split network (an MLP per party + top model): one model per cell.
    models = [m for m in (("mlp",) if regime.split_network else spec.models) if m in regime.models]
    if not regime.trains_model:  # the model is not used: one run, under the first model listed, not copies
        models = models[:1]
    for model in models:
        for epsilon, sigma in spec.privacy.points():
            privacy = spec.privacy.settings(epsilon=epsilon, noise_multiplier=sigma)
            if privacy is not None and (model in NON_DP_MODELS or not regime.dp_capable):
                continue
            for seed in spec.seeds:
                yield model, epsilon, privacy, seed
