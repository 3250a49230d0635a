"""Rows, keys and the run context: the neutral ground that regimes and the federation layer share.

What a regime sees of one run (:class:`RunContext`), how a partner's decision rows become a feature
frame (:class:`ScoringUnit`, :func:`unit_frame`), the one salted-hash key join (:func:`key_matches`),
the shared watchlist, and event scores → entity-days (:func:`entity_days`). Nothing here trains a
model or talks to Flower, so both :mod:`fedsim.regimes` and :mod:`fedsim.federation` import it
without importing each other.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from fedsim.alignment import KEY_PRIORITY, plain_pairs
from fedsim.data import DAY, Split, known_cases, row_labels
from fedsim.features import MODEL_EXCLUDE, DecisionRows, PartnerFeatures
from fedsim.privacy import PrivacySettings
from fedsim.settings import FederationSettings, RunHooks
from synthetic.world import World

S = TypeVar("S", bound=BaseModel)

JOIN_KEYS = KEY_PRIORITY
"""Salted-hash keys partners may join on, in the order a join tries them (:data:`fedsim.alignment.KEY_PRIORITY`)."""


@dataclass(frozen=True)
class TrainingSettings:
    """Shared torch training settings of a run (the experiment's ``training:`` section)."""

    epochs: int = 5  # fixed budget: DP-SGD, and local epochs per round in federated and split learning
    batch_size: int = 512
    learning_rate: float = 0.01
    negative_rate: float = 0.1
    max_epochs: int = 200  # early-stopping budget of non-private central training
    patience: int = 5  # epochs without a better validation loss before stopping
    refit: bool = True  # after early stopping, retrain on all training rows for the best epoch count


@dataclass(frozen=True)
class RunContext:
    """Everything a regime may use for one run; built once per grid cell by
    :meth:`fedsim.runner.Workspace.context`. `features` is shared across the runs of one world."""

    world: World
    coalition: tuple[str, ...]
    model: str
    seed: int
    split: Split
    training: TrainingSettings
    features: dict[str, PartnerFeatures]
    truth: dict[str, pd.DataFrame]
    oracle_join: bool = False  # upper bound only: join on true person ids instead of keys
    epsilon: float = float("inf")  # target ε of DP-SGD per party (inf: no DP)
    federation: FederationSettings = field(default_factory=FederationSettings)
    privacy: PrivacySettings | None = None  # the cell's DP settings; None = no DP (or target ε from `epsilon`)
    hooks: RunHooks = field(default_factory=RunHooks)  # test-only: message capture, injected faults
    regime_settings: BaseModel | None = None  # the cell's own regime's settings (Regime.settings_model), typed

    def settings(self, model: type[S]) -> S:
        """The run's regime settings as ``model``; its defaults when the cell carries none (a context built
        by hand). Settings of another model are an error, not a silent fallback to the defaults."""
        if self.regime_settings is None:
            return model()
        if not isinstance(self.regime_settings, model):
            raise TypeError(f"regime settings are {type(self.regime_settings).__name__}, not {model.__name__}")
        return self.regime_settings

    @property
    def kinds(self) -> dict[str, str]:
        return {n: p.kind for n, p in self.world.partners.items()}


# --------------------------------------------------------------------------------------------------
# Watchlist: hashed identifiers of reported fraud, each with the moment it was listed
# --------------------------------------------------------------------------------------------------
def watchlist_entries(ctx: RunContext, sources: tuple[str, ...]) -> pd.Series:
    """hash → first time it was listed, from the reports of `sources` (banks: reported IBANs; telcos:
    flagged numbers; marketplaces: payout IBAN and phone of reported users)."""
    parts = []
    for p in sources:
        f, kind = ctx.features[p], ctx.kinds[p]
        if kind == "bank":
            r = f.tables["reports"]
            parts.append(pd.Series(r["ts"].to_numpy(), index=r["reported_iban_hash"].to_numpy()))
        elif kind == "telco":
            r = f.tables["flagged_numbers"]
            parts.append(pd.Series(r["ts"].to_numpy(), index=r["phone_hash"].to_numpy()))
        elif kind == "marketplace":
            r = f.tables["reports"].merge(f.tables["users"], left_on="reported_user_id", right_on="user_id")
            for col in ("payout_iban_hash", "phone_hash"):
                ok = r[col].notna()
                parts.append(pd.Series(r.loc[ok, "ts"].to_numpy(), index=r.loc[ok, col].to_numpy()))
    if not parts:
        return pd.Series(dtype="int64")
    s = pd.concat(parts)
    s = s[pd.notna(s.index)]
    s.index = s.index.astype("int64")
    return s.groupby(level=0).min()


def watchlist_features(ctx: RunContext, partner: str, rows: DecisionRows, listed: pd.Series) -> pd.DataFrame:
    """'On the shared list' features for a partner's rows, strictly as of each row's time."""
    n = len(rows.entity)
    out = pd.DataFrame(index=range(n))
    if listed.empty:
        listed = pd.Series(dtype="int64")
    ev = rows.event
    for col, name in (("cp_iban_hash", "wl_counterparty_listed"), ("other_hash", "wl_other_party_listed")):
        if col in ev:
            h = ev[col].to_numpy()
            t = listed.reindex(np.where(np.isnan(h), -1, h).astype("int64")).to_numpy()
            out[name] = (np.nan_to_num(t, nan=np.inf) < rows.ts).astype(float)
    keys = ctx.features[partner].keys()
    k = keys.melt(id_vars="entity_id", value_vars=[c for c in JOIN_KEYS if c in keys]).dropna()
    k["listed"] = listed.reindex(k["value"].astype("int64")).to_numpy()
    first = k.dropna().groupby("entity_id")["listed"].min()
    t_self = first.reindex(rows.entity).to_numpy()
    out["wl_self_listed"] = (np.nan_to_num(t_self, nan=np.inf) < rows.ts).astype(float)
    return out


# --------------------------------------------------------------------------------------------------
# Joining other partners' features by key, as of the same moment
# --------------------------------------------------------------------------------------------------
def key_matches(ctx: RunContext, home: str, other: str) -> pd.Series:
    """home entity id → other partner's entity id, via the first shared salted-hash key that matches
    (:func:`fedsim.alignment.plain_pairs`: the rule PSI alignment realises privately).

    With `ctx.oracle_join`, matches come from the hidden person ids instead (a clearly named upper
    bound on what perfect alignment could give)."""
    if ctx.oracle_join:
        ent = ctx.truth["entities"]
        h = ent[ent["partner"] == home][["entity_id", "person_id"]]
        o = ent[ent["partner"] == other][["entity_id", "person_id"]]
        m = h.merge(o, on="person_id", suffixes=("", "_other"))
        m = m[m["person_id"] >= 0]
        return m.drop_duplicates("entity_id").set_index("entity_id")["entity_id_other"]
    # The one join rule (first shared key by priority, first row), the same function PSI alignment uses.
    pairs = plain_pairs(ctx.features[home].keys(), ctx.features[other].keys())
    return pairs.set_index("holder_entity")["party_entity"].rename_axis("entity_id").rename("entity_id_other")


def context_features(ctx: RunContext, home: str, rows: DecisionRows, others: list[str]) -> pd.DataFrame:
    """Other partners' window features for the matched entity of each row, as of the row's time.

    Partners of the same kind fill one block (a person banks mostly at one bank)."""
    blocks: dict[str, pd.DataFrame] = {}
    for other in others:
        match = key_matches(ctx, home, other)
        ent = match.reindex(rows.entity).fillna(-1).to_numpy().astype(np.int64)
        f = ctx.features[other].context(ent, rows.ts)
        block = ctx.features[other].block
        blocks[block] = f if block not in blocks else blocks[block].fillna(f)
    return pd.concat(blocks.values(), axis=1) if blocks else pd.DataFrame(index=range(len(rows.entity)))


# --------------------------------------------------------------------------------------------------
# Scoring units: one model over the rows of some partners, with a feature recipe and label sources
# --------------------------------------------------------------------------------------------------
@dataclass
class ScoringUnit:
    home: tuple[str, ...]  # partners whose rows this model scores
    context_from: tuple[str, ...]  # partners whose features are joined in (pooled)
    watchlist_from: tuple[str, ...]  # partners whose reports feed the watchlist
    label_sources: tuple[str, ...]  # partners whose reports become training labels


def unit_frame(
    ctx: RunContext, unit: ScoringUnit, window: tuple[int, int], *, labels_before: int, train: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of the unit in [start, end) with features (X) and an index frame (partner, entity, ts, y)."""
    listed = watchlist_entries(ctx, unit.watchlist_from)
    cases = known_cases(ctx.truth, ctx.kinds, label_sources=unit.label_sources, before_ts=labels_before)
    xs, idx = [], []
    for p in unit.home:
        if train:  # keep every positive, a seeded share of the rest (weights undo the subsampling)
            rows = ctx.features[p].decision_rows()
            rows = rows.select((rows.ts >= window[0]) & (rows.ts < window[1]))
            y = row_labels(p, rows.entity, rows.ts, ctx.truth, cases)
            # crc32, not hash(): str hashes are salted per process and would break reproducibility
            rng = np.random.default_rng([ctx.seed, zlib.crc32(p.encode())])
            keep = (y == 1) | (rng.random(len(y)) < ctx.training.negative_rate)
            rows, y = rows.select(keep), y[keep]
            own = ctx.features[p].own(rows)
        else:
            rows, own = ctx.features[p].window(*window)
            y = np.zeros(len(rows.entity), np.int8)
        parts = [own, watchlist_features(ctx, p, rows, listed)]
        others = [o for o in unit.context_from if ctx.features[o].block != ctx.features[p].block]
        if others:
            parts.append(context_features(ctx, p, rows, others))
        xs.append(pd.concat(parts, axis=1))
        idx.append(pd.DataFrame({"partner": p, "entity_id": rows.entity, "decision_ts": rows.ts, "y": y}))
    X = pd.concat(xs, ignore_index=True)
    X = X.drop(columns=[c for c in MODEL_EXCLUDE if c in X])
    return X, pd.concat(idx, ignore_index=True)


def silo(partner: str) -> ScoringUnit:
    """A partner alone: its rows, its features, its own reports (also as its own watchlist)."""
    return ScoringUnit(home=(partner,), context_from=(), watchlist_from=(partner,), label_sources=(partner,))


def entity_days(scored: pd.DataFrame) -> pd.DataFrame:
    """Event scores → one row per (partner, entity, day): the day's highest score and when it came."""
    if scored.empty:
        return pd.DataFrame(columns=["partner", "entity_id", "day", "decision_ts", "score"])
    s = scored.assign(day=scored["decision_ts"] // DAY)
    s = s.sort_values(
        ["partner", "entity_id", "day", "score", "decision_ts"], ascending=[True, True, True, False, True]
    )
    best = s.drop_duplicates(["partner", "entity_id", "day"])
    return best[["partner", "entity_id", "day", "decision_ts", "score"]].reset_index(drop=True)
