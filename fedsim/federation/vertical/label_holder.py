"""The label holder's side of split learning (plain torch, no Flower): its bottom model, the top model,
the loss and the gradient slice each party gets back.

Each function takes the holder's bundle, its state (flat numpy dict) and a message payload, and
returns the reply payload; the state is updated in place. What goes out: PSI messages, the schedule
(anchors + decision times of the matched rows), batch row positions, gradient slices, model arrays
(hybrid), and counts. Labels, features and entity ids stay here.

Per training step (Vepakomma et al. 2018, "Split learning for health", arXiv:1812.00564; Flower's
vertical FL pattern): every party sends the embeddings ``E_p`` of the matched rows of the batch plus
one embedding of an all-missing row (used for the batch rows the party does not hold); the holder
forms ``z = [own_bottom(x_own), E_1[idx_1], …]``, computes the weighted BCE of ``top(z)`` exactly as
:func:`fedsim.training.fit` does, steps its own Adam, and returns ``∂loss/∂E_p`` to each party.
Batches are drawn as :func:`fedsim.training.fit` draws them, with the run's seed, so one vertical run
and a central :class:`~fedsim.models.SplitNet` trained by ``fit`` see the same batches in the same order.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fedsim import alignment
from fedsim.federation.vertical import split_dp
from fedsim.federation.vertical.data import (
    HolderData,
    Payload,
    Plan,
    State,
    adam_arrays,
    fit_standardizer,
    load_adam,
    load_module,
    load_standardizer,
    module_arrays,
    names,
    standardizer_arrays,
)
from fedsim.models import BottomModel, TopModel
from fedsim.training import ShuffledBatches, TrainConfig, balanced_pos_weight, make_loader, make_optimizer


class LabelSide(nn.Module):
    """The holder's trainable part: its own bottom model and the top model (n_parties + 1 embeddings)."""

    def __init__(self, width: int, n_parties: int, *, embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.own = BottomModel(width, embedding_dim)
        self.top = TopModel([embedding_dim] * (n_parties + 1), hidden)


# ------------------------------------------------------------------------------------------------
# Alignment (PSI client) and schedule
# ------------------------------------------------------------------------------------------------
def psi_start(data: HolderData, state: State, payload: Payload) -> Payload:
    """Forward PSI, step 1: blind the holder's key elements for each party (key kept in state)."""
    reply: Payload = {}
    for p in names(payload["parties"]):
        cols = alignment.key_columns_shared_with(data.keys, names(payload[f"keys/{p}"]))
        req = alignment.psi_client_request(alignment.unique_elements(alignment.key_elements(data.keys, cols)))
        state[f"psi_key/{p}"] = np.frombuffer(req.key, dtype=np.uint8).copy()
        reply[f"psi_request/{p}"] = req.request
    return reply


def psi_finish(data: HolderData, state: State, payload: Payload, plan: Plan) -> tuple[Payload, dict[str, pd.DataFrame]]:
    """Forward PSI step 3 and reverse PSI step 2, then the schedule each party needs.

    Returns the reply and, per party, the holder's half of the alignment (entity → anchor) for its
    local output. The schedule lists the matched rows only — train rows first, then test rows — as
    (anchor, decision time); rows of people the party does not hold are never announced.
    """
    reply: Payload = {}
    halves = {}
    std = fit_standardizer(data.x_train, add_missing_row=plan.always_indicators)
    state.update(standardizer_arrays(std, "std/"))
    for p in names(payload["parties"]):
        cols = alignment.key_columns_shared_with(data.keys, names(payload[f"keys/{p}"]))
        elements = alignment.key_elements(data.keys, cols)
        mine = alignment.unique_elements(elements)
        found = alignment.psi_client_intersection(
            bytes(state.pop(f"psi_key/{p}")), payload[f"psi_setup/{p}"], payload[f"psi_response/{p}"]
        )
        anchors = alignment.holder_anchors(elements, [mine[i] for i in np.asarray(found)])
        halves[p] = anchors
        setup, response = alignment.psi_server_answer(mine, payload[f"psi_rev_request/{p}"])
        reply[f"psi_rev_setup/{p}"], reply[f"psi_rev_response/{p}"] = setup, response
        reply.update(_schedule(data, state, p, anchors, plan))
    reply["width"] = int(std.n_features_out_)
    reply["train_rows"] = len(data.y_train)
    return reply, halves


def _schedule(data: HolderData, state: State, party: str, anchors: pd.DataFrame, plan: Plan) -> Payload:
    anchor_of = anchors.set_index("entity_id")["anchor"]
    rows_anchor = anchor_of.reindex(np.r_[data.entity_train, data.entity_test]).to_numpy()
    matched = ~np.isnan(rows_anchor)
    pos = np.full(len(rows_anchor), -1, dtype=np.int64)
    pos[matched] = np.arange(int(matched.sum()))
    state[f"pos/{party}"] = pos
    n_train = len(data.entity_train)
    dp: Payload = {}
    if plan.bottom_dp:  # the parties' accountants need the holder's Poisson rate (a count-derived number)
        dp[f"dp_q/{party}"] = _dp_sample_rate(data, plan)
    return {
        **dp,
        f"schedule_anchor/{party}": rows_anchor[matched].astype(np.int64),
        f"schedule_ts/{party}": np.r_[data.ts_train, data.ts_test][matched].astype(np.int64),
        f"schedule_train/{party}": int(matched[:n_train].sum()),
        f"unmatched_train/{party}": bool((~matched[:n_train]).any()),
        f"matched/{party}": len(anchors),
    }


# ------------------------------------------------------------------------------------------------
# Model state
# ------------------------------------------------------------------------------------------------
def _label_side(state: State, plan: Plan) -> LabelSide:
    width = len(state["std/mean"]) + len(state["std/missing"])
    model = LabelSide(width, len(plan.parties), embedding_dim=plan.embedding_dim, hidden=plan.hidden)
    load_module(model, state, "model/")
    return model


def _optimizer(model: nn.Module, state: State, plan: Plan) -> torch.optim.Optimizer:
    opt = make_optimizer(model, _train_config(plan))
    load_adam(opt, state, "adam/")
    return opt


def _train_config(plan: Plan) -> TrainConfig:
    return TrainConfig(
        epochs=1,
        batch_size=plan.batch_size,
        learning_rate=plan.learning_rate,
        seed=plan.seed,
        optimizer="adam",
        class_weight="balanced",
    )


def init(state: State, payload: Payload) -> None:
    """Load the initial own-bottom and top weights the coordinator drew from the run's seed."""
    state.update({k: np.asarray(v) for k, v in payload.items() if k.startswith("model/")})
    reset_optimizer(state)


def weights(state: State) -> Payload:
    """The holder's model arrays (own bottom + top) for FedAvg among holders (hybrid)."""
    return {k: v for k, v in state.items() if k.startswith("model/")}


def set_weights(state: State, payload: Payload) -> Payload:
    for k, v in payload.items():
        if k.startswith("model/"):
            if k not in state or state[k].shape != np.shape(v):
                raise ValueError(
                    f"payload[{k}]: shape {np.shape(v)}; allowed: {state[k].shape if k in state else 'none'}"
                )
            state[k] = np.asarray(v)
    return {}


def reset_optimizer(state: State) -> None:
    for k in [k for k in state if k.startswith("adam/")]:
        del state[k]


# ------------------------------------------------------------------------------------------------
# Training and scoring, one batch per message
# ------------------------------------------------------------------------------------------------
def begin(data: HolderData, state: State, payload: Payload, plan: Plan) -> Payload:
    """Start a pass: ``phase="train"`` (one epoch, shuffled as fit does) or ``"score"`` (test rows)."""
    phase = str(payload["phase"])
    if phase == "train":
        if payload.get("reset_optimizer"):
            reset_optimizer(state)
        order, bounds = _epoch_batches(data, state, plan)
    elif phase == "score":
        n = len(data.entity_test)
        order = np.arange(n, dtype=np.int64)
        bounds = np.r_[np.arange(0, n, plan.score_chunk), n].astype(np.int64)
    else:
        raise ValueError(f"phase: {phase!r}; allowed: 'train' or 'score'")
    state["order"], state["bounds"] = order, bounds
    state["cursor"] = np.asarray(0)
    state["phase"] = np.asarray(0 if phase == "train" else 1)
    state["loss_sum"], state["loss_rows"] = np.asarray(0.0), np.asarray(0)
    return _next_rows(data, state, plan)


def _dp_sample_rate(data: HolderData, plan: Plan) -> float:
    return split_dp.sample_rate(len(np.unique(data.entity_train)), plan.batch_size)


def _dp_batches(data: HolderData, state: State, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Bottom-model DP: Poisson sampling of the holder's training entities (rate q, int(1/q) steps per
    epoch), each entity with its rows capped at ``max_rows_per_entity`` (:func:`fedsim.privacy.cap_rows_per_entity`)."""
    from fedsim.privacy import cap_rows_per_entity

    settings = plan.privacy()
    keep = np.flatnonzero(
        cap_rows_per_entity(data.entity_train, data.y_train, cap=settings.max_rows_per_entity, seed=plan.seed)
    )
    codes, inverse = np.unique(data.entity_train[keep], return_inverse=True)
    q = split_dp.sample_rate(len(codes), plan.batch_size)
    epoch = int(state.get("epoch", 0))
    picked = split_dp.poisson_batches(len(codes), q=q, steps=split_dp.steps_per_epoch(q), seed=plan.seed + 7919 * epoch)
    order = [keep[np.isin(inverse, units)] for units in picked]
    state["epoch"] = np.asarray(epoch + 1)
    state["dp_expected_rows"] = np.asarray(q * len(keep))
    sizes = np.array([len(b) for b in order], dtype=np.int64)
    return np.concatenate(order).astype(np.int64), np.r_[0, np.cumsum(sizes)].astype(np.int64)


def _epoch_batches(data: HolderData, state: State, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """This epoch's batches, drawn exactly as :func:`fedsim.training.fit` draws them (its loader's
    dataset, :class:`~fedsim.training.ShuffledBatches` with the run's seed, one permutation per epoch);
    the rows are identified by an index column in place of the features. With DP on the bottom
    models: Poisson batches of entities instead (:func:`_dp_batches`)."""
    n = len(data.y_train)
    loader = make_loader(
        np.arange(n, dtype=np.float32)[:, None],
        data.y_train.astype(np.float32),
        batch_size=plan.batch_size,
        seed=plan.seed,
        sample_weight=data.w_train,
    )
    dataset = cast(TensorDataset, loader.dataset)  # make_loader always builds a TensorDataset
    if "w_norm" not in state:
        _, y, w = dataset.tensors
        state["w_norm"] = w.numpy().copy()
        state["pos_weight"] = np.asarray(balanced_pos_weight(y, w))
    if plan.bottom_dp:
        return _dp_batches(data, state, plan)
    batches = ShuffledBatches(dataset, batch_size=plan.batch_size, seed=plan.seed)
    epoch = int(state.get("epoch", 0))
    for _ in range(epoch):  # replay the permutations of the epochs already trained (cheap: no model)
        for _ in batches:
            pass
    order = [xb[:, 0].long().numpy() for xb, _, _ in batches]
    state["epoch"] = np.asarray(epoch + 1)
    sizes = np.array([len(b) for b in order], dtype=np.int64)
    return np.concatenate(order), np.r_[0, np.cumsum(sizes)].astype(np.int64)


def _current(state: State) -> np.ndarray:
    c = int(state["cursor"])
    return state["order"][state["bounds"][c] : state["bounds"][c + 1]]


def _next_rows(data: HolderData, state: State, plan: Plan) -> Payload:
    if int(state["cursor"]) >= len(state["bounds"]) - 1:
        return {"done": True}
    rows = _current(state)
    offset = 0 if int(state["phase"]) == 0 else len(data.entity_train)
    out: Payload = {"done": False}
    for p in plan.parties:
        pos = state[f"pos/{p}"][rows + offset]
        out[f"rows/{p}"] = pos[pos >= 0]
    return out


def _party_embeddings(
    state: State, payload: Payload, plan: Plan, rows: np.ndarray, offset: int, *, train: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per party: the received (m+1, d) block (a leaf when training) and the (B, d) rows it gives."""
    leaves, per_row = [], []
    for p in plan.parties:
        block = torch.as_tensor(np.asarray(payload[f"emb/{p}"], dtype=np.float32)).requires_grad_(train)
        pos = state[f"pos/{p}"][rows + offset]
        matched = pos >= 0
        if block.shape[0] != int(matched.sum()) + 1:
            raise ValueError(
                f"payload[emb/{p}]: {block.shape[0]} rows; allowed: {int(matched.sum()) + 1} "
                "(one per matched row of the batch plus the all-missing row)"
            )
        idx = np.full(len(rows), int(matched.sum()), dtype=np.int64)
        idx[matched] = np.arange(int(matched.sum()))
        leaves.append(block)
        per_row.append(block[torch.from_numpy(idx)])
    return leaves, per_row


def step(data: HolderData, state: State, payload: Payload, plan: Plan) -> tuple[Payload, pd.DataFrame | None]:
    """Process the current batch with the parties' embeddings, then announce the next batch's rows.

    Training: loss, backward, Adam step; the reply carries ``grad/<party>`` (same shape as the
    embeddings received). Scoring: the reply carries no gradient; the scores of the chunk are
    returned separately for the holder's local output.
    """
    rows = _current(state)
    model = _label_side(state, plan)
    std = load_standardizer(state, "std/")
    train = int(state["phase"]) == 0
    x = data.x_train[rows] if train else data.x_test[rows]
    xb = torch.from_numpy(std.transform(x))
    offset = 0 if train else len(data.entity_train)
    scores = None
    reply: Payload = {}
    if train:
        leaves, per_row = _party_embeddings(state, payload, plan, rows, offset, train=True)
        _train_step(data, state, plan, model, xb, per_row, rows)
        # under bottom-model DP each party clips per entity: send ∂(Σ wᵢ ℓᵢ)/∂E, free of the batch's size
        scale = float(state["dp_expected_rows"]) if plan.bottom_dp else 1.0
        reply.update({f"grad/{p}": _grad(leaf) * scale for p, leaf in zip(plan.parties, leaves, strict=True)})
    else:
        model.eval()
        with torch.no_grad():
            _, per_row = _party_embeddings(state, payload, plan, rows, offset, train=False)
            logits = model.top(torch.cat([model.own(xb), *per_row], dim=1))
            scores = pd.DataFrame(
                {
                    "entity_id": data.entity_test[rows],
                    "decision_ts": data.ts_test[rows],
                    "window": data.window_test[rows],
                    "score": torch.sigmoid(logits).numpy().astype(float),
                }
            )
    state["cursor"] = np.asarray(int(state["cursor"]) + 1)
    reply.update(_next_rows(data, state, plan))
    if train and reply["done"]:
        reply.update(epoch_loss(state))
    return reply, scores


def _grad(leaf: torch.Tensor) -> np.ndarray:
    """∂loss/∂E of one party's embedding block (set by the backward pass of the training step)."""
    if leaf.grad is None:
        raise RuntimeError("no gradient on a party's embeddings after the backward pass")
    return leaf.grad.numpy()


def _train_step(
    data: HolderData,
    state: State,
    plan: Plan,
    model: LabelSide,
    xb: torch.Tensor,
    per_row: list[torch.Tensor],
    rows: np.ndarray,
) -> None:
    """One optimiser step; the loss is fit()'s: Σ wᵢ·BCE(pos_weight)ᵢ / B over the batch (with DP on the
    bottom models, B is the expected batch size, as DP-SGD divides, so no row's weight depends on the
    others')."""
    opt = _optimizer(model, state, plan)
    yb = torch.from_numpy(data.y_train[rows].astype(np.float32))
    wb = torch.from_numpy(state["w_norm"][rows])
    criterion = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.tensor(float(state["pos_weight"])))
    opt.zero_grad(set_to_none=True)
    logits = model.top(torch.cat([model.own(xb), *per_row], dim=1)).reshape(-1)
    total = (criterion(logits, yb) * wb).sum()
    loss = total / (float(state["dp_expected_rows"]) if plan.bottom_dp else max(len(rows), 1))
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {float(loss)} at {data.name}; lower the learning rate")
    loss.backward()
    opt.step()
    state.update(module_arrays(model, "model/"))
    state.update(adam_arrays(opt, "adam/"))
    state["loss_sum"] = np.asarray(float(state["loss_sum"]) + float(total.detach()))
    state["loss_rows"] = np.asarray(int(state["loss_rows"]) + len(rows))


def epoch_loss(state: State) -> Payload:
    """Weighted training loss over the epoch just finished (as fit's ``epoch_losses``) and its rows."""
    rows = int(state.get("loss_rows", 0))
    return {"loss": float(state["loss_sum"]) / rows if rows else float("nan"), "rows": rows}
