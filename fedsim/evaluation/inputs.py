"""Validate and normalise what evaluation is called with: scores, truth tables, settings.

Every check raises :class:`fedsim.errors.FedsimError` (a ``ValueError``) naming the table or field,
the offending value and what is allowed (style.md: validate once at the boundary). Downstream
modules assume these invariants.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedsim.errors import FedsimError
from synthetic.schema import PHASES

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600
ROLES: tuple[str, ...] = ("victim", "mule", "fraudster")

SCORE_COLUMNS: dict[str, str] = {
    "partner": "str",
    "entity_id": "int",
    "day": "int",
    "decision_ts": "int",
    "score": "float",
}
CASE_COLUMNS: dict[str, str] = {
    "case_id": "int",
    "fraud_type": "str",
    **{f"ts_{p}": "int" for p in PHASES},
    "t_loss": "int",
}
MONEY_OUT_COLUMNS: dict[str, str] = {
    "case_id": "int",
    "ts": "int",
    "amount_eur": "float",
    "cashout_ts": "int",
}
CASE_ENTITY_COLUMNS: dict[str, str] = {"case_id": "int", "partner": "str", "entity_id": "int", "role": "str"}

DEFAULT_CAPACITIES: tuple[float, ...] = (0.001, 0.005, 0.01)
DEFAULT_HORIZONS_H: tuple[float, ...] = (0.0, 1.0, 6.0, 24.0, 72.0)
DEFAULT_LATENCIES_H: tuple[float, ...] = (0.0, 1.0, 4.0)
DEFAULT_INTERDICTION: tuple[float, ...] = (1.0, 0.7)
ALERT_RULES: tuple[str, ...] = ("role_window", "any_entity")
"""How t_alert is found (documented in :mod:`fedsim.evaluation.outcomes`)."""


def _coerce(df: pd.DataFrame, columns: Mapping[str, str], table: str) -> pd.DataFrame:
    """Return ``df[columns]`` with int64 / float64 / str columns, or raise naming the bad column."""
    if not isinstance(df, pd.DataFrame):
        raise FedsimError(f"{table}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FedsimError(f"{table}: missing column(s) {missing}; required: {list(columns)}")
    out = {}
    for name, kind in columns.items():
        col = df[name]
        if col.isna().any():
            raise FedsimError(f"{table}.{name}: contains null values; nulls are not allowed here")
        if kind == "int":
            if not pd.api.types.is_integer_dtype(col):
                raise FedsimError(f"{table}.{name}: dtype {col.dtype} is not allowed; expected an integer dtype")
            out[name] = col.to_numpy(dtype=np.int64)
        elif kind == "float":
            if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
                raise FedsimError(f"{table}.{name}: dtype {col.dtype} is not allowed; expected a numeric dtype")
            values = col.to_numpy(dtype=np.float64)
            if not np.isfinite(values).all():
                bad = values[~np.isfinite(values)][0]
                raise FedsimError(f"{table}.{name}: value {bad} is not allowed; values must be finite")
            out[name] = values
        else:
            out[name] = col.astype(str).to_numpy(dtype=object)
    return pd.DataFrame(out)


def validate_scores(scores: pd.DataFrame, *, partner_sizes: Mapping[str, int], table: str = "scores") -> pd.DataFrame:
    """Check the per-entity-day score table; return a normalised copy with a fresh RangeIndex.

    One row per scored (partner, entity_id, day); every partner must have a size in ``partner_sizes``.
    """
    out = _coerce(scores, SCORE_COLUMNS, table)
    if len(out) == 0:
        raise FedsimError(f"{table}: has 0 rows; at least one scored entity-day is required")
    dup = out.duplicated(["partner", "entity_id", "day"])
    if dup.any():
        row = out.loc[dup.idxmax(), ["partner", "entity_id", "day"]].tolist()
        raise FedsimError(f"{table}: duplicate (partner, entity_id, day) {row}; one score per entity-day allowed")
    unknown = sorted(set(out["partner"]) - set(partner_sizes))
    if unknown:
        raise FedsimError(f"{table}.partner: {unknown} not in partner_sizes; allowed: {sorted(partner_sizes)}")
    return out


def validate_partner_sizes(partner_sizes: Mapping[str, int]) -> dict[str, int]:
    """Partner -> number of entities (a positive integer); the base of each partner's alert capacity."""
    out: dict[str, int] = {}
    for partner, size in partner_sizes.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise FedsimError(f"partner_sizes[{partner!r}]: {size!r} is not allowed; expected an integer >= 1")
        out[str(partner)] = int(size)
    return out


