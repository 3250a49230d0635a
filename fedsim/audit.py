"""`fedsim audit`: does DP-SGD hold up against real attacks on *person* membership?

Two audits per ε (default 1, 4, ∞), both training through the same code as every regime
(:func:`fedsim.privacy.make_private_fit`, entity-level DP-SGD; at ε = ∞ the plain loop):

* **One-run canary audit** (:func:`canary_audit`; Steinke, Nasr & Jagielski 2023, "Privacy auditing with
  one (1) training run", NeurIPS). m canary entities — random-sign vectors far from the data, each with a
  random label — are each put into the partner's training set with probability 1/2; one model is trained;
  the canaries with the highest margin of their own label are guessed "in", the lowest "out", and
  :func:`fedsim.evaluation.canary_audit.one_run_epsilon_lower_bound` turns the number of correct guesses
  into an ε lower bound at 95% confidence (their Thm 3.1). It has power where the attack on real persons
  has none: a non-private mlp that memorises its canaries gives a bound clearly above 0, and a DP model
  must stay at or below its claimed ε.
* **Membership attack on the real entities** (:func:`membership_audit`): a model is trained on the member
  entities and the loss attack (Yeom, Giacomelli, Fredrikson & Jha 2018) with difficulty calibration by
  one reference model trained on a third, disjoint set of entities (Watson, Guo, Cormode & Sablayrolles
  2022; a one-reference offline form of LiRA, Carlini et al. 2022) tries to tell members from non-members:
  score = loss_reference − loss_target, averaged over the entity's rows.
  :func:`fedsim.evaluation.privacy_audit.membership_table` turns the scores into TPR at FPR 0.1% / 1% with
  CIs next to the bound e^ε·FPR + δ; a TPR at FPR t needs ≥ ln(0.025) / ln(1 − t) non-members in the
  evaluation half (368 at 1%, 3,688 at 0.1%: :func:`fedsim.evaluation.canary_audit.min_nonmembers`), and
  the table says "not measurable with n = …" where it has fewer.

Also here: the gradients a non-label party receives in the split-learning protocol's own run
(:func:`capture_split_gradients`, read by :func:`party_gradients`), for the label-leakage attack of the
evaluation module.

CLI command function (the lead wires it into ``fedsim.cli``)::

    audit_command(experiment, *, partner=None, epsilons=(1.0, 4.0, inf), seed=0, workdir=".fedsim",
                  out=None, epochs=None, language="en", show=True, canaries=1000, canary_guesses=100,
                  canary_epochs=100, canary_rows=None) -> pandas.DataFrame
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsim.evaluation.privacy_audit import DEFAULT_FPRS, leakage_register, membership_table
from fedsim.privacy import PrivacySettings, default_delta, explain_epsilon

if TYPE_CHECKING:
    from torch import nn

    from fedsim.rows import RunContext
    from fedsim.training import TrainConfig

DEFAULT_EPSILONS: tuple[float, ...] = (1.0, 4.0, math.inf)


@dataclass(frozen=True)
class PersonSplit:
    """Entity codes of the three disjoint pools of a membership audit."""

    members: np.ndarray
    nonmembers: np.ndarray
    reference: np.ndarray


def split_persons(
    groups: np.ndarray, *, seed: int, shares: tuple[float, float, float] = (0.4, 0.4, 0.2)
) -> PersonSplit:
    """Random disjoint pools of entities (not rows): members, non-members, reference."""
    entities = np.unique(np.asarray(groups))
    if entities.size < 10:
        raise ValueError(f"groups: {entities.size} entities; allowed: at least 10 for an audit")
    order = np.random.default_rng(seed).permutation(entities)
    a = int(round(shares[0] * order.size))
    b = a + int(round(shares[1] * order.size))
    return PersonSplit(order[:a], order[a:b], order[b:])


def person_losses(model: nn.Module, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> pd.Series:
    """Mean unweighted BCE loss per entity (index: entity id) of ``model`` on rows ``X`` ``(n, d)``."""
    from fedsim.training import predict_scores

    p = np.clip(predict_scores(model, X), 1e-7, 1 - 1e-7)
    loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return pd.Series(loss).groupby(np.asarray(groups)).mean()


def _train(
    model_name: str,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    epsilon: float,
    config: TrainConfig,
    privacy: PrivacySettings,
    seed: int,
) -> tuple[nn.Module, float, float]:
    """One fresh model on (X, y); DP-SGD at finite ε (entity level). Returns (model, ε spent, δ)."""
    from fedsim.models import make_model
    from fedsim.privacy import make_private_fit
    from fedsim.training import fit

    model = make_model(model_name, n_features=X.shape[1], seed=seed)
    n_entities = int(np.unique(groups).size)
    if math.isinf(epsilon):
        fit(model, X, y, config=config)
        return model, math.inf, privacy.delta or default_delta(n_entities)
    settings = privacy.model_copy(update={"target_epsilon": epsilon, "noise_multiplier": None})
    out = make_private_fit(model, X, y, privacy=settings, config=config, seed=seed, groups=groups)
    return model, out.ledger.epsilon, out.ledger.delta


def membership_audit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    config: TrainConfig,
    model: str = "mlp",
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    privacy: PrivacySettings | None = None,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    calibrated: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Train at each ε on member entities, attack, and tabulate (one row per ε × target FPR).

    Args:
        X, y, groups: rows ``(n, d)`` (standardised), 0/1 labels ``(n,)``, entity id per row ``(n,)``.
        config: training settings (epochs, batch size — entities per batch under DP —, lr).
        model: ``logistic`` or ``mlp``.
        epsilons: target ε values; inf = no DP.
        privacy: base DP settings (δ, C, accountant, row cap); target ε is set per value.
        fprs: target false positive rates.
        calibrated: subtract each entity's loss under a reference model (difficulty calibration);
            False = the plain loss attack (score = −loss).
    Columns: ``epsilon`` (target), ``epsilon_spent``, ``delta`` and those of ``membership_table``.
    """
    X, y, groups = np.asarray(X, np.float32), np.asarray(y, np.float32), np.asarray(groups)
    base = privacy or PrivacySettings(target_epsilon=1.0)
    pools = split_persons(groups, seed=seed)
    in_pool = {name: np.isin(groups, getattr(pools, name)) for name in ("members", "nonmembers", "reference")}
    audited = in_pool["members"] | in_pool["nonmembers"]
    ref_loss: pd.Series | float = 0.0
    if calibrated:
        ref_model, _, _ = _train(
            model,
            X[in_pool["reference"]],
            y[in_pool["reference"]],
            groups[in_pool["reference"]],
            epsilon=math.inf,
            config=config,
            privacy=base,
            seed=seed + 1,
        )
        ref_loss = person_losses(ref_model, X[audited], y[audited], groups[audited])
    tables = []
    for eps in epsilons:
        m = in_pool["members"]
        target, spent, delta = _train(
            model, X[m], y[m], groups[m], epsilon=float(eps), config=config, privacy=base, seed=seed
        )
        score = ref_loss - person_losses(target, X[audited], y[audited], groups[audited])
        t = membership_table(
            score[pools.members].to_numpy(),
            score[pools.nonmembers].to_numpy(),
            epsilon=spent,
            delta=delta,
            fprs=fprs,
            seed=seed,
        )
        tables.append(t.assign(epsilon=float(eps), epsilon_spent=spent, delta=delta))
    out = pd.concat(tables, ignore_index=True)
    return out[
        [
            "epsilon",
            "epsilon_spent",
            "delta",
            *[c for c in out.columns if c not in ("epsilon", "epsilon_spent", "delta")],
        ]
    ]


