"""Progress bars for long work (grids, rounds, generation), quiet when not on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(*, disable: bool | None = None) -> Iterator[Progress]:
    """A rich progress bar on stderr with elapsed time and an ETA (from the mean pace of the steps done so far);
    hidden automatically when stderr is not a terminal."""
    quiet = (not sys.stderr.isatty()) if disable is None else disable
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        transient=False,
        disable=quiet,
        console=Console(stderr=True),
    ) as progress:
        yield progress