@dataclass(frozen=True)
class Truth:
    """The world's truth tables evaluation needs (synthetic/schema.py ``TRUTH_TABLES``).

    ``cases``: one row per victim journey (phase starts ``ts_<phase>``, ``t_loss``; -1 = not reached);
    ``money_outs``: each money-out of a victim (``ts``, ``amount_eur``, ``cashout_ts``);
    ``case_entities``: which partner entity played which role (victim / mule / fraudster) in a case.
    Build it with :meth:`from_tables`, which validates and normalises.
    """

    cases: pd.DataFrame
    money_outs: pd.DataFrame
    case_entities: pd.DataFrame

    @classmethod
    def from_tables(cls, tables: Mapping[str, pd.DataFrame] | Truth) -> Truth:
        """Validate ``{"cases", "money_outs", "case_entities"}`` (extra tables are ignored)."""
        if isinstance(tables, Truth):
            tables = {
                "cases": tables.cases,
                "money_outs": tables.money_outs,
                "case_entities": tables.case_entities,
            }
        for name in ("cases", "money_outs", "case_entities"):
            if name not in tables:
                raise FedsimError(f"truth: table {name!r} missing; required: cases, money_outs, case_entities")
        cases = _coerce(tables["cases"], CASE_COLUMNS, "cases")
        money = _coerce(tables["money_outs"], MONEY_OUT_COLUMNS, "money_outs")
        ents = _coerce(tables["case_entities"], CASE_ENTITY_COLUMNS, "case_entities")
        if cases["case_id"].duplicated().any():
            bad = int(cases.loc[cases["case_id"].duplicated(), "case_id"].iloc[0])
            raise FedsimError(f"cases.case_id: duplicate value {bad}; case ids must be unique")
        for name, df in (("money_outs", money), ("case_entities", ents)):
            orphan = ~df["case_id"].isin(cases["case_id"])
            if orphan.any():
                bad = int(df.loc[orphan, "case_id"].iloc[0])
                raise FedsimError(f"{name}.case_id: {bad} not in cases.case_id")
        bad_roles = sorted(set(ents["role"]) - set(ROLES))
        if bad_roles:
            raise FedsimError(f"case_entities.role: {bad_roles} not allowed; allowed: {list(ROLES)}")
        if (money["amount_eur"] < 0).any():
            raise FedsimError("money_outs.amount_eur: negative amounts are not allowed")
        return cls(cases=cases, money_outs=money, case_entities=ents)


