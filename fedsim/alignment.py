"""Entity alignment for vertical FL: private set intersection (PSI) over the salted-hash join keys.

Protocol — ECDH-PSI (Meadows 1986; Huberman, Franklin & Hogg 1999, "Enhancing privacy and trust in
electronic communities", ACM EC), as implemented by OpenMined's ``openmined-psi`` (P-256 elliptic
curve; the server's set optionally compressed in a Golomb-compressed set, Kales et al. 2019, "Mobile
private contact discovery at scale", USENIX Security):

1. the **client** blinds each of its elements with its secret key a: H(x)^a, and sends them
   (``request``);
2. the **server** blinds its own elements with its secret key b and sends them in a ``setup``
   message, H(y)^b; it also re-blinds the client's values, H(x)^ab, and sends them back in the
   same order (``response``);
3. the client raises the setup values to a, H(y)^ba, and looks its doubly blinded values up there.

Who learns what (semi-honest parties, decisional Diffie–Hellman assumption):

* client: which of *its own* elements are in the intersection (or, in cardinality-only mode, only
  how many), and the size of the server's set;
* server: the size of the client's set; nothing about which elements matched.

Here the **client is the label holder** and the **server the other party** (a telco or
marketplace). For split learning the other party must also know which of its people to compute
features for, so a second PSI runs with the roles swapped: afterwards *both* hold the intersection,
each as its own elements, and neither learns anything about the elements outside it. That two-way
reveal is recorded in the leakage register of the vertical regimes.

Elements are the join keys both parties hold (``phone_hash``, ``email_hash``, ``iban_hash``), each
tagged with its key type (``"phone_hash:123…"``) so equal numbers in different key spaces never match.
From the intersection both sides derive the same entity pairs without exchanging anything else:

* the label holder pairs each of its entities with its first shared element — first key type in
  :data:`KEY_PRIORITY`, then first row of its key table (:func:`plain_pairs` composes both halves in
  the clear; the pooled regime's key join, :func:`fedsim.rows.key_matches`, calls it: one rule);
* that element's position in the sorted intersection (the **anchor**) is the only reference the
  label holder ever sends; the other party maps an anchor to the first entity of its key table
  holding the element.

:func:`align` runs both roles in one process (tests, cardinality queries); the federation calls the
step functions (:func:`psi_client_request`, :func:`psi_server_answer`, :func:`psi_client_intersection`)
from each party's own process. :func:`match_quality` scores an alignment against the hidden truth
(evaluation only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

KEY_PRIORITY: tuple[str, ...] = ("phone_hash", "email_hash", "iban_hash")
"""Join keys in the order they are trusted for pairing (same order as the pooled regime's key join)."""

DataStructure = Literal["raw", "gcs", "bloom"]
DEFAULT_FPR = 1e-9
"""False-positive rate of a compressed setup (GCS / Bloom) per client query; unused for ``raw``."""


# ------------------------------------------------------------------------------------------------
# Elements: one tagged string per (key type, hashed value)
# ------------------------------------------------------------------------------------------------
def shared_key_columns(a: pd.DataFrame, b: pd.DataFrame) -> tuple[str, ...]:
    """Key columns both key tables hold, in :data:`KEY_PRIORITY` order (the schema is public)."""
    return key_columns_shared_with(a, list(b.columns))


def key_columns_shared_with(keys: pd.DataFrame, other: Sequence[str]) -> tuple[str, ...]:
    """Key columns of ``keys`` that the other party also holds (it names them; key types are public)."""
    return tuple(k for k in KEY_PRIORITY if k in keys.columns and k in other)


def key_elements(keys: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Long table of a party's tagged key elements, in pairing order.

    Args:
        keys: ``entity_id`` plus hashed key columns (nullable int), as ``PartnerFeatures.keys()``.
        columns: key columns to use, in priority order.
    Returns:
        Frame with ``entity_id`` (int64), ``key`` (column name), ``element`` (``"<key>:<value>"``),
        ordered by key priority, then by the key table's row order.
    """
    missing = [c for c in ("entity_id", *columns) if c not in keys.columns]
    if missing:
        raise ValueError(f"keys: lacks column(s) {missing}; allowed: entity_id plus the key columns {list(columns)}")
    parts = []
    for col in columns:
        k = keys[["entity_id", col]].dropna()
        values = k[col].astype("int64").astype(str)
        parts.append(
            pd.DataFrame(
                {
                    "entity_id": k["entity_id"].to_numpy(np.int64),
                    "key": col,
                    "element": (col + ":") + values.to_numpy(dtype=object),
                }
            )
        )
    if not parts:
        return pd.DataFrame({"entity_id": np.zeros(0, np.int64), "key": [], "element": []})
    return pd.concat(parts, ignore_index=True)


def unique_elements(elements: pd.DataFrame) -> list[str]:
    """The distinct elements a party puts into PSI, sorted (the order carries no information)."""
    return sorted(set(elements["element"]))


# ------------------------------------------------------------------------------------------------
# The PSI steps (each runs inside one party; only the returned bytes cross the boundary)
# ------------------------------------------------------------------------------------------------
def _psi() -> Any:
    import private_set_intersection.python as psi

    return psi


def _structure(ds: str) -> Any:
    psi = _psi()
    table = {
        "raw": psi.DataStructure.RAW,
        "gcs": psi.DataStructure.GCS,
        "bloom": psi.DataStructure.BLOOM_FILTER,
    }
    if ds not in table:
        raise ValueError(f"data_structure: {ds!r}; allowed: one of {sorted(table)}")
    return table[ds]


@dataclass(frozen=True)
class ClientRequest:
    """What the PSI client keeps (``key``: its secret, never sent) and sends (``request``)."""

    key: bytes
    request: bytes


def psi_client_request(elements: Sequence[str], *, reveal_intersection: bool = True) -> ClientRequest:
    """Step 1 (client): blind the client's elements with a fresh secret key.

    Returns the secret key (keep it, e.g. in the party's Flower ``context.state``) and the serialized
    request (send it to the server). ``reveal_intersection=False`` is the cardinality-only mode.
    """
    psi = _psi()
    client = psi.client.CreateWithNewKey(reveal_intersection)
    request = client.CreateRequest(list(elements)).SerializeToString()
    return ClientRequest(key=bytes(client.GetPrivateKeyBytes()), request=request)


def psi_server_answer(
    elements: Sequence[str],
    request: bytes,
    *,
    reveal_intersection: bool = True,
    data_structure: DataStructure = "raw",
    fpr: float = DEFAULT_FPR,
) -> tuple[bytes, bytes]:
    """Step 2 (server): blind its own set (``setup``) and re-blind the client's request (``response``).

    The server learns only the size of the client's set (the number of blinded values it received).
    ``data_structure="raw"`` sends every blinded element (exact, no false positives); ``gcs`` /
    ``bloom`` compress the setup at a false-positive rate ``fpr`` per client query.
    """
    psi = _psi()
    if not 0.0 < fpr < 1.0:
        raise ValueError(f"fpr: {fpr!r}; allowed: a probability in (0, 1)")
    req = psi.Request()
    req.ParseFromString(request)
    server = psi.server.CreateWithNewKey(reveal_intersection)
    setup = server.CreateSetupMessage(
        fpr, max(len(req.encrypted_elements), 1), list(elements), _structure(data_structure)
    )
    response = server.ProcessRequest(req)
    return setup.SerializeToString(), response.SerializeToString()


def psi_client_intersection(
    key: bytes, setup: bytes, response: bytes, *, reveal_intersection: bool = True
) -> np.ndarray | int:
    """Step 3 (client): positions of the client's elements that the server also holds (sorted int64),
    or — in cardinality-only mode — just their number."""
    psi = _psi()
    client = psi.client.CreateFromKey(key, reveal_intersection)
    s, r = psi.ServerSetup(), psi.Response()
    s.ParseFromString(setup)
    r.ParseFromString(response)
    if not reveal_intersection:
        return int(client.GetIntersectionSize(s, r))
    return np.sort(np.asarray(client.GetIntersection(s, r), dtype=np.int64))


# ------------------------------------------------------------------------------------------------
# From the intersection to entity pairs (each side computes its half on its own)
# ------------------------------------------------------------------------------------------------
def holder_anchors(elements: pd.DataFrame, intersection: Sequence[str]) -> pd.DataFrame:
    """Label holder's half: each of its entities that shares an element → that element's anchor.

    Args:
        elements: the holder's :func:`key_elements` (pairing order).
        intersection: the shared elements (any order; sorted here to define the anchors).
    Returns:
        Frame ``entity_id``, ``key`` (key type used), ``anchor`` (position in the sorted intersection),
        one row per matched entity, in the holder's first-seen order.
    """
    shared = pd.Index(sorted(set(intersection)))
    pos = shared.get_indexer(elements["element"])
    hit = elements.assign(anchor=pos)[pos >= 0]
    first = hit.drop_duplicates("entity_id")
    return first[["entity_id", "key", "anchor"]].reset_index(drop=True)


def party_owners(elements: pd.DataFrame, intersection: Sequence[str]) -> np.ndarray:
    """Other party's half: anchor → its entity holding that element (first in its key-table order).

    Returns an int64 array of length ``len(intersection)``; entry ``a`` is the party's entity for anchor a.
    """
    shared = sorted(set(intersection))
    owner = elements.drop_duplicates("element").set_index("element")["entity_id"].reindex(shared)
    if owner.isna().any():
        missing = list(owner.index[owner.isna()][:3])
        raise ValueError(
            f"intersection: element(s) {missing} not among this party's elements; allowed: a "
            "subset of the party's own elements (run PSI on the same key table)"
        )
    return owner.to_numpy(np.int64)


def entity_pairs(anchors: pd.DataFrame, owners: np.ndarray) -> pd.DataFrame:
    """Join the two halves (only the experimenter, or a test, ever holds both): ``holder_entity``,
    ``party_entity``, ``key``, ``anchor`` per matched holder entity."""
    a = anchors["anchor"].to_numpy(np.int64)
    return pd.DataFrame(
        {
            "holder_entity": anchors["entity_id"].to_numpy(np.int64),
            "party_entity": np.asarray(owners, dtype=np.int64)[a],
            "key": anchors["key"].to_numpy(),
            "anchor": a,
        }
    )


# ------------------------------------------------------------------------------------------------
# Both roles in one process
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """Result of aligning a label holder with one other party.

    ``pairs``: ``holder_entity``, ``party_entity``, ``key`` (key type that matched), ``anchor``;
    ``intersection_size``: shared elements; ``holder_entities``: entities the holder put in;
    ``server_set_size`` / ``client_set_size``: what each side learns about the other's set size.
    In cardinality-only mode ``pairs`` is empty and only ``intersection_size`` is known.
    """

    holder: str
    party: str
    pairs: pd.DataFrame
    intersection_size: int
    holder_entities: int
    client_set_size: int
    server_set_size: int
    cardinality_only: bool = False

    @property
    def match_rate(self) -> float:
        """Share of the holder's entities paired with an entity of the party (matched / all, in [0, 1])."""
        if self.cardinality_only:
            raise ValueError("match_rate: not available in cardinality-only mode; allowed: intersection_size")
        return len(self.pairs) / self.holder_entities if self.holder_entities else 0.0


def align(
    holder_keys: pd.DataFrame,
    party_keys: pd.DataFrame,
    *,
    holder: str = "holder",
    party: str = "party",
    cardinality_only: bool = False,
    data_structure: DataStructure = "raw",
) -> Alignment:
    """Align a label holder (PSI client) with another party (PSI server), both roles in this process.

    Runs the forward PSI (holder learns the intersection) and, unless ``cardinality_only``, the
    reverse PSI (party learns it), then pairs entities as described in the module docstring.
    """
    columns = shared_key_columns(holder_keys, party_keys)
    h_el, p_el = key_elements(holder_keys, columns), key_elements(party_keys, columns)
    h_set, p_set = unique_elements(h_el), unique_elements(p_el)
    reveal = not cardinality_only
    req = psi_client_request(h_set, reveal_intersection=reveal)
    setup, response = psi_server_answer(p_set, req.request, reveal_intersection=reveal, data_structure=data_structure)
    found = psi_client_intersection(req.key, setup, response, reveal_intersection=reveal)
    n_holder = int(holder_keys["entity_id"].nunique())
    if cardinality_only:
        empty = pd.DataFrame({"holder_entity": [], "party_entity": [], "key": [], "anchor": []})
        return Alignment(holder, party, empty, int(found), n_holder, len(h_set), len(p_set), True)
    holder_view = [h_set[i] for i in np.asarray(found)]
    rev = psi_client_request(p_set)
    r_setup, r_response = psi_server_answer(h_set, rev.request, data_structure=data_structure)
    party_view = [p_set[i] for i in np.asarray(psi_client_intersection(rev.key, r_setup, r_response))]
    pairs = entity_pairs(holder_anchors(h_el, holder_view), party_owners(p_el, party_view))
    return Alignment(holder, party, pairs, len(holder_view), n_holder, len(h_set), len(p_set))


def plain_intersection(holder_keys: pd.DataFrame, party_keys: pd.DataFrame) -> set[str]:
    """The same intersection computed in the clear (a reference; it reveals both key sets)."""
    columns = shared_key_columns(holder_keys, party_keys)
    return set(key_elements(holder_keys, columns)["element"]) & set(key_elements(party_keys, columns)["element"])


def plain_pairs(holder_keys: pd.DataFrame, party_keys: pd.DataFrame) -> pd.DataFrame:
    """The join rule, in the clear: :func:`align`'s pairs without PSI (pooled key join, central comparison
    models; reveals both key sets). ``holder_entity``, ``party_entity``, ``key``, ``anchor`` per matched
    holder entity, in the holder's key-priority / row order."""
    columns = shared_key_columns(holder_keys, party_keys)
    h_el, p_el = key_elements(holder_keys, columns), key_elements(party_keys, columns)
    shared = sorted(set(h_el["element"]) & set(p_el["element"]))
    return entity_pairs(holder_anchors(h_el, shared), party_owners(p_el, shared))


# ------------------------------------------------------------------------------------------------
# Quality against the hidden truth (evaluation only)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MatchQuality:
    """How good an alignment is, judged with the hidden person ids.

    * ``match_rate`` = matched holder entities / holder entities;
    * ``precision`` = pairs whose two entities are the same person / pairs (1.0 if no pairs);
    * ``recall`` = holder entities paired with an entity of the same person / holder entities whose
      person the party holds at all (1.0 if there are none);
    * ``true_overlap`` = holder entities whose person the party holds / holder entities.

    Precision and recall as in record linkage (Christen 2012, "Data Matching", §7.2), counted over
    the holder's entities.
    """

    match_rate: float
    precision: float
    recall: float
    true_overlap: float
    pairs: int
    holder_entities: int

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}.{k}": float(v) for k, v in self.__dict__.items()}


def match_quality(
    pairs: pd.DataFrame,
    truth_entities: pd.DataFrame,
    *,
    holder: str,
    party: str,
    holder_entities: int | None = None,
) -> MatchQuality:
    """Score ``pairs`` (``holder_entity``, ``party_entity``) against truth ``entities`` (partner,
    entity_id, person_id); entities with person_id < 0 are nobody's and never count as correct."""
    ent = truth_entities[["partner", "entity_id", "person_id"]]
    h = ent[ent["partner"] == holder].drop_duplicates("entity_id").set_index("entity_id")["person_id"]
    p = ent[ent["partner"] == party].drop_duplicates("entity_id").set_index("entity_id")["person_id"]
    n_holder = len(h) if holder_entities is None else holder_entities
    ph = h.reindex(pairs["holder_entity"]).to_numpy()
    pp = p.reindex(pairs["party_entity"]).to_numpy()
    correct = (ph == pp) & (ph >= 0)
    party_people = set(p[p >= 0].to_numpy())
    overlap = h[(h >= 0) & h.isin(party_people)]
    right = pd.Series(correct, index=pairs["holder_entity"].to_numpy())
    recalled = int(right[right].index.isin(overlap.index).sum())
    return MatchQuality(
        match_rate=len(pairs) / n_holder if n_holder else 0.0,
        precision=float(correct.mean()) if len(pairs) else 1.0,
        recall=recalled / len(overlap) if len(overlap) else 1.0,
        true_overlap=len(overlap) / n_holder if n_holder else 0.0,
        pairs=len(pairs),
        holder_entities=n_holder,
    )
