"""The `fedsim` command. Heavy libraries are imported inside commands so `fedsim --help` stays fast."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
import typer.core

# Offline hygiene before anything can import Flower or MLflow (see README, tech notes).
for _k, _v in {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # MLflow configures its own INFO handler on import ("Creating tables…")
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_k, _v)


class _HelpfulGroup(typer.core.TyperGroup):
    """Shows every argument's help text: with click >= 8.2 a click ``Argument`` resets ``help`` to None after
    Typer set it, so `--help` lost them; the help is restored here from each command's ``typer.Argument``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            _restore_argument_help(command)


def _restore_argument_help(command: Any) -> None:
    import inspect

    import click

    if command.callback is None:
        return
    declared = inspect.signature(command.callback).parameters
    for param in command.params:
        info = declared.get(param.name or "")
        if isinstance(param, click.Argument) and info is not None:
            help_text = getattr(info.default, "help", None)
            if help_text and not getattr(param, "help", None):
                param.help = help_text


app = typer.Typer(
    help="fedsim — would fraud-chain partners catch online fraud earlier by combining data?\n\n"
    "Tables go to stdout, logs and progress to stderr. Name an experiment by its file (experiments/demo.yaml, any "
    "directory) or, where unambiguous, by its `name:` (demo; looked up in ./experiments and the repository's).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_HelpfulGroup,
)
world_app = typer.Typer(help="Generate and inspect synthetic worlds.", no_args_is_help=True, cls=_HelpfulGroup)
app.add_typer(world_app, name="world")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"fedsim {version('fedsim')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("fedsim (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the fedsim version and exit"
    ),
) -> None:
    """The global options."""


F = TypeVar("F", bound=Callable[..., Any])
FORMAT_HELP = "table (fits the terminal or pipe; never cuts a label), csv or json"


def friendly_errors(fn: F) -> F:
    """Expected user errors become one clear message and exit code 2 — no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from synthetic.config import ConfigError
        from synthetic.world import WorldError

        expected: tuple[type[BaseException], ...] = (ConfigError, WorldError)
        try:
            from fedsim.errors import FedsimError

            expected = (*expected, FedsimError)
        except ImportError:
            pass
        try:
            return fn(*args, **kwargs)
        except expected as exc:
            _one_line_error(str(exc))
        except Exception as exc:  # a full disk mid-run: one line, not a traceback (the store stays usable)
            full = _disk_full(exc)
            if full is None:
                raise
            _one_line_error(f"{full}; free some space and run the same command again (finished runs are kept)")

    return wrapper  # type: ignore[return-value]


def _one_line_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _disk_full(exc: BaseException | None) -> str | None:
    """The words for a full disk anywhere in ``exc``'s chain (OSError ENOSPC, sqlite "disk is full"), else None."""
    import errno

    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return f"no space left on the device ({exc.filename or 'while writing'})"
        if "database or disk is full" in str(exc):
            return "no space left on the device (the MLflow store could not be written)"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


@world_app.command("generate")
@friendly_errors
def world_generate(
    out: Path = typer.Option(..., "--out", help="directory to write the world to (must not exist)"),
    seed: int = typer.Option(..., "--seed", help="random seed (whole number >= 0)"),
    preset: str | None = typer.Option(None, "--preset", help="named preset: default, small, known-answer, placebo"),
    config: Path | None = typer.Option(None, "--config", help="YAML world config (may start from `preset: NAME`)"),
    persons: int | None = typer.Option(None, "--persons", help="override the number of persons"),
    days: int | None = typer.Option(None, "--days", help="override the horizon in days"),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="processes for legitimate activity"),
    block_persons: int | None = typer.Option(
        None,
        "--block-persons",
        help="stream the world to disk in blocks of this many persons (memory bounded by a block; "
        "generation.block_persons)",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace an existing world directory (only a fedsim world or an empty directory)"
    ),
    secret_file: Path | None = typer.Option(
        None,
        "--secret-file",
        help="file of >= 32 secret bytes (default: $FEDSIM_WORLD_SECRET_FILE); needed to export partner folders",
    ),
) -> None:
    """Generate a world: hidden truth + one Parquet view per partner + manifest."""
    from rich.console import Console

    from fedsim.progress import progress_bar
    from synthetic.config import build_config, shorthand_overrides
    from synthetic.world import WorldError, check_replaceable, generate_to, read_manifest, secret_from

    if seed < 0:
        raise WorldError(f"--seed = {seed}: allowed: a whole number >= 0")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise WorldError(f"output directory {str(out)!r} already exists; pass --overwrite to replace it")
        check_replaceable(out)  # before the (long) generation, not after it
    cfg = build_config(
        preset=preset if (preset or config) else "default",
        config_file=config,
        overrides=shorthand_overrides(persons=persons, days=days, block_persons=block_persons),
    )
    secret = secret_from(secret_file)  # read before the (long) generation: a bad file fails at once
    console = Console(stderr=True)
    with_secret = " with a world secret" if secret else ""
    console.print(f"Generating a {cfg.mode} world (seed {seed}){with_secret} …")
    with progress_bar() as progress:  # with person blocks the tables go to disk as they are made
        path = generate_to(cfg, seed, out, workers=workers, progress=progress, secret=secret, overwrite=overwrite)
    manifest = read_manifest(path)
    console.print(
        f"Wrote world to [bold]{out}[/] — content hash {str(manifest['content_hash'])[:16]}…, "
        f"partners: {', '.join(manifest['partners'])}"
    )