# --------------------------------------------------------------------------------------------
# One-run canary audit (Steinke, Nasr & Jagielski 2023)
# --------------------------------------------------------------------------------------------
CANARY_SCALE = 3.0
CANARY_EPOCHS = 100
"""Epochs of the canary audit's training: long enough that the non-private mlp memorises its canaries."""
"""Per-coordinate size of a canary in standardised units: ±3 puts it ~3× farther out than a typical row."""


@dataclass(frozen=True)
class Canaries:
    """Canary entities: one feature vector and one label each; the first ``m`` are audited.

    ``X`` ``(m + held_out, d)``, ``y`` ``(m + held_out,)``; ``included`` ``(m,)``: S_i, each True with
    probability 1/2. The ``held_out`` extra canaries are never trained on; they only add non-members
    so that a TPR at a low FPR can be measured (they take no part in the ε lower bound).
    """

    X: np.ndarray
    y: np.ndarray
    included: np.ndarray
    rows: int

    @property
    def m(self) -> int:
        return int(self.included.size)


def make_canaries(
    m: int, n_features: int, *, seed: int, rows: int = 16, held_out: int = 0, scale: float = CANARY_SCALE
) -> Canaries:
    """``m`` (+ ``held_out``) out-of-distribution canaries with random labels and random inclusion.

    Why this kind: each canary is a random sign vector (±``scale`` per standardised feature), far from
    every real row, so the real data says little about the model's output there; its label is a fair
    coin, so "far out" carries no label and only memorising that very canary lifts the margin of its own
    label (a fixed label would teach the model "far out → that label" from the included canaries and lift
    the excluded ones too). Each canary entity has ``rows`` identical rows (at most the DP row cap: under
    entity-level DP the entity is one clipped example whatever its row count; without DP the rows weigh
    it ``rows`` times, which helps the non-private model memorise it).
    """
    if m < 2 or held_out < 0 or rows < 1 or n_features < 1:
        raise ValueError(
            f"m, held_out, rows, n_features: {m}, {held_out}, {rows}, {n_features}; allowed: m >= 2, held_out >= 0, "
            "rows >= 1, n_features >= 1"
        )
    rng = np.random.default_rng([seed, 0xCA7A])
    X = (rng.choice([-1.0, 1.0], size=(m + held_out, n_features)) * scale).astype(np.float32)
    y = (rng.random(m + held_out) < 0.5).astype(np.float32)
    included = rng.random(m) < 0.5
    return Canaries(X=X, y=y, included=included, rows=rows)


