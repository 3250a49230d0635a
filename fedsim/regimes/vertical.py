"""Vertical FL: partners of different kinds hold different features of the same people.

Who does what (decided here, recorded in every run's params):

* **Label holder(s)** — ``federation.label_holder`` (a kind or a partner name; default ``bank``).
  With a kind, every coalition partner of that kind holds labels, and each forms its **own**
  federation with the other kinds (banks do not share with each other in the vertical regime; that is
  the hybrid regime). A label holder scores its own decision rows with its own labels, features and
  watchlist — exactly the siloed recipe (:func:`fedsim.regimes.siloed.silo`) — plus, per row, one
  embedding from every other party.
* **Feature parties** — the coalition partners of other kinds (telco, marketplace, …). A party
  learns, through PSI, which of its people the holder also holds, and the holder's decision times for
  them; it answers with embeddings from its own bottom model over its own as-of features and applies
  the gradient slice it gets back. A partner of the holder's kind that is not a holder is an error.
* **Unmatched rows** — a row whose person the party does not hold gets the party's embedding of an
  all-missing feature row (standardised zeros + missing flags through the party's bottom model): the
  party's decision times for people it does not hold are never sent. It is the same input a central
  model sees for such rows (all of the party's columns NaN), so central and split training coincide.

Only the label holders' rows are scored (parties do not alert in this regime). The same architecture
trained centrally on the same rows is the comparison (``tests/federation/split_reference.py``).

Protocol, engines and messages: :mod:`fedsim.federation.vertical`; entity alignment:
:mod:`fedsim.alignment`; what each party learns: :func:`leakage_register` (per run) and the
regime's rows of the leakage register (:attr:`Vertical.leakage`, the same sentences).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedsim import alignment
from fedsim.errors import FedsimError
from fedsim.regimes.base import (
    LeakageRow,
    Regime,
    RegimeResult,
    RunContext,
    coalition_kinds,
    entity_days,
    unit_frame,
)
from fedsim.rows import silo
from fedsim.settings import FederationSettings

logger = logging.getLogger("fedsim.regimes")
HIDDEN = 32
"""Width of the top model's hidden layer (units), as :func:`fedsim.models.make_split_net`'s default."""


# ------------------------------------------------------------------------------------------------
# Roles
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Roles:
    holders: tuple[str, ...]
    parties: tuple[str, ...]


def roles_for(coalition: tuple[str, ...], kinds: Mapping[str, str], label_holder: str) -> Roles | str:
    """Label holders and feature parties of ``coalition`` (``kinds``: partner → kind), or why there are none."""
    block = {p: kinds[p] for p in coalition}
    if label_holder in coalition:
        holders: tuple[str, ...] = (label_holder,)
    elif label_holder in block.values():
        holders = tuple(p for p in coalition if block[p] == label_holder)
    else:
        return (
            f"federation.label_holder = {label_holder!r}: not in coalition {'+'.join(coalition)}; "
            f"allowed: a kind present in it ({', '.join(sorted(set(block.values())))}) or a member"
        )
    holder_kinds = {block[h] for h in holders}
    stray = [p for p in coalition if p not in holders and block[p] in holder_kinds]
    if stray:
        return (
            f"coalition member(s) {stray}: same kind as label holder(s) {list(holders)} but not holders; "
            "allowed: label_holder set to the kind (each holds its own labels) or leave them out"
        )
    parties = tuple(p for p in coalition if block[p] not in holder_kinds)
    if not parties:
        return (
            f"coalition = {'+'.join(coalition)}: no partner of another kind than the label holder; "
            "allowed: at least one feature party (vertical FL joins different kinds)"
        )
    return Roles(holders, parties)


def resolve_roles(ctx: RunContext) -> Roles:
    """Label holders and feature parties of the coalition from ``federation.label_holder``."""
    roles = roles_for(ctx.coalition, coalition_kinds(ctx), ctx.federation.label_holder)
    if isinstance(roles, str):
        raise FedsimError(roles)
    return roles


# ------------------------------------------------------------------------------------------------
# Each partner's own data
# ------------------------------------------------------------------------------------------------
def holder_data(ctx: RunContext, holder: str, *, label_epsilon: float | None = None) -> Any:
    """The holder's rows, own features and own labels — the siloed recipe (``unit_frame`` on its silo).

    With ``label_epsilon`` (label DP, at the holder, before anything is computed from the labels): every
    training row is built, its label replaced by randomized response
    (:func:`fedsim.federation.vertical.split_dp.randomized_response`), and only then are legitimate
    rows subsampled and weighted — on the noisy labels. Subsampling on the true labels would make the
    training schedule (all fraud rows, a share of the rest) and the weights that scale every returned
    gradient (1 vs 1/negative_rate) functions of the true labels, outside ε."""
    from fedsim.federation.vertical import HolderData

    unit = silo(holder)
    train_ctx = ctx if label_epsilon is None else replace(ctx, training=replace(ctx.training, negative_rate=1.0))
    X, idx = unit_frame(
        train_ctx, unit, (ctx.split.train_start, ctx.split.train_end), labels_before=ctx.split.train_end, train=True
    )
    y = idx["y"].to_numpy().astype(np.int8)
    y_true = None
    if label_epsilon is not None:
        X, idx, y, y_true = _label_dp_rows(ctx, holder, X, idx, y, label_epsilon)
    windows = [(ctx.split.test_start, ctx.split.test_end)] + ([ctx.split.second_test] if ctx.split.second_test else [])
    tests = []
    for i, window in enumerate(windows):
        Xt, it = unit_frame(ctx, unit, window, labels_before=ctx.split.train_end, train=False)
        tests.append((Xt.reindex(columns=X.columns), it.assign(window=i)))
    xt = pd.concat([t[0] for t in tests], ignore_index=True)
    it = pd.concat([t[1] for t in tests], ignore_index=True)
    return HolderData(
        name=holder,
        block=ctx.features[holder].block,
        keys=ctx.features[holder].keys(),
        feature_names=[str(c) for c in X.columns],
        x_train=X.to_numpy(np.float64),
        y_train=y,
        w_train=np.where(y == 1, 1.0, 1.0 / ctx.training.negative_rate),
        entity_train=idx["entity_id"].to_numpy(np.int64),
        ts_train=idx["decision_ts"].to_numpy(np.int64),
        x_test=xt.to_numpy(np.float64),
        entity_test=it["entity_id"].to_numpy(np.int64),
        ts_test=it["decision_ts"].to_numpy(np.int64),
        window_test=it["window"].to_numpy(np.int64),
        y_true=y_true,
    )


def _label_dp_rows(
    ctx: RunContext, holder: str, X: pd.DataFrame, idx: pd.DataFrame, y: np.ndarray, epsilon: float
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Randomized response on every training row, then the negative subsampling of ``unit_frame`` on the
    noisy labels (same seeded rule: all noisy positives, a ``negative_rate`` share of the rest)."""
    from fedsim.federation.vertical.split_dp import randomized_response

    noisy = randomized_response(y, epsilon=epsilon, seed=ctx.seed)
    rng = np.random.default_rng([ctx.seed, zlib.crc32(holder.encode()), 0x4C44])
    keep = (noisy == 1) | (rng.random(len(noisy)) < ctx.training.negative_rate)
    return (
        X[keep].reset_index(drop=True),
        idx[keep].reset_index(drop=True),
        noisy[keep],
        y[keep],
    )


