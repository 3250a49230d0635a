"""The report as one list of sections, already worded and formatted, that the HTML and the PDF renderer both walk.

Keeping the structure in one place is what makes the two formats carry the same section titles in the same
order: a renderer only decides how a block looks, never which blocks there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Paragraph:
    """Running text. ``tone``: "note" (a finding to notice) or "warning" (missing runs, synthetic data)."""

    text: str
    tone: Literal["plain", "note", "warning"] = "plain"


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of formatted text; ``numeric``: which columns are numbers (right-aligned)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()


@dataclass(frozen=True)
class Figure:
    """A figure as PNG bytes with its caption (also the HTML alt text)."""

    png: bytes
    caption: str


Block = Paragraph | Bullets | Table | Figure


@dataclass
class Section:
    """A titled part of the report. level 1: a chapter (starts a new PDF page), 2: a fraud type, 3: a topic."""

    title: str
    level: int
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""


@dataclass
class Document:
    """Title, subtitle and the sections in reading order; ``lang`` is the language they are written in."""

    lang: str
    title: str
    subtitle: str
    sections: list[Section]

    def titles(self) -> list[str]:
        """Every section title in order: what both formats must show."""
        return [s.title for s in self.sections]