def _finite_tuple(values: Sequence[float], field: str, *, low: float, high: float, low_open: bool) -> tuple:
    if isinstance(values, str | bytes) or len(values) == 0:
        raise FedsimError(f"{field}: {values!r} is not allowed; expected a non-empty sequence of numbers")
    out = []
    for v in values:
        ok = isinstance(v, int | float | np.integer | np.floating) and math.isfinite(v)
        ok = ok and (v > low if low_open else v >= low) and v <= high
        if not ok:
            bracket = "(" if low_open else "["
            raise FedsimError(f"{field}: {v!r} is not allowed; allowed: numbers in {bracket}{low}, {high}]")
        out.append(float(v))
    if len(set(out)) != len(out):
        raise FedsimError(f"{field}: {values!r} has duplicates; each value may appear once")
    return tuple(out)


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything that fixes how scores become metrics (evaluation.md §2–§3).

    Attributes:
        test_window_ts: ``(start, end)`` seconds since world start; cases with ``t_loss`` in
            ``[start, end)`` are evaluated.
        capacities: alerts per partner per day as a fraction of the partner's entities (0.005 = 0.5%).
        capacity_weights: optional ``((partner, w_p), ...)``: partner p works ``k · w_p`` of its entities a
            day (a per-kind capacity profile, :func:`fedsim.evaluation.alerts.capacity_profile`); default 1.
        horizons_h: ED horizons h in hours (alerted at least h hours before t_loss).
        latencies_h: intervention latencies Δ in hours for prevented loss.
        interdiction: interdiction success rates ρ in (0, 1] for prevented loss.
        n_boot: bootstrap resamples (0 = point estimates only); evaluation.md asks for >= 1000.
        seed: seed of the one ``np.random.Generator`` that draws every resample.
        ci_level: coverage of the percentile interval (0.95).
        alert_rule: how a case's first alert t_alert is found (``outcomes.ALERT_RULES``):
            ``role_window`` (default; alerts on the case's entities inside their role windows) or
            ``any_entity`` (any alert on an entity of the case, the literal reading of §2).
    """

    test_window_ts: tuple[int, int]
    seed: int
    capacities: tuple[float, ...] = DEFAULT_CAPACITIES
    horizons_h: tuple[float, ...] = DEFAULT_HORIZONS_H
    latencies_h: tuple[float, ...] = DEFAULT_LATENCIES_H
    interdiction: tuple[float, ...] = DEFAULT_INTERDICTION
    n_boot: int = 1000
    ci_level: float = 0.95
    alert_rule: str = "role_window"
    capacity_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        window = self.test_window_ts
        if (
            not isinstance(window, tuple | list)
            or len(window) != 2
            or not all(isinstance(t, int | np.integer) and not isinstance(t, bool) for t in window)
            or window[0] >= window[1]
        ):
            raise FedsimError(f"test_window_ts: {window!r} is not allowed; expected (start, end) ints, start < end")
        object.__setattr__(self, "test_window_ts", (int(window[0]), int(window[1])))
        object.__setattr__(
            self, "capacities", _finite_tuple(self.capacities, "capacities", low=0.0, high=1.0, low_open=True)
        )
        object.__setattr__(
            self,
            "horizons_h",
            _finite_tuple(self.horizons_h, "horizons_h", low=0.0, high=1e6, low_open=False),
        )
        object.__setattr__(
            self,
            "latencies_h",
            _finite_tuple(self.latencies_h, "latencies_h", low=0.0, high=1e6, low_open=False),
        )
        object.__setattr__(
            self,
            "interdiction",
            _finite_tuple(self.interdiction, "interdiction", low=0.0, high=1.0, low_open=True),
        )
        if isinstance(self.n_boot, bool) or not isinstance(self.n_boot, int | np.integer) or self.n_boot < 0:
            raise FedsimError(f"n_boot: {self.n_boot!r} is not allowed; expected an integer >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise FedsimError(f"seed: {self.seed!r} is not allowed; expected an integer >= 0")
        if not 0.0 < float(self.ci_level) < 1.0:
            raise FedsimError(f"ci_level: {self.ci_level!r} is not allowed; expected a number in (0, 1)")
        weights = tuple((str(p), float(w)) for p, w in self.capacity_weights)
        if any(not (0.0 < w <= 1.0) for _, w in weights):
            raise FedsimError(f"capacity_weights: {self.capacity_weights!r} is not allowed; allowed: weights in (0, 1]")
        object.__setattr__(self, "capacity_weights", weights)
        if self.alert_rule not in ALERT_RULES:
            raise FedsimError(f"alert_rule: {self.alert_rule!r} is not allowed; allowed: {list(ALERT_RULES)}")