def party_data(ctx: RunContext, party: str) -> Any:
    from fedsim.federation.vertical import PartyData

    f = ctx.features[party]
    return PartyData(name=party, block=f.block, keys=f.keys(), features=f)


def trainable(data: Any) -> bool:
    """Both classes among the holder's training rows (otherwise no model can learn from its labels)."""
    return 0 < int(data.y_train.sum()) < len(data.y_train)


# ------------------------------------------------------------------------------------------------
# Running the federation and collecting what each partner kept
# ------------------------------------------------------------------------------------------------
def run_split_regime(ctx: RunContext, *, mode: str, roles: Roles) -> RegimeResult:
    """Vertical (``mode="vertical"``) or hybrid (``"hybrid"``) split learning on Flower."""
    from fedsim.federation.vertical import Plan, run_split_learning, write_bundle
    from fedsim.privacy import privacy_for

    privacy = privacy_for(ctx)
    label_epsilon = privacy.target_epsilon if privacy is not None else None
    run_dir = Path(tempfile.mkdtemp(prefix=f"fedsim-{mode}-"))
    data = {h: holder_data(ctx, h, label_epsilon=label_epsilon) for h in roles.holders}
    idle = [h for h in roles.holders if not trainable(data[h])]
    for h in idle:
        logger.warning(
            "%s: no reported fraud (or only fraud) among its training rows; it scores uninformatively "
            "and stays out of the federation",
            h,
        )
    active = tuple(h for h in roles.holders if h not in idle)
    bundles = {h: str(write_bundle(data[h], run_dir)) for h in active}
    bundles.update({p: str(write_bundle(party_data(ctx, p), run_dir)) for p in roles.parties})
    (run_dir / "coordinator").mkdir(exist_ok=True)
    engine = ctx.federation.engine
    params = {**_params(mode, roles, idle, ctx.federation), **split_privacy_params(privacy)}
    if not active:
        shutil.rmtree(run_dir, ignore_errors=True)
        scores = pd.concat([_constant_scores(data[h]) for h in idle], ignore_index=True)
        return _result(scores, params, {}, {})
    plan = Plan(
        mode=mode,  # type: ignore[arg-type]  # "vertical" | "hybrid", checked by Plan
        holders=active,
        parties=roles.parties,
        seed=ctx.seed,
        rounds=ctx.federation.rounds,
        local_epochs=ctx.federation.local_epochs,
        batch_size=ctx.training.batch_size,
        learning_rate=ctx.training.learning_rate,
        embedding_dim=ctx.federation.embedding_dim,
        hidden=HIDDEN,
        out_dir=str(run_dir / "coordinator"),
        dp=privacy.model_dump_json() if privacy is not None else "",
        label_epsilon=label_epsilon,
    )
    run = run_split_learning(plan, bundles, engine=engine, capture_dir=ctx.hooks.capture_dir)
    scored = [_read_scores(bundles[h], h) for h in active] + [_constant_scores(data[h]) for h in idle]
    metrics = {
        **run.metrics,
        "federation_seconds": run.seconds,
        **alignment_metrics(ctx, bundles, active, roles.parties),
        **label_leakage_metrics({h: data[h] for h in active}, bundles, roles.parties),
        **dp_metrics(plan, bundles),
    }
    if plan.bottom_dp:
        register_bottom_models(plan, bundles, {h: data[h] for h in active})
    # Bundles hold copies of every partner's data: gone once the partners' outputs are collected
    # (kept when a run fails, with the Flower logs, for inspection).
    shutil.rmtree(run_dir, ignore_errors=True)
    return _result(pd.concat(scored, ignore_index=True), params, metrics, run.step_metrics)