def with_canaries(
    X: np.ndarray, y: np.ndarray, groups: np.ndarray, canaries: Canaries
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training rows plus ``rows`` copies of each included canary, each canary a new entity.

    Entity ids become integer codes (real entities 0..P−1, canaries P, P+1, …), so no canary can share an
    id with a real entity.
    """
    codes, _ = pd.factorize(np.asarray(groups))
    chosen = np.flatnonzero(canaries.included)
    Xc = np.repeat(canaries.X[chosen], canaries.rows, axis=0)
    yc = np.repeat(canaries.y[chosen], canaries.rows)
    gc = np.repeat(codes.max() + 1 + chosen, canaries.rows)
    return (
        np.vstack([np.asarray(X, np.float32), Xc]),
        np.r_[np.asarray(y, np.float32), yc],
        np.r_[codes, gc],
    )


def label_margins(model: nn.Module, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Logit margin of each row's own label: z if y = 1, −z if y = 0 (z = the model's logit; no sigmoid
    saturation, unlike a probability)."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            z = model(torch.from_numpy(np.asarray(X, np.float32))).reshape(-1).double().numpy()
    finally:
        model.train(was_training)
    return np.where(np.asarray(y) == 1, z, -z)


def canary_audit(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    config: TrainConfig,
    model: str = "mlp",
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    privacy: PrivacySettings | None = None,
    m: int = 1000,
    guesses: int = 100,
    rows: int = 16,
    held_out: int | None = None,
    beta: float = 0.05,
    fprs: tuple[float, ...] = DEFAULT_FPRS,
    seed: int = 0,
) -> pd.DataFrame:
    """The one-run audit at each ε: train once with the canaries, guess, bound ε (one row per ε).

    Args:
        X, y, groups: the real training rows ``(n, d)`` (standardised), 0/1 labels, entity id per row.
        config, model, privacy: as in production (:func:`fedsim.privacy.make_private_fit`, entity-level
            DP-SGD at finite ε; the plain loop at ε = inf).
        m: audited canaries (each in with probability 1/2).
        guesses: guesses per side: "in" for the ``guesses`` highest margins, "out" for the lowest, fixed
            before training (choosing it after seeing the scores would void the confidence level).
        rows: rows per canary entity (≤ ``privacy.max_rows_per_entity``).
        held_out: never-trained canaries added to the non-members of the TPR-at-FPR columns; default m/2.
        beta: 1 − confidence of the ε lower bound.
    Columns: those of :func:`fedsim.evaluation.canary_audit.canary_row` plus ``epsilon`` (target) and
    ``epsilon_spent``.
    """
    from fedsim.evaluation.canary_audit import canary_row

    base = privacy or PrivacySettings(target_epsilon=1.0)
    if m < 2 or guesses < 1 or 2 * guesses > m:
        raise ValueError(f"m, guesses: {m}, {guesses}; allowed: m >= 2 canaries and 1 <= guesses per side <= m / 2")
    if rows > base.max_rows_per_entity:
        raise ValueError(f"rows: {rows}; allowed: at most max_rows_per_entity = {base.max_rows_per_entity}")
    extra = m // 2 if held_out is None else held_out
    canaries = make_canaries(m, np.asarray(X).shape[1], seed=seed, rows=rows, held_out=extra)
    Xt, yt, gt = with_canaries(X, y, groups, canaries)
    out = []
    for eps in epsilons:
        target, spent, delta = _train(model, Xt, yt, gt, epsilon=float(eps), config=config, privacy=base, seed=seed)
        margin = label_margins(target, canaries.X, canaries.y)
        # the ε bound uses the m randomised canaries only; the held-out ones are extra non-members for the rates
        row = canary_row(
            margin[: canaries.m],
            canaries.included,
            epsilon=spent,
            delta=delta,
            k_plus=guesses,
            k_minus=guesses,
            beta=beta,
            fprs=fprs,
            seed=seed,
            extra_nonmember_scores=margin[canaries.m :],
        )
        out.append({"epsilon": float(eps), "epsilon_spent": spent, **row})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# Split learning: what the non-label party receives, from the protocol's own run
# --------------------------------------------------------------------------------------------
def party_gradients(
    records: Sequence[Mapping[str, Any]],
    *,
    holder: str,
    party: str,
    positions: np.ndarray,
    y_train: np.ndarray,
    stage: str = "round_1",
) -> tuple[np.ndarray, np.ndarray]:
    """The gradients ``party`` received from ``holder`` in one stage of a captured split-learning run.

    Args:
        records: the coordinator's message log with payloads
            (:class:`fedsim.federation.vertical.coordinator.MessageLog`, ``keep_payloads=True``).
        holder, party: the label holder and the feature party.
        positions: the holder's schedule position of each of its rows (train rows first; −1 = not
            matched with ``party``) — the holder's own alignment state ``pos/<party>``.
        y_train: the holder's training labels ``(n,)``, only to score the attack afterwards.
        stage: ``round_<r>`` of the run.

    Each holder reply announces the party's rows of the next batch (``rows/<party>``) and carries
    ∂loss/∂E for the batch before (``grad/<party>``, one row per matched row plus the all-missing row,
    which is dropped here). Returns the gradients ``(m, embedding_dim)`` and the matching labels ``(m,)``.
    """
    row_of = {int(pos): row for row, pos in enumerate(np.asarray(positions)[: len(y_train)]) if pos >= 0}
    grads, labels = [], []
    pending: np.ndarray | None = None
    for rec in records:
        if rec["stage"] != stage or rec["direction"] != "from" or rec["partner"] != holder:
            continue
        payload = rec["payload"]
        if rec["action"] == "step" and pending is not None and f"grad/{party}" in payload:
            block = np.asarray(payload[f"grad/{party}"])
            if block.shape[0] != len(pending) + 1:
                raise ValueError(
                    f"grad/{party}: {block.shape[0]} rows; allowed: {len(pending) + 1} (batch + missing row)"
                )
            grads.append(block[:-1])
            labels.append(np.asarray(y_train)[[row_of[int(j)] for j in pending]])
        if rec["action"] in ("begin", "step"):
            pending = payload.get(f"rows/{party}")
    if not grads:
        raise ValueError(f"records: no gradient from {holder} to {party} in {stage}; allowed: a captured training run")
    return np.concatenate(grads), np.concatenate(labels)


def capture_split_gradients(ctx: RunContext, *, holder: str, party: str, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """One round of split learning between ``holder`` and ``party`` through the protocol's own code, captured.

    The label holder and the party build their data, align by PSI and train exactly as the vertical
    regime does (:mod:`fedsim.federation.vertical`: same bundles, coordinator, label-holder and party
    code, in process); the coordinator keeps every payload, and :func:`party_gradients` reads what the
    party received in the first epoch. ``work``: scratch directory for the two bundles.
    Returns (gradients ``(m, embedding_dim)``, labels ``(m,)``) for the label-leakage attack
    (:func:`fedsim.evaluation.label_leakage.label_leakage_report`).
    """
    from fedsim.federation.vertical import LocalExchange, Plan, coordinator, write_bundle
    from fedsim.regimes.vertical import HIDDEN, holder_data, party_data

    data = holder_data(ctx, holder)
    bundles = {holder: str(write_bundle(data, work)), party: str(write_bundle(party_data(ctx, party), work))}
    plan = Plan(
        mode="vertical",
        holders=(holder,),
        parties=(party,),
        seed=ctx.seed,
        rounds=1,
        local_epochs=1,
        batch_size=ctx.training.batch_size,
        learning_rate=ctx.training.learning_rate,
        embedding_dim=ctx.federation.embedding_dim,
        hidden=HIDDEN,
        out_dir="",
        capture=True,
    )
    exchange = LocalExchange(bundles)
    result = coordinator.run(plan, exchange)
    positions = exchange.states[holder][f"pos/{party}"]
    return party_gradients(result.log.records, holder=holder, party=party, positions=positions, y_train=data.y_train)


# --------------------------------------------------------------------------------------------
# CLI command
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditData:
    """One partner's siloed training set, standardised, as the audit attacks it."""

    partner: str
    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    @property
    def n_entities(self) -> int:
        return int(np.unique(self.groups).size)


