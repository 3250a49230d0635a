"""Printing result tables so that no label or value is ever cut: at any terminal width and when piped.

Rich tables shrink columns that do not fit and then fold or ellipsise cells ("helpde/sk", "status_…"),
which silently corrupts what a reader copies. A :class:`Sheet` is printed as a rich table only when its
natural width fits the console; otherwise each row becomes a block of ``column: value`` lines, so every
label and every confidence interval stays whole. ``csv`` writes the same cells for scripts.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

Format = Literal["table", "csv", "json"]
FORMATS: tuple[str, ...] = ("table", "csv", "json")
FORMAT_HELP = "output: table (fits the terminal or pipe, never cuts a label), csv, or json"


@dataclass
class Sheet:
    """One result table: cells are display strings (rich markup allowed); ``keys`` leading columns name a row."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""
    keys: int = 1

    def add_row(self, *cells: str) -> None:
        self.rows.append([str(c) for c in cells])


def stdout_console() -> Console:
    """Tables go to stdout (logs and progress go to stderr); soft wrap so nothing is cut."""
    return Console(soft_wrap=False)


def _cell_len(cell: str) -> int:
    return max((Text.from_markup(line).cell_len for line in cell.split("\n")), default=0)


def natural_width(sheet: Sheet) -> int:
    """Width of the rich table with every cell on one line: content + 2 padding + 1 border per column, + 1."""
    widths = [_cell_len(c) for c in sheet.columns]
    for row in sheet.rows:
        widths = [max(w, _cell_len(c)) for w, c in zip(widths, row, strict=True)]
    return sum(w + 3 for w in widths) + 1


def print_sheet(sheet: Sheet, fmt: str = "table", console: Console | None = None) -> None:
    """Print ``sheet`` as a table that fits, as row blocks when it does not, or as csv."""
    if fmt == "csv":
        _write_csv(sheet)
        return
    console = console or stdout_console()
    if natural_width(sheet) <= console.width:
        console.print(_rich_table(sheet))
    else:
        _print_blocks(sheet, console)


def _rich_table(sheet: Sheet) -> Table:
    t = Table(title=sheet.title, caption=sheet.caption or None, title_justify="left", caption_justify="left")
    for col in sheet.columns:
        t.add_column(col, no_wrap=True)
    for row in sheet.rows:
        t.add_row(*row)
    return t


def _print_blocks(sheet: Sheet, console: Console) -> None:
    """Row by row: the key cells on one line, then each other column as an indented ``column: value`` line."""
    console.print(f"\n[bold]{sheet.title}[/]", soft_wrap=True, highlight=False)
    console.print(f"(one block per row, headed {' · '.join(sheet.columns[: sheet.keys])})", soft_wrap=True, style="dim")
    pad = max((_cell_len(c) for c in sheet.columns[sheet.keys :]), default=0)
    for row in sheet.rows:
        console.print("")
        head = " · ".join(f"{c}" for c in row[: sheet.keys])
        console.print(f"[bold]{head}[/]", soft_wrap=True, highlight=False)
        for col, cell in zip(sheet.columns[sheet.keys :], row[sheet.keys :], strict=True):
            console.print(f"  {col}{' ' * (pad - _cell_len(col))}  {cell}", soft_wrap=True, highlight=False)
    if sheet.caption:
        console.print("")
        console.print(sheet.caption, soft_wrap=True, highlight=False, style="dim")


def _write_csv(sheet: Sheet) -> None:
    """Plain cells (markup removed) with the header row; the title as a ``#`` comment line before it."""
    sys.stdout.write(f"# {Text.from_markup(sheet.title).plain}\n")
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(sheet.columns)
    for row in sheet.rows:
        w.writerow([Text.from_markup(c).plain for c in row])


def check_format(fmt: str, as_json: bool = False) -> str:
    """The effective format (``--json`` is shorthand for ``--format json``); refuses an unknown one."""
    from fedsim.errors import FedsimError

    if fmt not in FORMATS:
        raise FedsimError(f"--format {fmt!r}: allowed: {', '.join(FORMATS)}")
    return "json" if as_json else fmt
