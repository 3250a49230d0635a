"""`fedsim sensitivity`: which assumptions of the synthetic world drive the primary contrast (issue 11).

A sweep file names knobs — world-config fields (as in an experiment's ``world.overrides``, e.g.
``fraud.helpdesk.victims_per_mule``) or ``capacity_scale`` (the alert capacity, which needs no new world) —
each with a stated plausible range (low, base, high) and its source. Every knob is moved one at a time
to its low and its high value (one-factor-at-a-time, the design behind a tornado diagram: Saltelli et al.,
*Global Sensitivity Analysis: The Primer*, Wiley 2008, §1.2), optionally plus a small joint two-level design
over a few knobs (a full 2^k factorial or its half fraction 2^(k−1) with the defining relation I = AB…K, so
main effects are not confounded with each other for k ≥ 3: Box, Hunter & Hunter, *Statistics for
Experimenters*, 2nd ed. 2005, ch. 6).

Each variant is a derived experiment (the same file with its world overrides changed and its name
suffixed) run by :func:`fedsim.runner.run_experiment` — tracked, resumable, nothing re-run — and
evaluated with :func:`fedsim.contrast.primary_contrast`, the function `fedsim compare` uses, so every
contrast carries the seed-inclusive CI of :mod:`fedsim.evaluation.seeds`. Knobs that do not touch the world
(``capacity_scale``) reuse the base experiment's runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fedsim.errors import FedsimError

if TYPE_CHECKING:
    from fedsim.experiment.spec import WorldSpec

CAPACITY = "capacity_scale"
"""The knob that is the alert capacity (a multiple of the calibrated capacity): evaluated on the same runs."""

CONTRAST_METRICS = ("ed_h0", "prevented_eur_d0_r1.0", "ap")
"""Metrics the primary contrast table carries (:data:`fedsim.contrast.HEADLINE_NAMES`)."""

MAX_JOINT_KNOBS = 5
"""Largest joint design: 2^5 = 32 worlds (full) — beyond that the sweep is a study of its own."""


class SweepError(FedsimError):
    """A bad sweep file; the message names the field path, the value and what is allowed."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Knob(_Frozen):
    """One assumption and its stated plausible range."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Short name (lowercase letters, digits, '_').")
    path: str = Field(
        min_length=1,
        description="World-config field path as in world.overrides (e.g. fraud.helpdesk.victims_per_mule), "
        "or capacity_scale (multiple of the calibrated alert capacity; no new world).",
    )
    low: float = Field(description="Low end of the plausible range.")
    base: float | None = Field(
        default=None, description="The experiment's value; checked against it (default: read from it)."
    )
    high: float = Field(description="High end of the plausible range.")
    source: str = Field(min_length=1, description="One line: where the range comes from.")

    @model_validator(mode="after")
    def _ordered(self) -> Knob:
        if not self.low < self.high:
            raise ValueError(f"low = {self.low:g}, high = {self.high:g}: allowed: low < high")
        return self


class JointDesign(_Frozen):
    """A two-level design over a few knobs (each at its low or high value)."""

    knobs: tuple[str, ...] = Field(min_length=2, max_length=MAX_JOINT_KNOBS, description="Knob names.")
    design: Literal["full", "half"] = Field(
        default="half", description="full 2^k factorial or the half fraction 2^(k-1) (I = AB…K). Default half."
    )


class SweepSpec(_Frozen):
    """The `sensitivity:` section of a sweep file."""

    knobs: tuple[Knob, ...] = Field(min_length=1, description="Knobs moved one at a time.")
    joint: JointDesign | None = Field(default=None, description="Optional joint two-level design.")
    metric: str | None = Field(default=None, description="Contrast metric (default: the primary's).")
    fraud_type: str = Field(default="all", description="Fraud type row of the contrast. Default all.")
    model: str | None = Field(default=None, description="Model of the contrast (default: the first).")


@dataclass(frozen=True)
class Variant:
    """One point of the sweep: a knob at a level (or a joint design point), its world overrides and capacity."""

    knob: str
    level: str  # base | low | high | joint-<i>
    values: dict[str, float]  # knob path → value
    overrides: dict[str, Any] = field(default_factory=dict)  # world overrides on top of the experiment's
    scale: float = 1.0

    @property
    def world_changed(self) -> bool:
        return bool(self.overrides)


@dataclass(frozen=True)
class Sweep:
    """A validated sweep against one experiment: the knobs with their base values filled in, and the variants."""

    experiment: Path
    spec: SweepSpec
    metric: str
    base_scale: float
    knobs: tuple[Knob, ...]
    variants: tuple[Variant, ...]


# ------------------------------------------------------------------------------------------------------
# Loading and validation
# ------------------------------------------------------------------------------------------------------
def load_sweep(experiment: str | Path, sweep_file: str | Path) -> Sweep:
    """Read a sweep file (top-level key ``sensitivity:``) and validate it against the experiment."""
    from synthetic.config import YamlFileError, read_yaml_file

    try:
        data = read_yaml_file(sweep_file, "sweep file")
    except YamlFileError as err:
        raise SweepError(str(err)) from None
    if not isinstance(data, Mapping) or set(data) != {"sensitivity"}:
        raise SweepError(f"sweep file {str(sweep_file)!r}: allowed: one top-level key, `sensitivity:`")
    return parse_sweep(experiment, data["sensitivity"])


def parse_sweep(experiment: str | Path, data: Any) -> Sweep:
    """Validate a ``sensitivity`` mapping against the experiment: every knob path exists and its range is a valid
    world, the base value is the experiment's, the joint design names known knobs, the metric is in the table."""
    from fedsim.experiment import load_experiment

    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as err:
        raise SweepError(_describe(err)) from None
    exp = load_experiment(experiment)
    base_scale = exp.primary.capacity_scale if exp.primary else 1.0
    metric = spec.metric or (exp.primary.metric if exp.primary else "ed_h0")
    if metric not in CONTRAST_METRICS:
        raise SweepError(
            f"sensitivity.metric = {metric!r}: not in the contrast table; allowed: {', '.join(CONTRAST_METRICS)}"
        )
    if exp.primary is None:
        raise SweepError("sensitivity: the experiment declares no `primary:` contrast to sweep")
    resolved = exp.world.world_config().model_dump(mode="json")
    knobs = tuple(_checked_knob(i, k, exp.world, resolved, base_scale) for i, k in enumerate(spec.knobs))
    names = [k.name for k in knobs]
    if len(set(names)) != len(names):
        raise SweepError(f"sensitivity.knobs: names {names}: allowed: each name once")
    variants = _one_at_a_time(knobs, exp.world.overrides, resolved, base_scale)
    if spec.joint is not None:
        variants += _joint(spec.joint, knobs, exp.world.overrides, resolved, base_scale)
    return Sweep(Path(experiment), spec, metric, base_scale, knobs, tuple(variants))