def audit_data(spec: Any, workdir: str | Path, *, partner: str | None, seed: int) -> AuditData:
    """``partner``'s siloed training set (default: the partner with the most entities in its training set,
    so that the membership attack has the most non-members: power at a low FPR)."""
    from fedsim.errors import FedsimError
    from fedsim.models import Standardizer
    from fedsim.rows import RunContext, silo, unit_frame
    from fedsim.runner import Workspace, load_or_generate_world, training_settings

    root = Path(workdir)
    ws = Workspace.build(spec, load_or_generate_world(spec, root / "worlds"), root / "artifacts")
    if partner is not None and partner not in ws.features:
        raise FedsimError(f"partner: {partner!r}; allowed: one of {sorted(ws.features)}")
    sets = {}
    for name in [partner] if partner else sorted(ws.features):
        ctx = RunContext(
            world=ws.world,
            coalition=(name,),
            model="mlp",
            seed=seed,
            split=ws.split,
            training=training_settings(spec.training),
            features=ws.features,
            truth=ws.truth,
        )
        window = (ws.split.train_start, ws.split.train_end)
        sets[name] = unit_frame(ctx, silo(name), window, labels_before=ws.split.train_end, train=True)
    name = max(sets, key=lambda n: sets[n][1]["entity_id"].nunique())
    X, idx = sets[name]
    Xs = Standardizer().fit_transform(X.to_numpy(float)).astype(np.float32)
    return AuditData(name, Xs, idx["y"].to_numpy().astype(np.float32), idx["entity_id"].to_numpy())