def split_privacy_params(privacy: Any) -> dict[str, str]:
    """What protects a split-learning run (text params): bottom-model DP-SGD and label DP, or none."""
    from fedsim.privacy import run_params

    params = run_params(privacy)
    if privacy is None:
        return {**params, "label_dp": "none"}
    label = (
        f"randomized response at ε = {privacy.target_epsilon:g} per training row (Ghazi et al. 2021)"
        if privacy.target_epsilon is not None
        else "none (noise-multiplier mode sets the bottom models' σ only)"
    )
    return {
        **params,
        "dp_scope": "each feature party's bottom model (per-entity clipping, Poisson batches of the holder's entities)",
        "label_dp": label,
    }


def label_leakage_metrics(
    data: Mapping[str, Any], bundles: dict[str, str], parties: tuple[str, ...]
) -> dict[str, float]:
    """ROC-AUC of the label-leakage attacks on what each party received, against the holder's true labels.

    ``norm`` and ``direction``: the attack scores each party saved per gradient block
    (:func:`fedsim.federation.vertical.node.record_leakage`; Li et al. 2022); ``schedule``: the number of
    training-schedule rows of the same person (reported fraud keeps all its rows, legitimate rows are
    subsampled), a signal the party has before any gradient. Each AUC is max(AUC, 1 − AUC): the attacks
    orient themselves without labels, and a wrong orientation is undone by one known label.
    Metrics ``label_leak_<attack>_auc.<holder>.<party>`` and, per party, the largest over its holders,
    ``label_leak_<attack>_auc.<party>``. NaN when a class is missing.
    """
    from sklearn.metrics import roc_auc_score

    from fedsim.federation.vertical import out_dir

    out: dict[str, float] = {}
    for h, d in data.items():
        for p in parties:
            anchors = pd.read_parquet(out_dir(bundles[h]) / f"anchors_{p}.parquet")
            matched = np.flatnonzero(np.isin(d.entity_train, anchors["entity_id"].to_numpy()))
            y = np.asarray(d.y_train if d.y_true is None else d.y_true)[matched].astype(int)
            scores = _received_scores(out_dir(bundles[p]), h)
            per_person = pd.Series(d.entity_train[matched]).map(pd.Series(d.entity_train[matched]).value_counts())
            scores["schedule"] = (np.arange(len(matched)), per_person.to_numpy(float))
            for attack, (pos, score) in scores.items():
                labels = y[pos]
                # either side: an attacker who knows the orientation (one known label) ranks the other way
                auc = float(roc_auc_score(labels, score)) if 0 < labels.sum() < len(labels) else math.nan
                auc = max(auc, 1.0 - auc)
                out[f"label_leak_{attack}_auc.{h}.{p}"] = auc
                key = f"label_leak_{attack}_auc.{p}"
                out[key] = auc if key not in out or math.isnan(out[key]) else max(out[key], auc)
    return out