def _describe(err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False):
        path = "sensitivity" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        lines.append(f"{path} = {e.get('input')!r}: {msg}")
    return "invalid sweep:\n  - " + "\n  - ".join(lines)


def _checked_knob(i: int, knob: Knob, world: WorldSpec, resolved: dict, base_scale: float) -> Knob:
    """The knob with its base value filled in; its path exists, holds a number, and low and high build worlds."""
    where = f"sensitivity.knobs[{i}] ({knob.name})"
    if knob.path == CAPACITY:
        base = base_scale
        if not knob.low > 0:
            raise SweepError(f"{where}.low = {knob.low:g}: allowed: a capacity scale > 0")
    else:
        base = _value_at(resolved, knob.path, where)
    if knob.base is not None and not math.isclose(knob.base, base, rel_tol=1e-9, abs_tol=1e-12):
        raise SweepError(
            f"{where}.base = {knob.base:g}: the experiment has {knob.path} = {base:g}; allowed: {base:g} (or omit it)"
        )
    if not knob.low <= base <= knob.high:
        raise SweepError(f"{where}: base {base:g} outside [low, high] = [{knob.low:g}, {knob.high:g}]")
    if knob.path != CAPACITY:
        for level in ("low", "high"):
            _check_world(world, resolved, {knob.path: getattr(knob, level)}, f"{where}.{level}")
    return knob.model_copy(update={"base": base})