def _privacy_base(spec: Any) -> PrivacySettings:
    p = spec.privacy
    return PrivacySettings(
        target_epsilon=1.0,
        delta=p.delta,
        max_grad_norm=p.max_grad_norm,
        accountant=p.accountant,
        max_rows_per_entity=p.max_rows_per_entity,
    )


def with_measurability(table: pd.DataFrame) -> pd.DataFrame:
    """A membership table plus ``measurable`` and ``note``: can its non-members measure the TPR at that FPR?"""
    from fedsim.evaluation.canary_audit import min_nonmembers

    need = table["fpr_target"].map(lambda f: min_nonmembers(float(f)))
    ok = table["n_nonmembers"] >= need
    note = [
        "measured" if good else f"not measurable with n = {n} non-members (needs ≥ {k})"
        for good, n, k in zip(ok, table["n_nonmembers"], need, strict=True)
    ]
    return table.assign(measurable=ok, note=note)


def audit_command(
    experiment: str | Path,
    *,
    partner: str | None = None,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
    seed: int = 0,
    workdir: str | Path = ".fedsim",
    out: str | Path | None = None,
    epochs: int | None = None,
    language: str = "en",
    show: bool = True,
    canaries: int = 1000,
    canary_guesses: int = 100,
    canary_epochs: int = CANARY_EPOCHS,
    canary_rows: int | None = None,
) -> pd.DataFrame:
    """`fedsim audit EXPERIMENT [--partner P] [--epsilon 1 --epsilon 4 --epsilon inf] [--seed] [--out DIR]`.

    Builds (or reuses) the experiment's world and takes ``partner``'s siloed training set (default: the
    partner with the most entities in it). Two audits at each ε:

    * the membership attack (:func:`membership_audit`) with the experiment's model (``mlp`` unless it
      lists only ``logistic``) and training settings, each TPR marked measurable or not
      (:func:`with_measurability`);
    * the one-run canary audit (:func:`canary_audit`, ``canaries`` = m, 0 = skip) on the same rows with
      an ``mlp`` trained ``canary_epochs`` epochs (the memorising configuration; the DP claim covers any
      model, so the audit takes the one that memorises best), canaries of ``canary_rows`` rows (default:
      the experiment's row cap).

    Prints both tables, the plain-language odds and the leakage register, logs the canary table, and
    writes ``membership_audit.csv``, ``canary_audit.csv`` and ``leakage_register.csv`` to ``out`` if
    given. Returns the membership table (its ``attrs["canary"]`` holds the canary table).
    """
    from fedsim.errors import FedsimError
    from fedsim.experiment import load_experiment
    from fedsim.training import TrainConfig

    if canaries < 0 or canary_epochs < 1 or (canaries > 0 and not 1 <= canary_guesses <= canaries // 2):
        raise FedsimError(
            f"canaries, canary_guesses, canary_epochs: {canaries}, {canary_guesses}, {canary_epochs}; allowed: "
            "canaries = 0 (no canary audit) or >= 2 with 1 <= guesses per side <= canaries / 2, epochs >= 1"
        )
    spec = load_experiment(experiment)
    data = audit_data(spec, workdir, partner=partner, seed=seed)
    tr = spec.training
    privacy = _privacy_base(spec)
    config = TrainConfig(
        epochs=epochs or tr.epochs, batch_size=tr.batch_size, learning_rate=tr.learning_rate, seed=seed
    )
    model = "logistic" if set(spec.models) <= {"logistic", "gbt"} and "logistic" in spec.models else "mlp"
    table = membership_audit(
        data.X, data.y, data.groups, config=config, model=model, epsilons=epsilons, privacy=privacy, seed=seed
    ).assign(partner=data.partner, model=model)
    table = with_measurability(table)
    table["odds"] = [
        explain_epsilon(e, delta=d, language=language)
        for e, d in zip(table["epsilon_spent"], table["delta"], strict=True)
    ]
    canary = pd.DataFrame()
    if canaries > 0:
        canary = canary_audit(
            data.X,
            data.y,
            data.groups,
            config=config.model_copy(update={"epochs": canary_epochs}),
            model="mlp",
            epsilons=epsilons,
            privacy=privacy,
            m=canaries,
            guesses=canary_guesses,
            rows=canary_rows or privacy.max_rows_per_entity,
            seed=seed,
        ).assign(partner=data.partner, model="mlp", epochs=canary_epochs)
        log_canary_table(canary)
    table.attrs["canary"] = canary
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(folder / "membership_audit.csv", index=False)
        if not canary.empty:
            canary.to_csv(folder / "canary_audit.csv", index=False)
        leakage_register().to_csv(folder / "leakage_register.csv", index=False)
    if show:
        render_audit(table)
    return table


def canary_lines(canary: pd.DataFrame) -> list[str]:
    """One plain line per ε of a canary table (what is logged and printed under the table)."""
    lines = []
    for r in canary.to_dict("records"):
        rates = []
        for key in sorted(k[4:] for k in r if k.startswith("tpr_f") and k.count("_") == 1):
            if r[f"note_{key}"] == "measured":
                rates.append(
                    f"TPR at FPR {float(key[1:]):.1%} = {r[f'tpr_{key}']:.1%} "
                    f"[{r[f'tpr_{key}_lo']:.1%}, {r[f'tpr_{key}_hi']:.1%}]"
                )
            else:
                rates.append(f"FPR {float(key[1:]):.1%}: {r[f'note_{key}']}")
        lines.append(
            f"canary audit ε claimed {r['epsilon_spent']:.3g} (target {r['epsilon']:g}): ε lower bound "
            f"{r['epsilon_lower_bound']:.2f} at {1 - r['beta']:.0%} confidence, m = {r['m']} canaries "
            f"({r['m_in']} in), {r['correct']}/{r['guesses']} guesses correct; " + "; ".join(rates)
        )
    return lines


def log_canary_table(canary: pd.DataFrame) -> None:
    """The canary table on the log (stderr), one line per ε."""
    import logging

    log = logging.getLogger("fedsim.audit")
    for line in canary_lines(canary):
        log.info(line)


def render_audit(table: pd.DataFrame) -> None:
    """Print the membership table, the canary table (``table.attrs["canary"]``) and the leakage register."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="Membership inference on entities (persons): TPR at fixed FPR vs the DP bound e^ε·FPR + δ")
    for col in ("ε target", "ε spent", "FPR target", "FPR [95% CI]", "TPR [95% CI]", "bound", "ε lower bound", "AUC"):
        t.add_column(col)
    for _, r in table.iterrows():
        rates = [
            f"{r['fpr']:.2%} [{r['fpr_lo']:.2%}, {r['fpr_hi']:.2%}]",
            f"{r['tpr']:.2%} [{r['tpr_lo']:.2%}, {r['tpr_hi']:.2%}]",
        ]
        if not r.get("measurable", True):
            rates = [_short_note(float(r["fpr_target"]), int(r["n_nonmembers"])), "—"]
        t.add_row(
            f"{r['epsilon']:g}",
            f"{r['epsilon_spent']:.2f}",
            f"{r['fpr_target']:.1%}",
            *rates,
            f"{r['bound_hi']:.2%}",
            f"{r['epsilon_lower_bound']:.2f}",
            f"{r['auc']:.3f}",
        )
    console.print(t)
    for line in dict.fromkeys(table.get("odds", [])):
        console.print(f"• {line}")
    canary = table.attrs.get("canary")
    if isinstance(canary, pd.DataFrame) and not canary.empty:
        console.print(canary_rich_table(canary))
        for line in canary_lines(canary):
            console.print(f"• {line}")
    reg = Table(title="Leakage register: what each party learns")
    for col in ("regime", "party", "learns", "limited by"):
        reg.add_column(col)
    for row in leakage_register().itertuples(index=False):
        reg.add_row(*[str(v) for v in row])
    console.print(reg)


def _short_note(fpr: float, n: int) -> str:
    """'not measurable: n = 494 < 3688' — the table cell of a rate its non-members cannot measure."""
    from fedsim.evaluation.canary_audit import min_nonmembers

    return f"not measurable: n = {n} < {min_nonmembers(fpr)}"


def canary_rich_table(canary: pd.DataFrame) -> Any:
    """The canary table as a rich Table: ε claimed, ε lower bound, m, guesses, correct, TPR at each FPR."""
    from rich.table import Table

    t = Table(
        title="One-run canary audit (Steinke, Nasr & Jagielski 2023): empirical ε lower bound "
        f"at {1 - float(canary['beta'].iloc[0]):.0%} confidence"
    )
    keys = sorted(k[4:] for k in canary.columns if k.startswith("tpr_f") and k.count("_") == 1)
    for col in ("ε target", "ε claimed", "ε lower bound", "m (in)", "guesses", "correct", "AUC"):
        t.add_column(col)
    for key in keys:
        t.add_column(f"TPR at FPR {float(key[1:]):.1%} [95% CI]")
    for r in canary.to_dict("records"):
        cells = [
            f"{r['epsilon']:g}",
            f"{r['epsilon_spent']:.3g}",
            f"{r['epsilon_lower_bound']:.2f}",
            f"{r['m']} ({r['m_in']})",
            str(r["guesses"]),
            str(r["correct"]),
            f"{r['auc']:.3f}",
        ]
        for key in keys:
            measured = r[f"note_{key}"] == "measured"
            cells.append(
                f"{r[f'tpr_{key}']:.1%} [{r[f'tpr_{key}_lo']:.1%}, {r[f'tpr_{key}_hi']:.1%}]"
                if measured
                else _short_note(float(key[1:]), int(r[f"n_nonmembers_{key}"]))
            )
        t.add_row(*cells)
    return t


def audit_params(table: pd.DataFrame) -> dict[str, Any]:
    """Flat metrics of an audit table for tracking: ``audit_tpr_f<fpr>_e<ε>`` (+ ``_lo`` / ``_hi``) etc."""
    out: dict[str, Any] = {}
    for _, r in table.iterrows():
        key = f"f{r['fpr_target']:g}_e{r['epsilon']:g}"
        for name in ("tpr", "fpr", "bound_hi", "epsilon_lower_bound", "auc"):
            out[f"audit_{name}_{key}"] = float(r[name])
        out[f"audit_tpr_{key}_lo"], out[f"audit_tpr_{key}_hi"] = float(r["tpr_lo"]), float(r["tpr_hi"])
    return out


def canary_params(canary: pd.DataFrame) -> dict[str, float]:
    """Flat metrics of a canary table for tracking: ``canary_eps_lb_e<ε>``, ``canary_correct_e<ε>``, … per ε."""
    out: dict[str, float] = {}
    for r in canary.to_dict("records"):
        key = f"e{r['epsilon']:g}"
        for name, column in (
            ("eps_lb", "epsilon_lower_bound"),
            ("eps_claimed", "epsilon_spent"),
            ("m", "m"),
            ("guesses", "guesses"),
            ("correct", "correct"),
            ("auc", "auc"),
        ):
            out[f"canary_{name}_{key}"] = float(r[column])
    return out
