"""A feature party's side of split learning (plain torch, no Flower): bottom models answering with
embeddings and applying the gradient slices they get back.

A party (telco, marketplace, …) serves one federation per label holder. For each holder ``b`` it
keeps, in its own state: the schedule it was told (its entity and the decision time of every
matched row), a standardiser fitted on the schedule's training rows, a bottom model and its Adam
moments. It computes its features itself, as of each decision time, from its own tables
(:meth:`fedsim.features.PartnerFeatures.context`); only embeddings leave.

Gradients arrive one message late (with the next batch's row request): the party first replays the
forward pass of the previous batch — same weights, same rows, so the same graph — back-propagates
the received ``∂loss/∂E`` and steps, then embeds the next batch. That order is exactly sequential
SGD, so it costs one round trip per step instead of two.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from fedsim import alignment
from fedsim.federation.aggregate import weighted_average
from fedsim.federation.vertical import split_dp
from fedsim.federation.vertical.data import (
    PartyData,
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
from fedsim.models import BottomModel, Standardizer
from fedsim.training import TrainConfig, make_optimizer


# ------------------------------------------------------------------------------------------------
# Alignment (PSI server, then PSI client of the reverse run) and schedule
# ------------------------------------------------------------------------------------------------
def psi_answer(data: PartyData, state: State, payload: Payload) -> Payload:
    """Forward PSI step 2 for each holder, and step 1 of the reverse PSI (this party as client)."""
    reply: Payload = {}
    for b in names(payload["holders"]):
        mine = alignment.unique_elements(
            alignment.key_elements(data.keys, alignment.key_columns_shared_with(data.keys, names(payload[f"keys/{b}"])))
        )
        setup, response = alignment.psi_server_answer(mine, payload[f"psi_request/{b}"])
        rev = alignment.psi_client_request(mine)
        state[f"psi_key/{b}"] = np.frombuffer(rev.key, dtype=np.uint8).copy()
        reply.update({f"psi_setup/{b}": setup, f"psi_response/{b}": response, f"psi_rev_request/{b}": rev.request})
    return reply


def schedule(data: PartyData, state: State, payload: Payload, plan: Plan) -> tuple[Payload, dict[str, pd.DataFrame]]:
    """Reverse PSI step 3, then turn each holder's schedule (anchor, time) into own entities and fit
    the standardiser on the training part. Returns the reply (input width per holder) and, per holder,
    this party's half of the alignment (anchor → entity) for its local output."""
    reply: Payload = {}
    halves = {}
    for b in names(payload["holders"]):
        elements = alignment.key_elements(
            data.keys, alignment.key_columns_shared_with(data.keys, names(payload[f"keys/{b}"]))
        )
        mine = alignment.unique_elements(elements)
        found = alignment.psi_client_intersection(
            bytes(state.pop(f"psi_key/{b}")), payload[f"psi_rev_setup/{b}"], payload[f"psi_rev_response/{b}"]
        )
        owners = alignment.party_owners(elements, [mine[i] for i in np.asarray(found)])
        anchor = np.asarray(payload[f"schedule_anchor/{b}"], dtype=np.int64)
        entity = owners[anchor] if len(anchor) else np.zeros(0, np.int64)
        ts = np.asarray(payload[f"schedule_ts/{b}"], dtype=np.int64)
        n_train = int(payload[f"schedule_train/{b}"])
        x_train = _features(data, entity[:n_train], ts[:n_train])
        std = fit_standardizer(x_train, add_missing_row=bool(payload[f"unmatched_train/{b}"]) or plan.always_indicators)
        state.update(standardizer_arrays(std, f"std/{b}/"))
        state[f"entity/{b}"], state[f"ts/{b}"] = entity, ts
        state[f"train_n/{b}"] = np.asarray(n_train)
        reply[f"width/{b}"] = int(std.n_features_out_)
        halves[b] = pd.DataFrame({"anchor": np.arange(len(owners)), "entity_id": owners})
    if plan.bottom_dp:
        _plan_dp(state, payload, plan)
    return reply, halves