def _received_scores(party_out: Path, holder: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pos, norm, direction = [], [], []
    for f in sorted(party_out.glob(f"leak_{holder}_*.npz")):
        with np.load(f, allow_pickle=False) as z:
            pos.append(z["pos"])
            norm.append(z["norm"])
            direction.append(z["direction"])
    if not pos:
        return {}
    p = np.concatenate(pos)
    return {"norm": (p, np.concatenate(norm)), "direction": (p, np.concatenate(direction))}


def dp_metrics(plan: Any, bundles: dict[str, str]) -> dict[str, float]:
    """Each party's DP ledger (``dp_<field>.<party>``) and each holder's label-DP figures
    (``label_dp_epsilon.<holder>``, ``label_dp_flip_rate.<holder>``), so ε can be recomputed."""
    import json

    from fedsim.federation.vertical import out_dir
    from fedsim.federation.vertical.node import LEDGER_FILE
    from fedsim.federation.vertical.split_dp import flip_probability

    out: dict[str, float] = {}
    if plan.bottom_dp:
        for p in plan.parties:
            ledger = json.loads((out_dir(bundles[p]) / LEDGER_FILE).read_text())
            out.update({f"dp_{k}.{p}": float(v) for k, v in ledger.items() if k not in ("accountant", "history")})
    if plan.label_epsilon is not None:
        for h in plan.holders:
            out[f"label_dp_epsilon.{h}"] = float(plan.label_epsilon)
            out[f"label_dp_flip_rate.{h}"] = flip_probability(plan.label_epsilon)
    return out


def register_bottom_models(plan: Any, bundles: dict[str, str], data: Mapping[str, Any]) -> None:
    """Each party's DP bottom model as one exposure for per-person ε (:mod:`fedsim.person_privacy`): its
    ledger's history [(σ, q_b, steps_b) per holder] and, as examples, the party's entities in the training
    schedules (the unit it clips). The holders' own models are not DP-trained and never leave them
    (vertical); in hybrid their arrays reach the coordinator (see the leakage register)."""
    import json

    from fedsim.federation.vertical import out_dir
    from fedsim.federation.vertical.node import LEDGER_FILE
    from fedsim.person_privacy import ModelExposure, home_examples, register_exposure

    for p in plan.parties:
        ledger = json.loads((out_dir(bundles[p]) / LEDGER_FILE).read_text())
        history = tuple((float(s), float(q), int(n)) for s, q, n in ledger["history"])
        if not history:
            continue
        entities = [_party_train_entities(bundles, d, h, p) for h, d in data.items()]
        ids = np.unique(np.concatenate(entities)) if entities else np.zeros(0, np.int64)
        examples = home_examples(np.column_stack([np.full(len(ids), p, dtype=object), ids]))
        register_exposure(
            ModelExposure(
                f"bottom.{p}", history, float(ledger["delta"]), float(ledger["epsilon"]), ledger["accountant"], examples
            )
        )


def _party_train_entities(bundles: dict[str, str], d: Any, holder: str, party: str) -> np.ndarray:
    """The party's entity ids behind the holder's matched training rows (both halves of the alignment)."""
    from fedsim.federation.vertical import out_dir

    anchors = pd.read_parquet(out_dir(bundles[holder]) / f"anchors_{party}.parquet").set_index("entity_id")["anchor"]
    owners = pd.read_parquet(out_dir(bundles[party]) / f"owners_{holder}.parquet").set_index("anchor")["entity_id"]
    anchor = anchors.reindex(np.unique(d.entity_train)).dropna().astype(np.int64)
    return owners.reindex(anchor.to_numpy()).dropna().to_numpy(np.int64)


def _read_scores(bundle: str, holder: str) -> pd.DataFrame:
    from fedsim.federation.vertical import read_scores

    return read_scores(bundle).assign(partner=holder)


def _constant_scores(data: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "partner": data.name,
            "entity_id": data.entity_test,
            "decision_ts": data.ts_test,
            "window": data.window_test,
            "score": 0.0,
        }
    )


