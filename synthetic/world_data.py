"""The in-memory form of a world: one :class:`PartnerView` per partner plus the hidden truth tables.

Only data types live here, so the generators (``known_answer``, ``realistic``, ``views``) can build a
:class:`World` without importing :mod:`synthetic.world`, which imports them (generate, write, read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from synthetic.config import WorldConfig


@dataclass
class PartnerView:
    """What one partner holds: its own tables only."""

    name: str
    kind: str
    tables: dict[str, pa.Table]


@dataclass
class World:
    config: WorldConfig
    seed: int
    partners: dict[str, PartnerView]
    truth: dict[str, pa.Table]
    manifest: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict, repr=False)  # Parquet bytes made while hashing

    @property
    def content_hash(self) -> str:
        return str(self.manifest.get("content_hash", ""))

    def partner_names(self, kind: str | None = None) -> list[str]:
        return [n for n, p in self.partners.items() if kind is None or p.kind == kind]

    def table(self, partner: str, name: str) -> pd.DataFrame:
        return to_pandas(self.partners[partner].tables[name])

    def truth_table(self, name: str) -> pd.DataFrame:
        return to_pandas(self.truth[name])


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow → pandas keeping 64-bit keys exact: nullable int columns become pandas Int64, not float."""
    return (
        table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get) if _has_int_nulls(table) else table.to_pandas()
    )


def _has_int_nulls(table: pa.Table) -> bool:
    return any(pa.types.is_integer(f.type) and table.column(f.name).null_count > 0 for f in table.schema)
