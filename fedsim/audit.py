"""`fedsim audit`: does DP-SGD hold up against a real attack on *person* membership?

For each ε (default 1, 4, ∞) one model is trained on the member entities of a partner's training
set — through the same code as every regime (:func:`fedsim.privacy.make_private_fit`, entity-level
DP-SGD; at ε = ∞ the plain loop) — and a membership-inference attack tries to tell members from
non-members (entities held out of training). The attack is the loss attack (Yeom, Giacomelli,
Fredrikson & Jha 2018) with difficulty calibration by one reference model trained on a third,
disjoint set of entities (Watson, Guo, Cormode & Sablayrolles 2022; a one-reference offline form of
LiRA, Carlini et al. 2022): score = loss_reference − loss_target, averaged over the entity's rows.
:func:`fedsim.evaluation.privacy_audit.membership_table` turns the scores into TPR at FPR 0.1% / 1%
with CIs next to the bound e^ε·FPR + δ, and an empirical ε lower bound.

Also here: the gradients a non-label party receives in the split-learning protocol's own run
(:func:`capture_split_gradients`, read by :func:`party_gradients`), for the label-leakage attack of the
evaluation module.

CLI command function (the lead wires it into ``fedsim.cli``)::

    audit_command(experiment, *, partner=None, epsilons=(1.0, 4.0, inf), seed=0, workdir=".fedsim",
                  out=None, epochs=None, language="en") -> pandas.DataFrame
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
    (:func:`fedsim.evaluation.privacy_audit.label_leakage_report`).
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
) -> pd.DataFrame:
    """`fedsim audit EXPERIMENT [--partner P] [--epsilon 1 --epsilon 4 --epsilon inf] [--seed] [--out DIR]`.

    Builds (or reuses) the experiment's world, takes ``partner``'s siloed training set (default: the
    partner with the most entities), runs :func:`membership_audit` with the experiment's model
    (``mlp`` unless it lists only ``logistic``), training and privacy settings, prints the table with
    the plain-language odds and the leakage register, and writes ``membership_audit.csv`` and
    ``leakage_register.csv`` to ``out`` if given. Returns the membership table.
    """
    from fedsim.experiment import load_experiment
    from fedsim.models import Standardizer
    from fedsim.rows import RunContext, silo, unit_frame
    from fedsim.runner import Workspace, load_or_generate_world, training_settings
    from fedsim.training import TrainConfig

    spec = load_experiment(experiment)
    root = Path(workdir)
    ws = Workspace.build(spec, load_or_generate_world(spec, root / "worlds"), root / "artifacts")
    name = partner or max(ws.partner_sizes, key=ws.partner_sizes.__getitem__)
    if name not in ws.features:
        raise ValueError(f"partner: {name!r}; allowed: one of {sorted(ws.features)}")
    tr = spec.training
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
    X, idx = unit_frame(
        ctx, silo(name), (ws.split.train_start, ws.split.train_end), labels_before=ws.split.train_end, train=True
    )
    Xs = Standardizer().fit_transform(X.to_numpy(float))
    p = spec.privacy
    privacy = PrivacySettings(
        target_epsilon=1.0,
        delta=p.delta,
        max_grad_norm=p.max_grad_norm,
        accountant=p.accountant,
        max_rows_per_entity=p.max_rows_per_entity,
    )
    config = TrainConfig(
        epochs=epochs or tr.epochs, batch_size=tr.batch_size, learning_rate=tr.learning_rate, seed=seed
    )
    model = "logistic" if set(spec.models) <= {"logistic", "gbt"} and "logistic" in spec.models else "mlp"
    table = membership_audit(
        Xs,
        idx["y"].to_numpy(),
        idx["entity_id"].to_numpy(),
        config=config,
        model=model,
        epsilons=epsilons,
        privacy=privacy,
        seed=seed,
    ).assign(partner=name, model=model)
    table["odds"] = [
        explain_epsilon(e, delta=d, language=language)
        for e, d in zip(table["epsilon_spent"], table["delta"], strict=True)
    ]
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        table.to_csv(folder / "membership_audit.csv", index=False)
        leakage_register().to_csv(folder / "leakage_register.csv", index=False)
    if show:
        render_audit(table)
    return table


def render_audit(table: pd.DataFrame) -> None:
    """Print the membership table (rich) and the leakage register."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="Membership inference on entities (persons): TPR at fixed FPR vs the DP bound e^ε·FPR + δ")
    for col in ("ε target", "ε spent", "FPR target", "FPR [95% CI]", "TPR [95% CI]", "bound", "ε lower bound", "AUC"):
        t.add_column(col)
    for _, r in table.iterrows():
        t.add_row(
            f"{r['epsilon']:g}",
            f"{r['epsilon_spent']:.2f}",
            f"{r['fpr_target']:.1%}",
            f"{r['fpr']:.2%} [{r['fpr_lo']:.2%}, {r['fpr_hi']:.2%}]",
            f"{r['tpr']:.2%} [{r['tpr_lo']:.2%}, {r['tpr_hi']:.2%}]",
            f"{r['bound_hi']:.2%}",
            f"{r['epsilon_lower_bound']:.2f}",
            f"{r['auc']:.3f}",
        )
    console.print(t)
    for line in dict.fromkeys(table.get("odds", [])):
        console.print(f"• {line}")
    reg = Table(title="Leakage register: what each party learns")
    for col in ("regime", "party", "learns", "limited by"):
        reg.add_column(col)
    for row in leakage_register().itertuples(index=False):
        reg.add_row(*[str(v) for v in row])
    console.print(reg)


def audit_params(table: pd.DataFrame) -> dict[str, Any]:
    """Flat metrics of an audit table for tracking: ``audit_tpr_f<fpr>_e<ε>`` (+ ``_lo`` / ``_hi``) etc."""
    out: dict[str, Any] = {}
    for _, r in table.iterrows():
        key = f"f{r['fpr_target']:g}_e{r['epsilon']:g}"
        for name in ("tpr", "fpr", "bound_hi", "epsilon_lower_bound", "auc"):
            out[f"audit_{name}_{key}"] = float(r[name])
        out[f"audit_tpr_{key}_lo"], out[f"audit_tpr_{key}_hi"] = float(r["tpr_lo"]), float(r["tpr_hi"])
    return out