def _value_at(resolved: dict, path: str, where: str) -> float:
    """The number at a dotted path of the resolved world config; a wrong step names what is allowed there."""
    node: Any = resolved
    walked: list[str] = []
    for step in path.split("."):
        if not isinstance(node, dict) or step not in node:
            here = ".".join(walked) or "<world config>"
            allowed = ", ".join(sorted(node)) if isinstance(node, dict) else "nothing (a value)"
            raise SweepError(
                f"{where}.path = {path!r}: {step!r} is not a field of {here}; allowed: {allowed}, or {CAPACITY}"
            )
        node = node[step]
        walked.append(step)
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise SweepError(f"{where}.path = {path!r}: holds {node!r}; allowed: a numeric field")
    return float(node)


def _check_world(world: WorldSpec, resolved: dict, values: Mapping[str, float], where: str) -> None:
    """The world config with these values must validate (synthetic.config names field, value and range)."""
    from synthetic.config import ConfigError

    try:
        world.model_copy(update={"overrides": derived_overrides(world.overrides, resolved, values)}).world_config()
    except ConfigError as err:
        raise SweepError(f"{where}: {err}") from None


def derived_overrides(overrides: Mapping[str, Any], resolved: dict, values: Mapping[str, float]) -> dict[str, Any]:
    """The experiment's world overrides with each ``path → value`` set.

    A path under ``fraud.<type>`` carries the type's whole resolved entry: a partial entry for a type the preset
    does not list would be refused (its required fields missing), and the whole entry resolves to the same
    world as the base except for the knob."""
    out = _copy(overrides)
    for path, value in values.items():
        steps = path.split(".")
        if steps[0] == "fraud" and len(steps) == 3:
            entry = {**resolved["fraud"][steps[1]], **out.get("fraud", {}).get(steps[1], {})}
            _set(out, steps[:2], {**entry, steps[2]: _number(value, resolved, steps)})
        else:
            _set(out, steps, _number(value, resolved, steps))
    return out


def _number(value: float, resolved: dict, steps: Sequence[str]) -> float | int:
    """An integer field stays an integer (pydantic refuses 3.0 for persons in strict places)."""
    node: Any = resolved
    for step in steps:
        node = node[step]
    return int(value) if isinstance(node, int) and float(value).is_integer() else float(value)


def _copy(data: Any) -> Any:
    return {k: _copy(v) for k, v in data.items()} if isinstance(data, Mapping) else data


def _set(tree: dict[str, Any], steps: Sequence[str], value: Any) -> None:
    for step in steps[:-1]:
        child = tree.get(step)
        tree[step] = child = dict(child) if isinstance(child, Mapping) else {}
        tree = child
    tree[steps[-1]] = value


def _variant(
    knob: str, level: str, values: dict[str, float], overrides: Mapping[str, Any], resolved: dict, base_scale: float
) -> Variant:
    world = {p: v for p, v in values.items() if p != CAPACITY}
    return Variant(
        knob=knob,
        level=level,
        values=values,
        overrides=derived_overrides(overrides, resolved, world) if world else {},
        scale=values.get(CAPACITY, base_scale),
    )


def _one_at_a_time(
    knobs: Sequence[Knob], overrides: Mapping[str, Any], resolved: dict, base_scale: float
) -> list[Variant]:
    out = [Variant(knob="base", level="base", values={}, scale=base_scale)]
    for k in knobs:
        for level in ("low", "high"):
            out.append(_variant(k.name, level, {k.path: getattr(k, level)}, overrides, resolved, base_scale))
    return out