@world_app.command("describe")
@friendly_errors
def world_describe(
    path: Path = typer.Argument(..., help="world directory"),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    screen: bool = typer.Option(True, "--screen/--no-screen", help="run the leak screen (takes a few seconds)"),
) -> None:
    """Rows per table, prevalence and loss per fraud type, calibration table and leak screen."""
    from fedsim.sheet import check_format
    from fedsim.world_describe import render_description
    from synthetic.describe import describe_world
    from synthetic.world import read_world

    fmt = check_format(fmt, as_json)
    world = read_world(path)
    desc = describe_world(world, screen=screen)
    if fmt == "json":
        sys.stdout.write(json.dumps(desc, indent=2, default=str) + "\n")
    else:
        render_description(desc, fmt=fmt)


TRACKING_HELP = "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)"


def _setup_logging(verbose: bool) -> None:
    """Logs go to stderr (tables own stdout); ``verbose=False`` (``--quiet``) keeps warnings and errors only."""
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False)],
        force=True,
    )
    for name in ("fedsim", "fedsim.experiment", "fedsim.run", "fedsim.regimes"):
        logging.getLogger(name).setLevel(level)
    for noisy in ("mlflow", "alembic", "flwr", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


EXPERIMENT_HELP = "experiment file (any directory) or, where unambiguous, its `name:` (found in ./experiments)"


def _experiment_dirs() -> list[Path]:
    repo = Path(__file__).resolve().parents[1] / "experiments"
    return list(dict.fromkeys(p.resolve() for p in (Path("experiments"), Path("."), repo) if p.is_dir()))


def _declared_name(path: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def experiment_file(ref: str | Path) -> Path:
    """The experiment file ``ref`` names: an existing file as given, else the one file in ./experiments (or the
    repository's experiments/) whose stem or `name:` equals ``ref``; a missing or ambiguous name exits 2."""
    from fedsim.errors import FedsimError

    path = Path(ref)
    if path.is_file():
        return path
    if path.exists():
        raise FedsimError(f"experiment {str(ref)!r} is a directory; give an experiment file (*.yaml)")
    text = str(ref)
    if "/" in text or text.endswith((".yaml", ".yml")):
        raise FedsimError(f"experiment file {text!r} not found")
    dirs = _experiment_dirs()
    found = list(
        dict.fromkeys(
            f.resolve() for d in dirs for f in sorted(d.glob("*.y*ml")) if f.stem == text or _declared_name(f) == text
        )
    )
    if len(found) == 1:
        return found[0]
    where = ", ".join(str(d) for d in dirs) or "no experiments directory here"
    if not found:
        raise FedsimError(f"experiment {text!r}: no such file, and no experiment of that name in {where}")
    raise FedsimError(f"experiment {text!r} is ambiguous: {', '.join(map(str, found))}; give the file")


def experiment_name_of(ref: str) -> str:
    """The tracking name for ``ref``: the `name:` of an experiment file, else ``ref`` itself (a name in the store)."""
    path = Path(ref)
    if path.is_file():
        from fedsim.errors import FedsimError

        name = _declared_name(path)
        if name is None:
            raise FedsimError(f"experiment file {ref!r} has no `name:`")
        return name
    return ref


@app.command("run")
@friendly_errors
def run(
    experiment_ref: str = typer.Argument(..., metavar="EXPERIMENT", help=EXPERIMENT_HELP),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where worlds and run artifacts are cached (relative to the current dir)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="only warnings and the summary"),
    world_seed: list[int] = typer.Option(
        [], "--world-seed", help="run on this world seed instead of the experiment's (repeat for several worlds)"
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="list the grid's runs, their count and an estimated wall time from measured runs in the store; "
        "build nothing",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help="run the federated cells' Flower simulation on this existing Ray cluster (host:port of its head, "
        "`ray start --head`) instead of a private Ray (default: $RAY_ADDRESS, else private; 'local' forces "
        "private). Logged as fl_engine_address; not part of any config hash",
    ),
) -> None:
    """Run an experiment grid; finished runs are reused, interrupted ones redone."""
    from rich.console import Console

    from fedsim.experiment_summary import run_and_summarise as run_experiment
    from fedsim.interrupts import interrupts_end_the_run

    _setup_logging(not quiet)
    experiment = experiment_file(experiment_ref)
    if dry_run:
        _print_grid(experiment, n_worlds=max(1, len(world_seed)), tracking_uri=tracking_uri, workdir=workdir)
        return
    _choose_ray(ray_address)
    seeds: list[int | None] = list(world_seed) or [None]
    for seed in seeds:
        with interrupts_end_the_run(experiment):
            summary = run_experiment(
                experiment, tracking_uri=tracking_uri, workdir=workdir, progress=not quiet, world_seed=seed
            )
        on = "" if seed is None else f" on world seed {seed}"
        Console(stderr=True).print(
            f"[bold green]done{on}:[/] {summary.executed} run(s) executed, {summary.reused} reused, "
            f"{summary.replaced} unfinished replaced. See them with `fedsim runs {experiment_ref}` or `fedsim ui`."
        )


def _choose_ray(address: str | None) -> None:
    """``--ray-address`` (else ``$RAY_ADDRESS``): checked and probed now, before any world is built."""
    if address is None and not os.environ.get("RAY_ADDRESS", "").strip():
        return
    from fedsim.federation.engine import probe_ray_cluster, ray_address, use_ray_cluster

    use_ray_cluster(address)
    chosen = ray_address()
    if chosen is not None:
        probe_ray_cluster(chosen)
        logging.getLogger("fedsim").info("federated simulations run on the Ray cluster at %s", chosen)


def _print_grid(
    experiment: Path, *, n_worlds: int, tracking_uri: str | None = None, workdir: Path | None = None
) -> None:
    """The cells `fedsim run` would execute (validation included), one per line, then the count and the
    estimated wall time (:mod:`fedsim.experiment.cost`), on stdout."""
    from fedsim.experiment import expand, load_experiment
    from fedsim.experiment.grid import cells_by_regime_and_coalition, refused
    from fedsim.runner import partners_of
    from synthetic.schema import partner_block

    spec = load_experiment(experiment)
    partners = partners_of(spec)
    spec.validate_against(partners)
    kinds = {p: partner_block(p) for p in partners}
    cells = expand(spec, partners, kinds=kinds)
    for cell in cells:
        typer.echo(cell.describe())
    typer.echo("cells per regime and coalition:")
    for regime, coalition, n in cells_by_regime_and_coalition(cells):
        typer.echo(f"  {regime:<14} {'+'.join(coalition)}: {n}")
    lattice = spec.lattice
    if lattice is not None:
        players = lattice.players(partners)
        how = (
            f"every non-empty subset of {len(players)} partners ({2 ** len(players) - 1})"
            if lattice.exact(partners)
            else f"prefixes of {lattice.permutations} sampled orders of {len(players)} partners "
            f"(permutation sampling, seed {lattice.permutation_seed}): {len(spec.coalition_list(partners))} coalitions"
        )
        typer.echo(f"coalition lattice: {how}; singletons run as `siloed`")
    for regime, coalition, why in refused(spec, partners, kinds=kinds):
        reason = why.split(": ", 1)[-1]  # the regime's words without its "regime X, coalition = Y:" prefix
        typer.echo(f"skipped ({regime}, {'+'.join(coalition)}): {reason}")
    worlds = "" if n_worlds == 1 else f" on each of {n_worlds} worlds ({len(cells) * n_worlds} in all)"
    typer.echo(f"{spec.name}: {len(cells)} runs{worlds}")
    _print_estimate(spec, cells, n_worlds=n_worlds, tracking_uri=tracking_uri, workdir=workdir)


def _print_estimate(
    spec: Any, cells: list[Any], *, n_worlds: int, tracking_uri: str | None, workdir: Path | None
) -> None:
    """The grid's estimated wall time from the store's measured runs (read only: a missing store is not created)."""
    from fedsim.experiment.cost import describe_estimate, estimate_grid, measured_costs, person_days
    from fedsim.runner import world_dir
    from fedsim.tracking import finished_cells, resolve_tracking_uri

    store = resolve_tracking_uri(tracking_uri)
    cached = n_worlds == 1 and workdir is not None and world_dir(spec, workdir / "worlds").is_dir()
    if n_worlds == 1:  # other world seeds change every cell's config hash: their runs are counted there
        done = finished_cells(store, spec.name)
        left = [c for c in cells if not _finished(c, done, _cached_world_hash(spec, workdir))]
        if len(left) < len(cells):
            typer.echo(
                f"{len(cells) - len(left)} of {len(cells)} runs already finished in {store} (reused, not redone); "
                f"the estimate is for the other {len(left)}"
            )
        cells = left
    est = estimate_grid(
        cells, measured_costs(store), world_person_days=person_days(spec.world), n_worlds=n_worlds, world_cached=cached
    )
    for line in describe_estimate(est, store=store):
        typer.echo(line)


def _cached_world_hash(spec: Any, workdir: Path | None) -> str | None:
    """Content hash of the experiment's world if it is cached in ``workdir`` (read from its manifest), else None."""
    from fedsim.runner import world_dir

    manifest = world_dir(spec, workdir / "worlds") / "manifest.json" if workdir is not None else None
    if manifest is None or not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text()).get("content_hash") or "") or None


