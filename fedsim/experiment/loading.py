"""Experiment files → :class:`~fedsim.experiment.spec.ExperimentSpec`: YAML with unique keys, and pydantic's
errors translated into one :class:`~fedsim.experiment.spec.ExperimentError` whose lines name the field
path, the value and what is allowed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fedsim.experiment.spec import _PATTERN_WORDS, _UNION_TAGS, ExperimentError, ExperimentSpec
from fedsim.regimes import get_regime

_KEY = "[key]"  # pydantic's location of a mapping key's error; the path already names the key


def load_experiment(path: str | Path) -> ExperimentSpec:
    """Read and validate one experiment YAML file; relative world config paths are taken from its folder.

    File-level problems (missing file, a folder, not UTF-8, invalid YAML, duplicate or unhashable keys,
    nesting too deep) are an :class:`ExperimentError` naming the file, as are an empty file and field errors.
    """
    from synthetic.config import YamlFileError, read_yaml_file

    path = Path(path)
    try:
        data = read_yaml_file(path, "experiment file")
    except YamlFileError as err:
        raise ExperimentError(str(err)) from None
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
    loc = tuple(part for part in e["loc"] if part not in _UNION_TAGS and part != _KEY)
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
    if len(loc) == 2 and loc[0] == "regime_settings":  # a regime's own settings model (Regime.settings_model)
        settings = get_regime(str(loc[1])).settings_model
        if settings is not None:
            return settings
    model = root
    for part in loc:
        if isinstance(part, str) and part in model.model_fields:
            annotation = model.model_fields[part].annotation
            candidates = getattr(annotation, "__args__", (annotation,))
            model = next(c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel))
    return model