def two_level_design(k: int, design: str) -> list[tuple[int, ...]]:
    """Rows of ±1 of a 2^k full factorial, or of the half fraction 2^(k−1) whose last column is the product of
    the others (defining relation I = AB…K; Box, Hunter & Hunter 2005, §6.2)."""
    if design == "full":
        return list(itertools.product((-1, 1), repeat=k))
    return [(*row, math.prod(row)) for row in itertools.product((-1, 1), repeat=k - 1)]


def _joint(
    joint: JointDesign, knobs: Sequence[Knob], overrides: Mapping[str, Any], resolved: dict, base_scale: float
) -> list[Variant]:
    by_name = {k.name: k for k in knobs}
    for i, name in enumerate(joint.knobs):
        if name not in by_name:
            raise SweepError(
                f"sensitivity.joint.knobs[{i}] = {name!r}: not a knob of this sweep; allowed: {', '.join(by_name)}"
            )
    if joint.design == "half" and len(joint.knobs) < 3:
        # I = AB: the two main effects are aliased with each other (resolution II), so nothing is learnt.
        raise SweepError(
            f"sensitivity.joint.design = 'half' with {len(joint.knobs)} knobs: its two main effects are aliased; "
            "allowed: design: full, or half with 3 or more knobs"
        )
    chosen = [by_name[n] for n in joint.knobs]
    out = []
    for i, row in enumerate(two_level_design(len(chosen), joint.design)):
        values = {k.path: (k.low if s < 0 else k.high) for k, s in zip(chosen, row, strict=True)}
        out.append(_variant("joint", f"joint-{i + 1}", values, overrides, resolved, base_scale))
    return out


# ------------------------------------------------------------------------------------------------------
# Derived experiments and running them
# ------------------------------------------------------------------------------------------------------
def derived_experiment(experiment: Path, variant: Variant) -> dict[str, Any]:
    """The experiment file's mapping with the variant's world overrides and the name suffixed; relative file
    paths (world.config, world.secret_file) made absolute so the derived file works from anywhere."""
    from synthetic.config import read_yaml_file

    data = _copy(read_yaml_file(experiment, "experiment file"))
    world = data["world"]
    for key in ("config", "secret_file"):
        if key in world:
            world[key] = str((experiment.parent / world[key]).resolve())
    world["overrides"] = variant.overrides
    tag = variant.level if variant.knob == "joint" else f"{variant.knob.replace('_', '-')}-{variant.level}"
    data["name"] = f"{data['name']}--{tag}"
    return data


def write_derived(experiment: Path, variant: Variant, folder: Path) -> Path:
    """Write the variant's experiment file into ``folder`` (same content → same file, so reruns resume)."""
    import yaml

    data = derived_experiment(experiment, variant)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['name']}.yaml"
    path.write_text(
        "# derived by `fedsim sensitivity` from " + str(experiment.resolve()) + "\n" + yaml.safe_dump(data),
        encoding="utf-8",
    )
    return path


ContrastOf = Callable[[Path, float], pd.DataFrame]
"""(experiment file, capacity scale) → the primary contrast table (:func:`fedsim.contrast.primary_contrast`)."""