def _finished(cell: Any, done: dict[str, str], world_hash: str | None) -> bool:
    """Whether the store holds a finished run of ``cell``: a run's config hash includes the world's content hash,
    known here from the cached world, else from the finished runs themselves."""
    hashes = {world_hash} if world_hash else {w for w in done.values() if w}
    return any(cell.model_copy(update={"world_digest": h}).config_hash in done for h in hashes)


@app.command("runs")
@friendly_errors
def runs(
    experiment_ref: str = typer.Argument(
        ..., metavar="EXPERIMENT", help="experiment file, or the `name:` its runs are stored under"
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    scale: float = typer.Option(
        1.0, "--capacity-scale", help="alert capacity shown: multiple of the calibrated capacity (default 1)"
    ),
    capacity: float | None = typer.Option(
        None, "--capacity", help="instead, a uniform fraction k (only runs logged before the calibrated capacity)"
    ),
    all_worlds: bool = typer.Option(False, "--all-worlds", help="also runs made on older versions of the world"),
) -> None:
    """One row per finished run with the primary outcomes and their 95% CIs."""
    from fedsim.sheet import check_format
    from fedsim.tracking import check_store

    fmt = check_format(fmt, as_json)
    experiment_name = experiment_name_of(experiment_ref)
    tracking_uri = check_store(tracking_uri)  # before the heavy imports: an unreachable store fails in seconds
    from fedsim.summary import privacy_curve, render_privacy_curve, render_runs, runs_summary, seed_summary

    where = {"scale": scale, "capacity": capacity, "all_worlds": all_worlds}
    table = runs_summary(experiment_name, tracking_uri=tracking_uri, **where)  # type: ignore[arg-type]
    curve = privacy_curve(experiment_name, tracking_uri=tracking_uri, **where)  # type: ignore[arg-type]
    if fmt == "json":
        payload = {
            "runs": json.loads(table.to_json(orient="records")),
            "over_seeds": json.loads(seed_summary(table).to_json(orient="records")),
            "privacy_utility": json.loads(curve.to_json(orient="records")) if curve is not None else [],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        render_runs(table, experiment_name, fmt)
        if curve is not None:
            words = f"{capacity:g} of entities/day (uniform)" if capacity is not None else f"{scale:g} × calibrated"
            render_privacy_curve(curve, capacity=words, fmt=fmt)


@app.command("compare")
@friendly_errors
def compare_cmd(
    experiment_ref: str = typer.Argument(
        ..., metavar="EXPERIMENT", help=EXPERIMENT_HELP + "; its `primary:` contrast is the default"
    ),
    a: str | None = typer.Option(None, "--a", help="regime A (default: primary contrast)"),
    b: str | None = typer.Option(None, "--b", help="regime B (default: primary contrast)"),
    scale: float | None = typer.Option(
        None, "--capacity-scale", help="multiple of the calibrated alert capacity (default: the primary's, 1)"
    ),
    capacity: float | None = typer.Option(
        None, "--capacity", help="instead, a uniform fraction k of every partner's entities per day"
    ),
    world_seed: list[int] = typer.Option(
        [], "--world-seed", help="world seed to include (repeat: the worlds are combined; default the experiment's)"
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where the experiment's world is cached (relative to the current dir)"
    ),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
) -> None:
    """Paired comparison of two regimes' runs: A − B with a 95% CI and P(A > B), per fraud type."""
    from fedsim.contrast import contrast_payload, primary_contrast, render_contrast
    from fedsim.sheet import check_format
    from fedsim.tracking import check_store

    fmt = check_format(fmt, as_json)
    experiment = experiment_file(experiment_ref)
    tracking_uri = check_store(tracking_uri)
    table = primary_contrast(
        experiment,
        tracking_uri=tracking_uri,
        workdir=workdir,
        a=a,
        b=b,
        capacity=capacity,
        scale=scale,
        world_seeds=world_seed or None,
    )
    if fmt == "json":
        sys.stdout.write(json.dumps(contrast_payload(table), indent=2) + "\n")
    else:
        render_contrast(table, fmt)


@app.command("value")
@friendly_errors
def value_cmd(
    experiment_ref: str = typer.Argument(
        ..., metavar="EXPERIMENT", help=EXPERIMENT_HELP + "; best with `coalitions: lattice`"
    ),
    metric: str | None = typer.Option(
        None, "--metric", help="v(S): ed_h<h>, detected, prevented_eur_d<Δ>_r<ρ>, roc_auc (default: the primary's)"
    ),
    scale: float | None = typer.Option(
        None, "--capacity-scale", help="multiple of the calibrated alert capacity (default: the primary's, 1)"
    ),
    margin: float = typer.Option(
        0.0, "--margin", help="near-best: lower end of the paired CI of v(best) − v(S) at most this (default 0)"
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where the experiment's world is cached (relative to the current dir)"
    ),
    world_seed: list[int] = typer.Option(
        [],
        "--world-seed",
        help="report on this world seed's runs (repeat: one report per world, then a cross-world summary; "
        "default: the experiment's own world)",
    ),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
) -> None:
    """Each partner's value (Shapley, Banzhaf, leave-one-out) with CIs, the most effective and the smallest
    near-best coalition per fraud type, gains and the waterfall, from the runs of a coalition lattice.

    With --world-seed (repeatable) the same per world, and for 2+ worlds whether the answer is stable across
    them; CIs stay per world (a world draw is another population, not another training seed)."""
    from fedsim.sheet import check_format
    from fedsim.tracking import check_store

    fmt = check_format(fmt, as_json)
    experiment = experiment_file(experiment_ref)
    tracking_uri = check_store(tracking_uri)
    from fedsim.value import (
        partner_value,
        partner_value_worlds,
        render_value,
        render_value_worlds,
        value_payload,
        value_worlds_payload,
    )

    if world_seed:
        result = partner_value_worlds(
            experiment,
            world_seed,
            tracking_uri=tracking_uri,
            workdir=workdir,
            metric=metric,
            scale=scale,
            margin=margin,
        )
        if fmt == "json":
            sys.stdout.write(json.dumps(value_worlds_payload(result), indent=2) + "\n")
        else:
            render_value_worlds(result, fmt)
        return
    report = partner_value(
        experiment, tracking_uri=tracking_uri, workdir=workdir, metric=metric, scale=scale, margin=margin
    )
    if fmt == "json":
        sys.stdout.write(json.dumps(value_payload(report), indent=2) + "\n")
    else:
        render_value(report, fmt)


@app.command("adapt")
@friendly_errors
def adapt_cmd(
    experiment_ref: str = typer.Argument(
        ..., metavar="EXPERIMENT", help=EXPERIMENT_HELP + "; its world needs a barrier inside the test window(s)"
    ),
    baseline: str = typer.Option("status_quo", "--baseline", help="regime the gains are measured against"),
    scale: float | None = typer.Option(
        None, "--capacity-scale", help="multiple of the calibrated alert capacity (default: the primary's, 1)"
    ),
    window: int = typer.Option(7, "--window", help="k: days of the forward rate that must be back (default 7)"),
    tolerance: float = typer.Option(
        0.2, "--tolerance", help="recovered at >= (1 - tolerance) x the pre-barrier level (default 0.2)"
    ),
    barrier_day: int | None = typer.Option(None, "--barrier-day", help="which barrier (default: the first inside)"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where the experiment's world is cached (relative to the current dir)"
    ),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
) -> None:
    """Adaptation after a barrier, per regime: ED(0) before and after it, the days until detection recovers
    [95% CI], and the gain over the baseline before and after it (paired, CI over cases x seeds)."""
    from fedsim.sheet import check_format
    from fedsim.tracking import check_store

    fmt = check_format(fmt, as_json)
    experiment = experiment_file(experiment_ref)
    tracking_uri = check_store(tracking_uri)
    from fedsim.adapt import adaptation_payload, adaptation_report, render_adaptation

    report = adaptation_report(
        experiment,
        tracking_uri=tracking_uri,
        workdir=workdir,
        baseline=baseline,
        scale=scale,
        window_days=window,
        tolerance=tolerance,
        barrier_day=barrier_day,
    )
    if fmt == "json":
        sys.stdout.write(json.dumps(adaptation_payload(report), indent=2) + "\n")
    else:
        render_adaptation(report, fmt)


@app.command("sensitivity")
@friendly_errors
def sensitivity_cmd(
    experiment_ref: str = typer.Argument(..., metavar="EXPERIMENT", help=EXPERIMENT_HELP + "; its primary contrast"),
    sweep_file: Path = typer.Argument(..., metavar="SWEEP", help="sweep file with a `sensitivity:` section"),
    out: Path | None = typer.Option(None, "--out", help="directory for tornado.png, tornado.svg and sensitivity.csv"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="worlds, artifacts and derived experiments (relative to the current dir)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the variants and their world overrides; run nothing"),
    quiet: bool = typer.Option(False, "--quiet", help="only warnings and the table"),
    fmt: str = typer.Option("table", "--format", help=FORMAT_HELP),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
) -> None:
    """Sensitivity sweep: each knob of the world at its low and high value (plus an optional joint design), the
    primary contrast [95% CI] of each, where it changes sign or loses significance, and a tornado chart."""
    from fedsim.sheet import check_format

    fmt = check_format(fmt, as_json)
    _setup_logging(not quiet)
    experiment = experiment_file(experiment_ref)
    from fedsim.sensitivity import load_sweep, render_dry_run, render_sweep, run_sweep, sweep_payload, write_outputs

    sweep = load_sweep(experiment, sweep_file)
    if dry_run:
        render_dry_run(sweep)
        return
    from fedsim.interrupts import interrupts_end_the_run
    from fedsim.tracking import check_store

    tracking_uri = check_store(tracking_uri)
    with interrupts_end_the_run(experiment):
        table = run_sweep(sweep, tracking_uri=tracking_uri, workdir=workdir, progress=not quiet)
    files = write_outputs(sweep, table, out) if out is not None else []
    if fmt == "json":
        sys.stdout.write(json.dumps(sweep_payload(sweep, table, files), indent=2) + "\n")
    else:
        render_sweep(sweep, table, fmt, files)


@app.command("audit")
@friendly_errors
def audit(
    experiment_ref: str = typer.Argument(
        ..., metavar="EXPERIMENT", help=EXPERIMENT_HELP + "; its world, model and privacy settings are audited"
    ),
    partner: str | None = typer.Option(
        None, "--partner", help="partner whose training set is attacked (default: the one with most entities in it)"
    ),
    epsilon: list[float] = typer.Option([1.0, 4.0, float("inf")], "--epsilon", help="ε values to audit (repeat)"),
    seed: int = typer.Option(0, "--seed", help="seed of the audit"),
    out: Path | None = typer.Option(
        None, "--out", help="directory for membership_audit.csv, canary_audit.csv and leakage_register.csv"
    ),
    language: str = typer.Option("en", "--language", help="en or nl for the plain-language odds"),
    canaries: int = typer.Option(
        1000,
        "--canaries",
        min=0,
        help="canary entities m of the one-run audit (each in with probability 1/2; 0 = skip)",
    ),
    canary_guesses: int = typer.Option(
        100, "--canary-guesses", min=1, help="canary guesses per side: 'in' for the highest scores, 'out' the lowest"
    ),
    canary_epochs: int = typer.Option(
        100, "--canary-epochs", min=1, help="epochs of the canary audit's mlp (long enough to memorise)"
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where the experiment's world is cached (relative to the current dir)"
    ),
) -> None:
    """Empirical privacy audit: one-run canary audit (ε lower bound), membership inference vs the DP bound, and the
    leakage register; the audit tables are kept with the experiment's summary run in MLflow (for `fedsim report`)."""
    import tempfile

    from fedsim.audit import audit_command
    from fedsim.experiment import load_experiment
    from fedsim.experiment_summary import attach_to_summary
    from fedsim.report.gather_audit import AUDIT_FOLDER
    from fedsim.tracking import check_store

    _setup_logging(True)
    path = experiment_file(experiment_ref)
    tracking_uri = check_store(tracking_uri)
    with tempfile.TemporaryDirectory() as scratch:
        folder = out if out is not None else Path(scratch)
        audit_command(
            path,
            partner=partner,
            epsilons=tuple(epsilon),
            seed=seed,
            out=folder,
            language=language,
            canaries=canaries,
            canary_guesses=canary_guesses,
            canary_epochs=canary_epochs,
            workdir=workdir,
        )
        # the experiment's summary run keeps the audit, so `fedsim report` shows it
        files = sorted(Path(folder).glob("*_audit.csv"))
        attach_to_summary(load_experiment(path).name, tracking_uri, files, folder=AUDIT_FOLDER)


@app.command("report")
@friendly_errors
def report_cmd(
    experiment_ref: str = typer.Argument(..., metavar="EXPERIMENT", help=EXPERIMENT_HELP),
    lang: str = typer.Option("both", "--lang", help="nl, en or both"),
    out: Path | None = typer.Option(
        None, "--out", help="directory for report.<lang>.html and report.<lang>.pdf (default reports/<experiment>)"
    ),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where the experiment's world is cached (relative to the current dir)"
    ),
) -> None:
    """The effectiveness report for policymakers: a self-contained HTML page and a PDF per language, built only
    from the experiment's tracked runs (so it can be re-rendered at any time)."""
    from fedsim.report.render import report_languages
    from fedsim.tracking import check_store

    langs = report_languages(lang)
    experiment = experiment_file(experiment_ref)
    tracking_uri = check_store(tracking_uri)
    paths = _write_report(experiment, langs, out, tracking_uri=tracking_uri, workdir=workdir)
    typer.echo("report written:\n" + "\n".join(f"  {p}" for p in paths))


def _write_report(
    experiment: Path, langs: tuple[Any, ...], out: Path | None, *, tracking_uri: str | None, workdir: Path
) -> list[Path]:
    from fedsim.experiment_summary import attach_to_summary
    from fedsim.report.gather import gather_report
    from fedsim.report.render import write_report

    model = gather_report(experiment, tracking_uri=tracking_uri, workdir=workdir)
    paths = write_report(model, out if out is not None else Path("reports") / model.experiment, langs)
    attach_to_summary(model.experiment, tracking_uri, paths)  # MLflow keeps the reports with the experiment
    return paths


deploy_app = typer.Typer(
    help="Cross-machine Flower deployment of an experiment's federated cells.", no_args_is_help=True, cls=_HelpfulGroup
)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("write-app")
@friendly_errors
def deploy_write_app(
    experiment: Path = typer.Argument(..., help="experiment file with a horizontal regime"),
    out: Path = typer.Option(..., "--out", help="directory to write the Flower app to (new or empty)"),
    out_dir: Path = typer.Option(
        Path("fedsim-out"), "--out-dir", help="where the server and each partner write results, on their machines"
    ),
    seed: int | None = typer.Option(None, "--seed", help="training seed of the cell (default: the first)"),
    epsilon: float | None = typer.Option(None, "--epsilon", help="ε of the cell (default: the first)"),
) -> None:
    """Write the Flower app of one horizontal cell, every setting included (privacy too), for `flwr run`."""
    from fedsim.deploy import write_horizontal_app

    path = write_horizontal_app(experiment, dest=out, out_dir=out_dir, seed=seed, epsilon=epsilon)
    typer.echo(f"Flower app written to {path}; run it with `flwr run {path} <connection> --stream`")


@deploy_app.command("evaluate")
@friendly_errors
def deploy_evaluate(
    experiment: Path = typer.Argument(..., help="the experiment file the app was written from"),
    scores: Path = typer.Option(
        ...,
        "--scores",
        help="the out-dir gathered from the machines: <partner>/scores_test.parquet, server/outcome.json",
    ),
    seed: int | None = typer.Option(None, "--seed", help="training seed of the cell (as given to write-app)"),
    epsilon: float | None = typer.Option(None, "--epsilon", help="ε of the cell (as given to write-app)"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    workdir: Path = typer.Option(
        Path(".fedsim"), "--workdir", help="where the experiment's world is cached (relative to the current dir)"
    ),
) -> None:
    """Evaluate a deployment's collected scores and log the same MLflow run a simulation of that cell makes."""
    from fedsim.deploy import evaluate_deployment

    _setup_logging(False)
    run_id = evaluate_deployment(
        experiment, scores_dir=scores, seed=seed, epsilon=epsilon, tracking_uri=tracking_uri, workdir=workdir
    )
    typer.echo(f"deployment evaluated: MLflow run {run_id} (fl_engine = deployment)")


@app.command("ui")
def ui(
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
    port: int = typer.Option(5000, "--port", help="port of the MLflow UI on 127.0.0.1"),
) -> None:
    """Open the MLflow UI on the tracking store: one worker, on the runs of the most recent experiment."""
    from fedsim.mlflow_ui import serve_ui
    from fedsim.tracking import resolve_tracking_uri

    serve_ui(resolve_tracking_uri(tracking_uri), port)


@app.command("demo")
@friendly_errors
def demo(
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", help=TRACKING_HELP),
) -> None:
    """Run experiments/demo.yaml end to end, write its report to reports/demo/ (nl and en) and say where to look."""
    from rich.console import Console

    from fedsim.experiment_summary import run_and_summarise as run_experiment
    from fedsim.summary import render_runs, runs_summary

    _setup_logging(True)
    here = Path("experiments/demo.yaml")
    if not here.is_file():
        raise typer.BadParameter("experiments/demo.yaml not found; run `fedsim demo` from the repository root")
    run_experiment(here, tracking_uri=tracking_uri)
    render_runs(runs_summary("demo", tracking_uri=tracking_uri), "demo")
    from fedsim.contrast import primary_contrast, render_contrast

    contrast = primary_contrast(here, tracking_uri=tracking_uri)
    render_contrast(contrast[contrast["fraud_type"].isin(["all", "helpdesk", "purchase"])])
    from fedsim.tracking import resolve_tracking_uri

    # The store and workdir run_experiment used (its defaults), so the report reads the runs just made.
    store = resolve_tracking_uri(tracking_uri)
    paths = _write_report(here, ("nl", "en"), Path("reports/demo"), tracking_uri=store, workdir=Path(".fedsim"))
    Console().print(
        "\nNext: [bold]make ui[/] opens MLflow on ./mlflow.db (experiment 'demo'); "
        "`.venv/bin/fedsim runs demo` lists the runs, `.venv/bin/fedsim compare experiments/demo.yaml` the "
        "primary contrast per fraud type.\nThe demo's report (Dutch and English, HTML and PDF):\n"
        + "\n".join(f"  {p}" for p in paths),
        highlight=False,
    )


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
