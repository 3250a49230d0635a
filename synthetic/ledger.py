"""The hidden event ledger: every event of the world, legitimate or fraudulent, in one place.

Legitimate behaviour and fraud campaigns both *append* rows here with the same columns; only the
hidden ``case_id``/``phase`` columns differ (-1 / "" for legitimate rows). Derived flags that depend
on history (first transfer to a payee, first login from a device) are computed once, over the merged
ledger, by the same code for every row — so no flag can tell fraud from look-alikes by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Columns per hidden event table (raw identifiers; -1 = none).
LEDGER_COLUMNS: dict[str, tuple[str, ...]] = {
    # from/to are rows of Population.accounts (to = -1 for cash withdrawals)
    "transfers": ("ts", "from_acct", "to_acct", "amount", "kind", "channel", "is_instant", "name_check", "known_payee"),
    # login into `person`'s account at the person's bank, from `device`
    "logins": ("ts", "person", "device", "known_device", "remote_access"),
    # raw phone numbers; presented = caller-ID shown; intl = entered via an international trunk
    "calls": ("ts", "from_phone", "to_phone", "presented", "intl", "kind", "duration"),
    "sims": ("ts", "phone", "event", "handset"),
    # marketplace events refer to rows of Ledger.market_users
    "listings": ("ts", "user", "category", "price", "ratio", "photos_reused"),
    "messages": ("ts", "from_user", "to_user", "contains_phone", "contains_iban", "contains_url", "off_platform"),
    "orders": ("ts", "buyer", "seller", "amount", "method", "label_ts", "delivered_ts"),
}
PROVENANCE = ("case_id", "phase")


@dataclass
class Ledger:
    chunks: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=lambda: {t: [] for t in LEDGER_COLUMNS})
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def add(
        self, table: str, *, case_id: np.ndarray | int = -1, phase: str | np.ndarray = "", **cols: np.ndarray
    ) -> None:
        """Append rows. Every column of the table must be given, all of one length."""
        expected = LEDGER_COLUMNS[table]
        if set(cols) != set(expected):
            raise ValueError(f"ledger.{table}: got columns {sorted(cols)}, expected {sorted(expected)}")
        n = len(cols["ts"])
        if n == 0:
            return
        chunk = {k: np.broadcast_to(np.asarray(v), (n,)).copy() for k, v in cols.items()}
        chunk["case_id"] = np.broadcast_to(np.asarray(case_id, dtype=np.int64), (n,)).copy()
        chunk["phase"] = np.broadcast_to(np.asarray(phase, dtype=object), (n,)).copy()
        self.chunks[table].append(chunk)

    def finalize(self) -> dict[str, dict[str, np.ndarray]]:
        """Merge chunks, sort each table by time (ties by a content key), derive history flags."""
        out = {}
        for table, cols in LEDGER_COLUMNS.items():
            parts = self.chunks[table]
            merged = {c: np.concatenate([p[c] for p in parts]) if parts else np.empty(0) for c in (*cols, *PROVENANCE)}
            self.chunks[table] = []  # the merged copy replaces the chunks (half the memory at the peak)
            key = _time_key(merged, _sort_keys(table))
            order = np.argsort(key, kind="stable")
            out[table] = {c: v[order] for c, v in merged.items()}
            del merged
        out["transfers"]["new_payee"] = _first_seen(
            out["transfers"]["from_acct"], out["transfers"]["to_acct"], out["transfers"]["known_payee"]
        )
        out["logins"]["new_device"] = _first_seen(
            out["logins"]["person"], out["logins"]["device"], out["logins"]["known_device"]
        )
        self.tables = out
        return out


def _time_order(cols: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray:
    """Row order by time; equal times ordered by a hash of the row's content, never by who appended it."""
    return np.argsort(_time_key(cols, keys), kind="stable")


def _time_key(cols: dict[str, np.ndarray], keys: tuple[str, ...]) -> np.ndarray:
    """The packed uint64 sort key of each row: (ts + 2^26) in the top 28 bits, a 36-bit content hash below.

    Sorted once instead of a multi-key lexsort (the generator's largest single cost at scale).
    """
    from synthetic.ids import splitmix64

    ts = cols[keys[0]].astype(np.int64)
    if len(ts) and (ts.min() < -(1 << 26) or ts.max() >= (1 << 27)):
        raise ValueError("ledger times outside the packed sort key's range (about -2 to +4 years)")
    mix = np.zeros(len(ts), dtype=np.uint64)
    for k in keys[1:]:
        v = cols[k]
        bits = v.astype(np.float64).view(np.uint64) if v.dtype.kind == "f" else v.astype(np.int64).view(np.uint64)
        mix = splitmix64(mix ^ bits)
    return ((ts + (1 << 26)).astype(np.uint64) << np.uint64(36)) | (mix & np.uint64((1 << 36) - 1))


def _sort_keys(table: str) -> tuple[str, ...]:
    # Time first; the rest only breaks ties deterministically (never by case id).
    return {
        "transfers": ("ts", "from_acct", "to_acct", "amount"),
        "logins": ("ts", "person", "device"),
        "calls": ("ts", "from_phone", "to_phone"),
        "sims": ("ts", "phone"),
        "listings": ("ts", "user"),
        "messages": ("ts", "from_user", "to_user"),
        "orders": ("ts", "buyer", "seller"),
    }[table]


def _first_seen(a: np.ndarray, b: np.ndarray, known: np.ndarray) -> np.ndarray:
    """True where the pair (a, b) occurs for the first time in time order and was not known before.

    Rows must already be sorted by time. Vectorised: a stable sort by pair keeps time order within a
    pair, so the first row of each run of equal pairs is its first occurrence.
    """
    n = len(a)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((b, a))  # stable: time order kept within equal (a, b)
    sa, sb = a[order], b[order]
    first_sorted = np.r_[True, (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])]
    first = np.empty(n, dtype=bool)
    first[order] = first_sorted
    return first & ~known.astype(bool)