def run_sweep(
    sweep: Sweep,
    *,
    tracking_uri: str | None = None,
    workdir: str | Path = ".fedsim",
    progress: bool = False,
    run: Callable[[Path], Any] | None = None,
    contrast_of: ContrastOf | None = None,
) -> pd.DataFrame:
    """Run every variant that needs a world of its own (the base and capacity variants reuse the experiment's
    runs) and compute the contrast of each: one row per variant (knob, level, value, diff, lo, hi, …) with
    the verdict columns of :func:`verdicts`. ``run`` and ``contrast_of`` default to the runner and
    `fedsim compare`'s function."""
    from fedsim.contrast import primary_contrast
    from fedsim.runner import run_experiment

    root = Path(workdir)
    run = run or (lambda p: run_experiment(p, tracking_uri=tracking_uri, workdir=root, progress=progress))
    contrast_of = contrast_of or (lambda p, s: primary_contrast(p, tracking_uri=tracking_uri, workdir=root, scale=s))
    folder = root / "sensitivity" / sweep.experiment.stem
    tables: dict[tuple[str, float], pd.DataFrame] = {}
    rows = []
    run(sweep.experiment)  # the base: finished runs are reused
    for v in sweep.variants:
        path = sweep.experiment
        if v.world_changed:
            path = write_derived(sweep.experiment, v, folder)
            run(path)
        key = (str(path), v.scale)
        if key not in tables:
            tables[key] = contrast_of(path, v.scale)
        rows.append(_row(sweep, v, tables[key], path))
    return verdicts(pd.DataFrame(rows))


def _row(sweep: Sweep, v: Variant, table: pd.DataFrame, path: Path) -> dict[str, Any]:
    sel = table[(table["metric"] == sweep.metric) & (table["fraud_type"] == sweep.spec.fraud_type)]
    if sweep.spec.model is not None:
        sel = sel[sel["model"] == sweep.spec.model]
    if sel.empty:
        raise SweepError(
            f"sensitivity: no {sweep.metric} row for fraud type {sweep.spec.fraud_type!r} in the contrast of {path}"
        )
    r = sel.iloc[0]
    value = next(iter(v.values.values())) if len(v.values) == 1 else math.nan
    return {
        "knob": v.knob,
        "level": v.level,
        "value": value,
        "setting": ", ".join(f"{p} = {x:g}" for p, x in v.values.items()) or "as the experiment",
        "experiment": path.stem if path != sweep.experiment else "(base)",
        "model": r["model"],
        "metric": sweep.metric,
        "fraud_type": sweep.spec.fraud_type,
        "a": r["a"],
        "b": r["b"],
        "value_a": float(r["value_a"]),
        "value_b": float(r["value_b"]),
        "diff": float(r["diff"]),
        "lo": float(r["lo"]),
        "hi": float(r["hi"]),
        "n_seeds": int(r["n_seeds"]),
        "capacity": str(r["capacity"]),
    }


# ------------------------------------------------------------------------------------------------------
# Verdicts: where the contrast changes sign or loses significance
# ------------------------------------------------------------------------------------------------------
def sign_of(diff: float, lo: float, hi: float) -> int:
    """+1 / −1 when the 95% CI excludes 0 on that side, 0 when it covers 0 (not significant)."""
    return 1 if lo > 0 else (-1 if hi < 0 else 0)


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``significant`` (the 95% CI excludes 0), ``sign`` (of the point estimate) and ``change``: against the
    base row, 'sign flips' (point estimate on the other side of 0), 'verdict flips' (significant both ways,
    opposite signs), 'estimate at 0' (exactly 0 where the base is not), 'loses significance' or 'gains
    significance'. The base is the row with level 'base'."""
    out = table.copy()
    out["significant"] = [sign_of(d, lo, hi) != 0 for d, lo, hi in zip(out["diff"], out["lo"], out["hi"], strict=True)]
    out["sign"] = [int(math.copysign(1, d)) if d != 0 else 0 for d in out["diff"]]
    base = out[out["level"] == "base"]
    if base.empty:
        raise SweepError("sensitivity: the table has no base row")
    b = base.iloc[0]
    b_verdict = sign_of(b["diff"], b["lo"], b["hi"])
    changes = []
    for _, r in out.iterrows():
        verdict = sign_of(r["diff"], r["lo"], r["hi"])
        words = []
        if r["sign"] * b["sign"] < 0:
            words.append("verdict flips" if verdict != 0 and b_verdict != 0 else "sign flips")
        elif r["sign"] != b["sign"]:
            words.append("estimate at 0" if r["sign"] == 0 else "estimate leaves 0")
        if b_verdict != 0 and verdict == 0:
            words.append("loses significance")
        elif b_verdict == 0 and verdict != 0:
            words.append("gains significance")
        changes.append("; ".join(words))
    out["change"] = changes
    return out


