"""Console rendering of a world description (``fedsim world describe``): rich tables, nothing computed here.

The description itself is :func:`synthetic.describe.describe_world`; this module only prints it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from fedsim.sheet import Sheet, print_sheet
from synthetic.calibration import NL_PERSONS_15PLUS, format_value

_FORMAT = "table"
"""How tables are printed in this process (``fedsim world describe --format``); prose always goes to ``console``."""


def render_description(desc: dict[str, Any], console: Console | None = None, fmt: str = "table") -> None:
    """Print a description (from :func:`describe_world`) as tables that never cut a word (:mod:`fedsim.sheet`).

    ``fmt="csv"``: the tables as csv on stdout, and the prose lines on stderr so stdout stays parseable."""
    global _FORMAT
    _FORMAT = fmt
    console = console or Console(stderr=fmt == "csv")
    s = desc["summary"]
    console.rule(
        f"[bold]{s['mode']} world[/] · seed {s['seed']} · {s.get('persons', 0):,} persons × "
        f"{s.get('days', 0)} days · hash {str(s['content_hash'])[:16]}"
    )
    _render_rows(console, desc["rows"], s["partners"])
    if "known_answer" in desc:
        _render_known_answer(console, desc["known_answer"])
        return
    _render_fraud_types(console, desc["fraud_types"])
    _render_calibration(console, desc["calibration"])
    if "leak_screen" in desc:
        _render_leak_screen(console, desc["leak_screen"])
        _render_value_shapes(console, desc["leak_screen"].get("value_shape"))


def _table(title: str, *columns: str) -> Sheet:
    return Sheet(title=title, columns=list(columns))


def _print(console: Console, sheet: Sheet) -> None:
    print_sheet(sheet, _FORMAT, console=None if _FORMAT == "csv" else console)


def _render_rows(console: Console, rows: dict[str, dict[str, int]], partners: dict[str, str]) -> None:
    t = _table("Rows per table", "partner", "kind", "tables (rows)")
    for p, tables in rows.items():
        t.add_row(p, partners.get(p, "hidden"), " · ".join(f"{k} {v:,}" for k, v in tables.items()))
    _print(console, t)


def _render_known_answer(console: Console, ka: dict[str, Any]) -> None:
    t = _table(
        f"Known-answer world: {ka['cases']:,} cases — best achievable AUC (closed form)",
        "partner",
        "shift d_p",
        "optimal AUC",
    )
    for r in ka["partners"]:
        t.add_row(r["partner"], f"{r['shift']:.2f}", f"{r['optimal_auc']:.3f}")
    t.add_row("[bold]all partners[/]", "", f"[bold]{ka['all_partners_optimal_auc']:.3f}[/]")
    _print(console, t)


def _render_fraud_types(console: Console, types: list[dict[str, Any]]) -> None:
    t = _table(
        f"Fraud types — national figures divide the multiplier out and scale to "
        f"{NL_PERSONS_15PLUS / 1e6:.1f}M people aged 15+",
        "type",
        "cases",
        "reported",
        "median loss",
        "×mult",
        "per 100k/yr",
        "NL victims/yr",
        "NL €/yr",
        "victims/mule",
    )
    for r in types:
        t.add_row(
            r["fraud_type"],
            f"{r['cases']:,}",
            format_value(r["reported_share"], "share"),
            format_value(r["loss_median_eur"], "EUR"),
            f"{r['multiplier']:g}",
            format_value(r["per_100k_year"]),
            format_value(r["nl_victims_year"]),
            format_value(r["nl_eur_year"], "EUR"),
            format_value(r["victims_per_mule"]),
        )
    _print(console, t)


def _mark(ok: bool | None) -> str:
    return "[dim]context[/]" if ok is None else ("[green]✓[/]" if ok else "[bold red]✗[/]")


def _render_calibration(console: Console, rows: list[dict[str, Any]]) -> None:
    t = _table(
        "Calibration against Dutch figures (world.md §6; ±25% unless a range or bound is given)",
        "quantity",
        "generated",
        "n",
        "target",
        "ok",
        "ref",
    )
    notes: list[str] = []
    for r in rows:
        mark = "[dim]—[/]" if r["ok"] is None and not r["context"] else _mark(r["ok"])
        quantity = r["quantity"]
        if r["note"]:
            notes.append(f"[{len(notes) + 1}] {r['quantity']}: {r['note']}")
            quantity += f" [{len(notes)}]"
        t.add_row(quantity, format_value(r["generated"], r["unit"]), f"{r['n']:,}", r["target"], mark, r["ref"])
    _print(console, t)
    for n in notes:
        console.print(n, style="dim", highlight=False, markup=False)
    console.print("Full sources: `fedsim world describe --json` (calibration[].source)", style="dim")


def _render_value_shapes(console: Console, vs: dict[str, Any] | None) -> None:
    if vs is None:
        return
    t = _table(
        f"Value-shape probes ({vs['probes']:,} run; cents, multiples, last digits, lengths at case level)",
        "partner/table",
        "stratum",
        "column",
        "shape",
        "separation",
        "flagged",
    )
    rows = vs["flagged"] or ([vs["strongest"]] if vs["strongest"] else [])
    for r in rows:
        t.add_row(
            f"{r['partner']}/{r['table']}",
            r["stratum"],
            r["column"],
            r["shape"],
            f"{r['separation']:.3f}",
            "[bold red]yes[/]" if r["flagged"] else "no (strongest)",
        )
    _print(console, t)


def _render_leak_screen(console: Console, ls: dict[str, Any]) -> None:
    v = ls["verdicts"]
    console.print(
        "[bold]Leak screen[/] (world.md §8): " + " · ".join(f"{k.replace('_', ' ')} {_mark(ok)}" for k, ok in v.items())
    )
    undesigned = [r for r in ls["single_column"] if not r["designed"]][:8]
    t = _table(
        f"Strongest undesigned columns (a leak if separation ≥ {ls['thresholds']['leak_auc']})",
        "partner/table",
        "feature",
        "type",
        "AUC",
        "leak",
    )
    for r in ls["leaks"] + [r for r in undesigned if not r["leak"]]:
        t.add_row(
            f"{r['partner']}/{r['table']}",
            r["feature"],
            r["fraud_type"],
            f"{r['auc']:.3f}",
            _mark(not r["leak"]) if r["leak"] else "no",
        )
    _print(console, t)
    t = _table(
        "Designed signals at or above the threshold", "partner/table", "feature", "type", "AUC", "legit look-alike rows"
    )
    for r in ls["designed_signals"]:
        look = (
            "—"
            if r["lookalike_rows"] is None
            else (f"{r['lookalike_rows']:,}" if r["lookalike_rows"] else "[bold red]0 (separable)[/]")
        )
        t.add_row(f"{r['partner']}/{r['table']}", r["feature"], r["fraud_type"], f"{r['auc']:.3f}", look)
    _print(console, t)
    lo, hi = ls["thresholds"]["metadata_auc_range"]
    t = _table(
        f"Metadata-only model (out-of-fold AUC must lie in [{lo}, {hi}], up to 1.96 SE)",
        "partner/table",
        "fraud rows (crews)",
        "AUC ± SE",
        "ok",
        "strongest metadata feature",
    )
    for r in ls["metadata_model"]:
        auc = "—" if r["auc"] is None else f"{r['auc']:.3f} ± {r['se']:.3f}"
        top = "" if r["top_feature"] is None else f"{r['top_feature']} ({r['top_feature_auc']:.3f})"
        rows = f"{r['positives']:,}" + ("" if r["crews"] is None else f" ({r['crews']})")
        t.add_row(
            f"{r['partner']}/{r['table']}", rows, auc, "[dim]too few[/]" if r["ok"] is None else _mark(r["ok"]), top
        )
    _print(console, t)
    t = _table(
        "Join-key presence vs role (two-proportion test)",
        "partner/table",
        "key",
        "role",
        "present (role)",
        "present (ordinary)",
        "p",
        "ok",
    )
    for r in ls["key_presence"]:
        ok = "[dim]designed[/]" if r["designed"] else ("[dim]too few[/]" if r["ok"] is None else _mark(r["ok"]))
        t.add_row(
            f"{r['partner']}/{r['table']}",
            r["key"],
            f"{r['role']} (n={r['n_role']:,})",
            format_value(r["present_role"], "share"),
            format_value(r["present_ordinary"], "share"),
            f"{r['p_value']:.3g}",
            ok,
        )
    _print(console, t)
    named = ls["truth_named_columns"]
    console.print("Truth-named partner columns: " + (", ".join(named) if named else "none ✓"))