# ------------------------------------------------------------------------------------------------
# DP-SGD on the bottom models: the plan and the ledger
# ------------------------------------------------------------------------------------------------
def _plan_dp(state: State, payload: Payload, plan: Plan) -> None:
    """Fix δ and σ for the whole run, over every holder's federation of this party.

    Per holder ``b`` (Poisson rate ``q_b`` over its entities): a party entity linked to ``k`` of the
    holder's entities (distinct anchors in the training schedule) is in a batch with probability
    ``1 − (1 − q_b)^k``; the largest such rate is accounted. The party's entities may sit in every
    holder's federation (hybrid), so σ is chosen for the composition of all of them:
    ``Σ_b rounds × epochs × int(1/q_b)`` steps at the largest rate. δ = 1/(10·N), N the party's
    distinct entities in the training schedules (:func:`fedsim.privacy.default_delta`)."""
    from fedsim.privacy import default_delta, noise_for_target

    settings = plan.privacy()
    entities = []
    planned, rates = 0, []
    for b in plan.holders:
        n = int(state[f"train_n/{b}"])
        entity = state[f"entity/{b}"][:n]
        anchor = np.asarray(payload[f"schedule_anchor/{b}"], dtype=np.int64)[:n]
        links = pd.DataFrame({"e": entity, "a": anchor}).drop_duplicates().groupby("e").size().to_numpy()
        q = float(payload[f"dp_q/{b}"])
        q_eff = 1.0 - (1.0 - q) ** int(links.max()) if len(links) else q
        state[f"dp/q/{b}"] = np.asarray(q_eff)
        state[f"dp/max_links/{b}"] = np.asarray(int(links.max()) if len(links) else 0)
        state[f"dp/expected/{b}"] = np.asarray(float((1.0 - (1.0 - q) ** links).sum()))
        state[f"dp/steps/{b}"] = np.asarray(0)
        planned += plan.rounds * plan.local_epochs * split_dp.steps_per_epoch(q)
        rates.append(q_eff)
        entities.append(entity)
    n_entities = max(len(np.unique(np.concatenate(entities))) if entities else 0, 1)
    delta = settings.delta if settings.delta is not None else default_delta(n_entities)
    if settings.target_epsilon is not None:
        sigma = noise_for_target(
            target_epsilon=settings.target_epsilon,
            delta=delta,
            sample_rate=max(rates),
            steps=planned,
            accountant=settings.accountant,
        )
    else:
        sigma = float(settings.noise_multiplier)
    state["dp/sigma"], state["dp/delta"] = np.asarray(sigma), np.asarray(delta)
    state["dp/entities"] = np.asarray(n_entities)


def dp_ledger(state: State, plan: Plan) -> dict[str, Any]:
    """The party's DP ledger so far: ε composed over every holder's steps (Opacus accountant on the
    history [(σ, q_b, steps_b)]), with everything needed to recompute it."""
    from fedsim.privacy import epsilon_spent

    settings = plan.privacy()
    sigma, delta = float(state["dp/sigma"]), float(state["dp/delta"])
    history = [(sigma, float(state[f"dp/q/{b}"]), int(state[f"dp/steps/{b}"])) for b in plan.holders]
    history = [h for h in history if h[2] > 0]
    out: dict[str, Any] = {
        "epsilon": epsilon_spent(history, delta=delta, accountant=settings.accountant),
        "delta": delta,
        "sigma": sigma,
        "max_grad_norm": settings.max_grad_norm,
        "steps": float(sum(h[2] for h in history)),
        "examples": float(state["dp/entities"]),
        "target_epsilon": math.nan if settings.target_epsilon is None else float(settings.target_epsilon),
        "clipped_share": float(state.get("dp/clipped", 0)) / max(float(state.get("dp/groups", 0)), 1.0),
        "accountant": settings.accountant,
        "history": [list(h) for h in history],
    }
    for b in plan.holders:
        out[f"sample_rate.{b}"] = float(state[f"dp/q/{b}"])
        out[f"steps.{b}"] = float(state[f"dp/steps/{b}"])
        out[f"max_links.{b}"] = float(state[f"dp/max_links/{b}"])
    return out