def swings(table: pd.DataFrame) -> pd.DataFrame:
    """One row per one-at-a-time knob: the contrast at low and at high, the swing |high − low| and whether either
    end changes the verdict; sorted by swing, largest first (the tornado's order)."""
    rows = []
    for knob, g in table[table["level"].isin(["low", "high"])].groupby("knob", sort=False):
        lo_row = g[g["level"] == "low"].iloc[0]
        hi_row = g[g["level"] == "high"].iloc[0]
        rows.append(
            {
                "knob": knob,
                "value_low": lo_row["value"],
                "value_high": hi_row["value"],
                "at_low": lo_row["diff"],
                "at_low_lo": lo_row["lo"],
                "at_low_hi": lo_row["hi"],
                "at_high": hi_row["diff"],
                "at_high_lo": hi_row["lo"],
                "at_high_hi": hi_row["hi"],
                "swing": abs(hi_row["diff"] - lo_row["diff"]),
                "flips": bool(lo_row["change"] or hi_row["change"]),
                "change": "; ".join(
                    f"{lvl}: {c}" for lvl, c in (("low", lo_row["change"]), ("high", hi_row["change"])) if c
                ),
            }
        )
    return pd.DataFrame(rows).sort_values("swing", ascending=False, kind="stable").reset_index(drop=True)