def _result(
    scores: pd.DataFrame, params: dict[str, Any], metrics: dict[str, float], steps: dict[str, list[float]]
) -> RegimeResult:
    first = entity_days(scores[scores["window"] == 0].drop(columns="window"))
    later = scores[scores["window"] == 1]
    second = entity_days(later.drop(columns="window")) if len(later) else None
    return RegimeResult(scores=first, params=params, metrics=metrics, second_scores=second, step_metrics=steps)


def alignment_metrics(
    ctx: RunContext, bundles: dict[str, str], holders: tuple[str, ...], parties: tuple[str, ...]
) -> dict[str, float]:
    """Match rate, precision and recall of each holder–party PSI alignment, from the two halves each side
    kept locally, judged against the hidden person ids (evaluation only)."""
    from fedsim.federation.vertical import out_dir

    out: dict[str, float] = {}
    for h in holders:
        n_entities = int(ctx.features[h].keys()["entity_id"].nunique())
        for p in parties:
            anchors = pd.read_parquet(out_dir(bundles[h]) / f"anchors_{p}.parquet")
            owners = pd.read_parquet(out_dir(bundles[p]) / f"owners_{h}.parquet").sort_values("anchor")
            pairs = alignment.entity_pairs(anchors, owners["entity_id"].to_numpy())
            q = alignment.match_quality(pairs, ctx.truth["entities"], holder=h, party=p, holder_entities=n_entities)
            out.update(q.as_metrics(f"psi.{h}.{p}"))
    return out


def _params(mode: str, roles: Roles, idle: list[str], federation: FederationSettings) -> dict[str, Any]:
    """Run params; federation ones carry the ``fl_`` prefix the horizontal regime uses (one name per fact)."""
    from fedsim.federation.engine import engine_address_param

    params: dict[str, Any] = {
        "sharing": "embeddings and gradients (split learning)"
        + (" + FedAvg among holders" if mode == "hybrid" else ""),
        "join": "ECDH-PSI on salted-hash keys (openmined-psi)",
        "fl_engine": federation.engine,
        **engine_address_param(federation.engine),
        "fl_rounds": federation.rounds,
        "fl_local_epochs": federation.local_epochs,
        "fl_embedding_dim": federation.embedding_dim,
        "fl_label_holders": "+".join(roles.holders),
        "fl_feature_parties": "+".join(roles.parties),
        "fl_idle_holders": "+".join(idle) or "none",
        "fl_architecture": f"split net: bottom Linear+ReLU per party -> top MLP ({HIDDEN} hidden)",
        "fl_unmatched_rows": "party's embedding of an all-missing row",
    }
    params.update({f"leakage.{k}": v for k, v in leakage_register(mode, roles).items()})
    return params