def _features(data: PartyData, entity: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """This party's window features of its entities strictly before each decision time (n, d) float."""
    return data.features.context(np.asarray(entity, np.int64), np.asarray(ts, np.int64)).to_numpy(dtype=float)


# ------------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------------
def _bottom(state: State, holder: str, plan: Plan) -> BottomModel:
    std = load_standardizer(state, f"std/{holder}/")
    model = BottomModel(len(std.mean_) + len(std.missing_columns_), plan.embedding_dim)
    load_module(model, state, f"model/{holder}/")
    return model


def _inputs(data: PartyData, state: State, holder: str, rows: np.ndarray) -> torch.Tensor:
    """Standardised inputs of the batch's rows plus one all-missing row at the end: (m + 1, width)."""
    std: Standardizer = load_standardizer(state, f"std/{holder}/")
    x = _features(data, state[f"entity/{holder}"][rows], state[f"ts/{holder}"][rows])
    x = np.vstack([x, np.full((1, len(std.mean_)), np.nan)])
    return torch.from_numpy(std.transform(x))


def init(state: State, payload: Payload) -> None:
    """Load the initial bottom weights for each holder (drawn by the coordinator from the run's seed)."""
    for k, v in payload.items():
        if k.startswith("model/"):
            state[k] = np.asarray(v)
    reset_optimizers(state)


def reset_optimizers(state: State) -> None:
    for k in [k for k in state if k.startswith("adam/")]:
        del state[k]


def _optimizer(model: BottomModel, state: State, holder: str, plan: Plan) -> torch.optim.Optimizer:
    opt = make_optimizer(
        model,
        TrainConfig(
            epochs=1,
            batch_size=plan.batch_size,
            learning_rate=plan.learning_rate,
            seed=plan.seed,
            optimizer="adam",
        ),
    )
    load_adam(opt, state, f"adam/{holder}/")
    return opt


# ------------------------------------------------------------------------------------------------
# One exchange: apply last batch's gradient, embed this batch
# ------------------------------------------------------------------------------------------------
def step(data: PartyData, state: State, payload: Payload, plan: Plan) -> Payload:
    """For each holder in the payload: apply ``grad/<holder>`` (if any) to the previous training batch;
    restart the optimisers if ``reset_optimizer``; then answer ``rows/<holder>`` (if any) with
    ``emb/<holder>`` of shape (m + 1, embedding_dim). ``train`` (bool) says whether the rows are a
    training batch (remembered until its gradient arrives)."""
    reply: Payload = {}
    train = bool(payload.get("train", False))
    for b in plan.holders:
        if f"grad/{b}" in payload:
            _apply_gradient(data, state, b, np.asarray(payload[f"grad/{b}"], dtype=np.float32), plan)
    if payload.get("reset_optimizer"):
        reset_optimizers(state)
    for b in plan.holders:
        if f"rows/{b}" in payload:
            rows = np.asarray(payload[f"rows/{b}"], dtype=np.int64)
            model = _bottom(state, b, plan)
            with torch.no_grad():
                reply[f"emb/{b}"] = model(_inputs(data, state, b, rows)).numpy()
            if train:
                state[f"pending/{b}"] = rows
    return reply


def _apply_gradient(data: PartyData, state: State, holder: str, grad: np.ndarray, plan: Plan) -> None:
    if f"pending/{holder}" not in state:
        raise ValueError(
            f"grad/{holder}: no training batch awaiting a gradient; allowed: a gradient only "
            "after a training embedding request"
        )
    rows = state.pop(f"pending/{holder}")
    model = _bottom(state, holder, plan)
    opt = _optimizer(model, state, holder, plan)
    opt.zero_grad(set_to_none=True)
    x = _inputs(data, state, holder, rows)
    out = model(x)
    if out.shape != grad.shape:
        raise ValueError(f"grad/{holder}: shape {grad.shape}; allowed: {tuple(out.shape)} (the embeddings sent)")
    if plan.bottom_dp:
        _private_gradient(model, state, holder, plan, x, torch.from_numpy(grad), rows)
    else:
        out.backward(torch.from_numpy(grad))
    opt.step()
    state.update(module_arrays(model, f"model/{holder}/"))
    state.update(adam_arrays(opt, f"adam/{holder}/"))


def _private_gradient(
    model: BottomModel, state: State, holder: str, plan: Plan, x: torch.Tensor, grad: torch.Tensor, rows: np.ndarray
) -> None:
    """Set ``.grad`` of the bottom model to the DP-SGD gradient (:func:`~.split_dp.clipped_noisy_gradient`):
    rows grouped by this party's entity. The all-missing row's gradient (summed over the unmatched rows)
    is left out: removing an entity of this party turns its rows into unmatched ones, so that sum would
    move by an unclipped amount and break the sensitivity C. Noise is seeded per (run, holder, step)."""
    settings = plan.privacy()
    step_no = int(state[f"dp/steps/{holder}"])
    groups = np.asarray(state[f"entity/{holder}"][rows])
    x, grad = x[: len(rows)], grad[: len(rows)]
    seed = int(np.random.SeedSequence([plan.seed, plan.holders.index(holder), step_no, 0xD9]).generate_state(1)[0])
    grads, clipped = split_dp.clipped_noisy_gradient(
        model,
        x,
        grad,
        groups,
        max_grad_norm=settings.max_grad_norm,
        noise_multiplier=float(state["dp/sigma"]),
        expected_groups=float(state[f"dp/expected/{holder}"]),
        generator=torch.Generator().manual_seed(seed),
    )
    for name, p in model.named_parameters():
        p.grad = grads[name].to(p.dtype)
    state[f"dp/steps/{holder}"] = np.asarray(step_no + 1)
    state["dp/clipped"] = np.asarray(int(state.get("dp/clipped", 0)) + clipped)
    state["dp/groups"] = np.asarray(int(state.get("dp/groups", 0)) + len(np.unique(groups)))


def average(state: State, payload: Payload, plan: Plan) -> Payload:
    """Hybrid: replace every holder's bottom model by their FedAvg mean (weights ``weight/<holder>``).

    FedAvg (McMahan et al. 2017, AISTATS, Algorithm 1): Σ_b n_b θ_b / Σ_b n_b, with n_b the holder's
    training rows (:func:`fedsim.federation.aggregate.weighted_average`). The party holds every copy, so it
    averages locally; nothing is sent."""
    holders = [b for b in plan.holders if f"weight/{b}" in payload]
    if not holders:
        raise ValueError("weights: none; allowed: positive row counts per holder (weight/<holder>)")
    keys = [k.removeprefix(f"model/{holders[0]}/") for k in state if k.startswith(f"model/{holders[0]}/")]
    copies = [[state[f"model/{b}/{k}"] for k in keys] for b in holders]
    mean = weighted_average(copies, [float(payload[f"weight/{b}"]) for b in holders])
    for b in holders:
        state.update({f"model/{b}/{k}": v.copy() for k, v in zip(keys, mean, strict=True)})
    return {}