def joint_effects(sweep: Sweep, table: pd.DataFrame) -> pd.DataFrame:
    """Main effect of each knob of the joint design: mean contrast over the points with the knob high minus the
    mean over those with it low (Box, Hunter & Hunter 2005, §5.5). A point estimate: its CI would need the
    points' shared resamples, which the contrast table does not keep."""
    if sweep.spec.joint is None:
        return pd.DataFrame(columns=["knob", "effect", "points"])
    diffs = dict(zip(table["level"], table["diff"], strict=True))
    points = [v for v in sweep.variants if v.knob == "joint"]
    rows = []
    for knob in (k for k in sweep.knobs if k.name in sweep.spec.joint.knobs):
        high = [diffs[v.level] for v in points if v.values[knob.path] == knob.high]
        low = [diffs[v.level] for v in points if v.values[knob.path] == knob.low]
        rows.append({"knob": knob.name, "effect": sum(high) / len(high) - sum(low) / len(low), "points": len(points)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------
# Output: dry run, table, files, JSON
# ------------------------------------------------------------------------------------------------------
def render_dry_run(sweep: Sweep) -> None:
    """The variants, what each changes, and how many need a world of their own (stdout)."""
    import typer

    for v in sweep.variants:
        what = ", ".join(f"{p} = {x:g}" for p, x in v.values.items()) or "the experiment as it is"
        runs = "new world, derived experiment" if v.world_changed else "reuses the base runs"
        typer.echo(f"{v.knob:<28} {v.level:<8} {what} (capacity × {v.scale:g}; {runs})")
    n = sum(v.world_changed for v in sweep.variants)
    typer.echo(f"{len(sweep.variants)} variants, {n} derived experiments (each the base grid on its own world)")


def _f(x: float, metric: str) -> str:
    return f"{x:+,.0f}" if metric.startswith("prevented") else f"{x:+.3f}"


def render_sweep(sweep: Sweep, table: pd.DataFrame, fmt: str, files: Sequence[Path] = ()) -> None:
    """The sweep table (knob, value, contrast [CI], significant?, sign, change against the base) and the knobs
    by swing, on stdout; flips are marked in the 'change' column."""
    from fedsim.sheet import Sheet, print_sheet

    first = table.iloc[0]
    sheet = Sheet(
        title=f"sensitivity of {first['a']} − {first['b']}: {sweep.metric}, fraud type {sweep.spec.fraud_type}, "
        f"{first['model']}; 95% CI covers cases × training seeds",
        columns=["knob", "level", "setting", "A − B [95% CI]", "significant", "sign", "change vs base"],
        caption="significant: the 95% CI excludes 0. change: 'sign flips' (the estimate crosses 0), 'verdict flips' "
        "(significant both ways, opposite signs), 'estimate at 0', 'loses' / 'gains significance'.",
        keys=2,
    )
    for _, r in table.iterrows():
        sheet.add_row(
            r["knob"],
            r["level"],
            r["setting"],
            f"{_f(r['diff'], sweep.metric)} [{_f(r['lo'], sweep.metric)}, {_f(r['hi'], sweep.metric)}]",
            "yes" if r["significant"] else "no",
            "+" if r["sign"] > 0 else ("−" if r["sign"] < 0 else "0"),
            r["change"] or "–",
        )
    print_sheet(sheet, fmt)
    s = swings(table)
    order = Sheet(
        title="knobs by swing |contrast at high − at low| (the tornado's order)",
        columns=["knob", "low → high", "at low", "at high", "swing", "flips"],
        keys=1,
    )
    for _, r in s.iterrows():
        order.add_row(
            r["knob"],
            f"{r['value_low']:g} → {r['value_high']:g}",
            _f(r["at_low"], sweep.metric),
            _f(r["at_high"], sweep.metric),
            f"{r['swing']:.3g}",
            r["change"] or "–",
        )
    print_sheet(order, fmt)
    effects = joint_effects(sweep, table)
    if not effects.empty:
        joint = Sheet(
            title=f"joint design ({sweep.spec.joint.design if sweep.spec.joint else ''}, {effects['points'].iloc[0]} "
            "points): main effect of each knob, low → high (point estimate; each point's CI is in the table above)",
            columns=["knob", "main effect"],
            keys=1,
        )
        for _, r in effects.iterrows():
            joint.add_row(r["knob"], _f(r["effect"], sweep.metric))
        print_sheet(joint, fmt)
    if files and fmt == "table":
        import typer

        typer.echo("written: " + ", ".join(map(str, files)))


def write_outputs(sweep: Sweep, table: pd.DataFrame, out: Path) -> list[Path]:
    """sensitivity.csv (every variant) and the tornado chart (PNG + SVG) in ``out``."""
    from fedsim.evaluation.tornado import save_tornado, tornado_figure

    out.mkdir(parents=True, exist_ok=True)
    csv = out / "sensitivity.csv"
    table.to_csv(csv, index=False)
    b = table[table["level"] == "base"].iloc[0]
    fig = tornado_figure(
        swings(table),
        base=(b["diff"], b["lo"], b["hi"]),
        title=f"{_regime(b['a'])} − {_regime(b['b'])}, {sweep.metric} ({sweep.spec.fraud_type}), {b['model']}: "
        f"each knob from low to high; whiskers: 95% CI",
        xlabel=f"A − B, {sweep.metric}",
    )
    return [csv, *save_tornado(fig, out)]


def _regime(label: str) -> str:
    """'reports (bank_1+telco)' → 'reports'."""
    return label.split(" ")[0]


def sweep_payload(sweep: Sweep, table: pd.DataFrame, files: Sequence[Path] = ()) -> dict[str, Any]:
    """Everything the command shows, JSON-able."""
    import json

    return {
        "experiment": str(sweep.experiment),
        "metric": sweep.metric,
        "fraud_type": sweep.spec.fraud_type,
        "knobs": [k.model_dump(mode="json") for k in sweep.knobs],
        "variants": json.loads(table.to_json(orient="records")),
        "swings": json.loads(swings(table).to_json(orient="records")),
        "joint_effects": json.loads(joint_effects(sweep, table).to_json(orient="records")),
        "files": [str(f) for f in files],
    }