# ------------------------------------------------------------------------------------------------
# What each party learns
# ------------------------------------------------------------------------------------------------
def leakage_register(mode: str, roles: Roles) -> dict[str, str]:
    """Who learns what in one run, item by item (evaluation.md §5). Plain sentences, one per channel."""
    h, p = "+".join(roles.holders), "+".join(roles.parties)
    reg = {
        "psi": f"ECDH-PSI both ways: {h} and {p} each learn which of their own key hashes the other holds "
        "(the intersection) and the size of the other's key set; nothing about the rest.",
        "schedule": f"{p} learn {h}'s decision times for every matched person (train and test rows) "
        "and which matched persons are in the training sample (all reported-fraud rows, a share of the rest): "
        "a label signal, measured in every run as label_leak_schedule_auc (rows per person in the sample).",
        "batches": f"{p} learn which matched rows share a training batch and when a scoring chunk starts.",
        "embeddings": f"{h} (and the coordinator) receive {p}'s embeddings of matched rows in every batch and at "
        "scoring: a learned, lower-dimensional function of the party's features, without noise.",
        "gradients": f"{p} receive d loss / d embedding for their rows; its norm and direction reveal the label "
        "(Li et al. 2022, ICLR, 'Label leakage and protection in two-party split learning'): measured in every "
        "run as label_leak_norm_auc and label_leak_direction_auc (ROC-AUC ≈ 1 without protection).",
        "bottom_models": f"the bottom model each of {p} trains is a function of its entities' features and of "
        f"{h}'s returned gradients; without DP nothing bounds what the trained weights reveal.",
        "coordinator": "the coordinator relays every message: it sees schedules, row positions, embeddings, "
        "gradients and counts, never raw features, labels or identifiers.",
        "counts": "training-row and match counts per holder reach the coordinator (run metrics); under DP the "
        "holder's Poisson rate q = 1/ceil(entities/batch) reaches the parties.",
    }
    if mode == "hybrid":
        reg["model_arrays"] = (
            f"the coordinator receives each of {h}'s label-side model (own bottom + top) after "
            "every round (FedAvg, no secure aggregation); the averaged model goes back to all. Under DP its "
            "labels are covered by label DP (the models are computed from randomized labels); the holders' "
            "own features are not (no DP-SGD on the label side)."
        )
    return reg


SPLIT_MODELS: frozenset[str] = frozenset({"mlp"})
SPLIT_IGNORES = ("strategy", "proximal_mu", "secure_aggregation")
"""Federation settings split learning has no use for (no FedProx, no SecAgg+): refused, not ignored."""

_CHANNEL_PARTY = {
    "psi": "label holder and feature parties",
    "schedule": "feature parties",
    "batches": "feature parties",
    "embeddings": "label holder and coordinator",
    "gradients": "feature parties",
    "bottom_models": "anyone holding a party's bottom model",
    "coordinator": "coordinator",
    "counts": "coordinator",
    "model_arrays": "coordinator",
}
_CHANNEL_LIMIT = {
    "psi": "PSI reveals the intersection by design (cardinality-only mode reveals just its size)",
    "schedule": "under DP, label DP: the holder draws randomized response before subsampling, so the sample "
    "follows the noisy labels (covered by ε_label); the decision times are not limited",
    "batches": "not limited in this protocol (under DP, Poisson batches independent of the data)",
    "embeddings": "not limited: DP-SGD on the bottom models covers their weights, not the per-row embeddings "
    "the label holder receives",
    "gradients": "label DP at the label holder (randomized response, ε per training row, Ghazi et al. 2021): what "
    "the gradients add about a row's label, its features fixed, is bounded (ROC-AUC ≤ e^ε/(1+e^ε)); the holder's "
    "own features, which predict the label, still shape the gradients and are not covered; the attacks' AUC is "
    "logged in every run",
    "bottom_models": "DP-SGD per party (per-entity clipping, Poisson batches of the holder's entities, "
    "accountant ledger dp_*.<party>): (ε, δ) for one entity's features in the bottom-model weights",
    "coordinator": "not limited in this protocol (the coordinator is trusted to relay only)",
    "counts": "not limited (aggregate counts)",
    "model_arrays": "secure aggregation (not used in hybrid); label DP covers the labels in them",
}


def register_rows(mode: str) -> tuple[LeakageRow, ...]:
    """The leakage register's rows of a split-learning regime: :func:`leakage_register` with role names."""
    generic = Roles(("the label holder",), ("the feature parties",))
    return tuple(
        LeakageRow(_CHANNEL_PARTY[k], text, _CHANNEL_LIMIT[k]) for k, text in leakage_register(mode, generic).items()
    )


class Vertical(Regime):
    name = "vertical"
    federated = True
    models = SPLIT_MODELS
    split_network = True
    refuses = SPLIT_IGNORES
    leakage = register_rows("vertical")

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        """A label holder (``federation.label_holder``, default the banks) and at least one other kind."""
        holder = (federation or FederationSettings()).label_holder
        roles = roles_for(coalition, kinds, holder)
        return f"regime vertical, coalition = {'+'.join(coalition)}: {roles}" if isinstance(roles, str) else None

    def score(self, ctx: RunContext) -> RegimeResult:
        return run_split_regime(ctx, mode="vertical", roles=resolve_roles(ctx))
