"""Horizontal FL: partners of one kind (several banks, several marketplaces) train one model together.

Model updates leave a partner (optionally under SecAgg+), and a few aggregates that the leakage register
(:attr:`Horizontal.leakage`) lists one by one with who sees them and what bounds them; the Flower apps,
engines and the federated standardisation live in :mod:`fedsim.federation.horizontal`. Each partner builds its rows
exactly as in the siloed regime (its own features, its own reports as labels and watchlist), so
"horizontal vs. siloed" isolates the effect of training one model together, and "horizontal vs.
pooled" (pooled restricted to the same partners) the cost of federating instead of pooling.

Coalitions are grouped by partner kind (the feature block: bank, telco, marketplace; in a
known-answer world the name without its number, so ``bank_1 … bank_B`` form one group). Every group
of two or more partners is one federation. Members without a same-kind peer in the coalition (e.g.
the telco of bank_1 + bank_2 + telco) are **run siloed** next to it — the honest status quo for a
partner that has nobody of its kind to federate with — and named in the ``siloed_members`` param.
A coalition without any same-kind pair is refused (:meth:`Horizontal.admits`; a grid skips such cells).

Decisions recorded with every run: standardisation is *federated* (one global mean/scale from the
partners' column moments, equal to the pooled standardiser) and so is the class balance (global
Σw₋/Σw₊); engine, rounds, strategy, μ, local epochs and SecAgg+ are params (``fl_*``); the weighted
train loss per round is the step metric ``train_loss.<kind>`` (and ``train_loss.<partner>`` per
partner; not under SecAgg+, where only the securely summed mean exists); a partner that fails a round is
left out of it and named in ``fl_dropouts``. Under DP each partner's full ledger (ε, δ, σ, q, steps, …) is
logged as ``dp_<field>.<partner>`` — also under SecAgg+, where it comes from the partner's own output
folder, not from the anonymous replies — so ε can be recomputed; no train loss leaves a partner under DP.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fedsim.privacy import run_params
from fedsim.regimes.base import TORCH_MODELS, LeakageRow, Regime, RegimeResult, RunContext, run_units
from fedsim.rows import silo
from fedsim.settings import FederationSettings
from fedsim.training import FLAT_TOLERANCE, FLAT_WINDOW, loss_flattened

logger = logging.getLogger("fedsim.regimes")

if TYPE_CHECKING:  # annotations only: importing the federation layer loads Flower, so score() imports it late
    from fedsim.federation.horizontal import HorizontalOutcome, HorizontalSettings


def kind_groups(ctx: RunContext, partners: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """Feature block (partner kind) → coalition members of that kind, in coalition order."""
    groups: dict[str, list[str]] = {}
    for p in partners if partners is not None else ctx.coalition:
        groups.setdefault(ctx.features[p].block, []).append(p)
    return groups


class Horizontal(Regime):
    name = "horizontal"
    federated = True
    models = TORCH_MODELS
    # Everything data-dependent that leaves a bank, who sees it, and what bounds it (issue 10). SecAgg:
    # Bonawitz et al. 2017, "Practical secure aggregation for privacy-preserving machine learning" (CCS);
    # SecAgg+: Bell et al. 2020, "Secure single-server aggregation with (poly)logarithmic overhead" (CCS) —
    # the server learns the sum of the surviving partners' inputs and nothing else, against an honest-but-
    # curious server and fewer colluding partners than the reconstruction threshold (here 2/3 of them).
    leakage = (
        LeakageRow(
            "server (aggregator), without SecAgg+",
            "each bank's model update every round; gradients can reveal rows",
            "DP-SGD per bank (ε per bank, entity level); SecAgg+ hides single updates",
        ),
        LeakageRow(
            "server (aggregator), without SecAgg+",
            "each bank's exact training row count (num-examples, its FedAvg weight) every round; without DP "
            "also its exact train loss per round (under DP the loss never leaves the bank)",
            "not covered by ε: one entity moves the count by its number of rows; the loss is unbounded in one "
            "entity's rows (BCE), which is why it is withheld under DP",
        ),
        LeakageRow(
            "server (aggregator), without SecAgg+, under DP",
            "each bank's DP ledger after every round: ε, δ, σ, q, steps, C, entity count, rows kept and "
            "dropped by the row cap",
            "not covered by ε: the entity count (and q = 1/⌈entities/batch⌉, δ = 1/(10·entities)) changes by 1 "
            "per entity; σ, C, steps are settings",
        ),
        LeakageRow(
            "server (aggregator), with SecAgg+",
            "only the sum of the banks' count-weighted updates and their count-weighted mean train loss (0 under "
            "DP) per round, unmasked together; each bank's num-examples in the clear is the constant 1",
            "SecAgg+ (Bell et al. 2020): no single bank's update, count or loss; the aggregate loss is outside ε; "
            "with 2 banks each bank can subtract its own update from the global model",
        ),
        LeakageRow(
            "server (aggregator), before round 1, in the clear (also under SecAgg+ and DP)",
            "per bank: training row count, per-column count of observed values, mean and sum of squared "
            "deviations (M2), and the summed weights of its positive and of its negative rows",
            "not covered by ε nor SecAgg+: one entity moves the counts by its rows and Σw± by their weights; "
            "the mean and M2 move without bound for unbounded features (no public bound is assumed)",
        ),
        LeakageRow(
            "every bank (and the server)",
            "the global standardiser (per-column mean, scale, missing-value columns) and the class balance "
            "pos_weight = Σw₋ / Σw₊ over all banks, in every train message",
            "not covered by ε: removing one entity moves pos_weight by up to 12.5% on the small world (so its "
            "gradients' sensitivity is a little above C), and the mean/scale as above",
        ),
        LeakageRow("other banks", "the global model after each round", "DP-SGD per bank"),
        LeakageRow(
            "evaluator (the run)",
            "each bank's entity-day scores on its own test rows and, under DP, its DP ledger (written in the "
            "bank's own output folder, never sent to the server under SecAgg+)",
            "scores: DP-trained model (post-processing); the ledger as in the server row above",
        ),
    )

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        """Two or more partners of one kind: each such group is one federation (the rest run siloed)."""
        blocks = [kinds[p] for p in coalition]
        if any(blocks.count(b) >= 2 for b in set(blocks)):
            return None
        described = ", ".join(f"{p} ({kinds[p]})" for p in coalition)
        return (
            f"regime horizontal, coalition = {'+'.join(coalition)}: horizontal FL needs at least two partners "
            f"of one kind; kinds here: {described}"
        )

    def score(self, ctx: RunContext) -> RegimeResult:
        from fedsim.federation.horizontal import HorizontalSettings, run_horizontal

        groups = kind_groups(ctx)
        federated = {block: members for block, members in groups.items() if len(members) >= 2}
        alone = [m for members in groups.values() if len(members) < 2 for m in members]
        settings = HorizontalSettings.from_context(ctx)
        engine = ctx.federation.engine
        scores, seconds, metrics, steps = [], [], {}, {}
        dropouts: list[str] = []
        for block, members in federated.items():
            run = run_horizontal(
                ctx,
                members,
                settings,
                engine=engine,
                capture_dir=ctx.hooks.capture_dir,
                faults=ctx.hooks.faults,
            )
            scores.append(run.scores)
            if run.second_scores is not None:
                seconds.append(run.second_scores)
            out_metrics, out_steps = outcome_metrics(block, run.outcome)
            metrics.update(out_metrics)
            steps.update(out_steps)
            metrics[f"fl_seconds.{block}"] = run.seconds
            metrics[f"fl_prepare_seconds.{block}"] = run.prepare_seconds
            dropouts += dropout_words(run.outcome)
            if settings.privacy is not None:
                register_partner_models(ctx, members, run.outcome, accountant=settings.privacy.accountant)
        params = federation_params(settings, engine, federated, alone, dropouts)
        if alone:
            siloed = run_units(ctx, [silo(p) for p in alone], {})
            scores.append(siloed.scores)
            if siloed.second_scores is not None:
                seconds.append(siloed.second_scores)
            metrics.update(siloed.metrics)
        return RegimeResult(
            scores=pd.concat(scores, ignore_index=True),
            params=params,
            metrics=metrics,
            second_scores=pd.concat(seconds, ignore_index=True) if seconds else None,
            step_metrics=steps,
        )


def outcome_metrics(block: str, out: HorizontalOutcome) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Metrics and per-round curves of one federation from its ServerApp outcome (wherever its rounds ran).

    Not the wall times, which only the machine that ran the rounds can measure. Warns when the train loss
    had not flattened (:func:`fedsim.training.loss_flattened`)."""
    withheld = not out.loss_released  # under DP the banks keep their losses
    steps = {} if withheld else {f"train_loss.{block}": list(out.round_loss)}
    for partner, losses in out.partner_loss.items():
        if any(not math.isnan(v) for v in losses):  # SecAgg+ hides per-partner losses
            steps[f"train_loss.{partner}"] = list(losses)
    metrics = {f"train_rows.{p}": float(n) for p, n in out.n_examples.items()}
    metrics[f"fl_rounds_seconds.{block}"] = out.rounds_seconds
    if not withheld:
        metrics[f"fl_final_train_loss.{block}"] = _last_finite(out.round_loss)
    flat = loss_flattened(out.round_loss)
    if flat is not None:
        metrics[f"converged.{block}"] = float(flat)
    if withheld:
        logger.info("%s: no train loss under DP (the partners keep it; it is outside ε), no convergence check", block)
    elif not flat:
        logger.warning(
            "the federated train loss of %s %s after %d rounds; results may understate what federated "
            "learning can do - raise federation.rounds",
            block,
            "was still falling" if flat is False else "cannot be judged converged (too few rounds)",
            len(out.round_loss),
        )
    metrics[f"fl_partners_dropped.{block}"] = float(len(out.dropouts))
    for partner, ledger in out.dp.items():  # each partner's ε, δ, σ, … after its last round
        metrics.update({f"{k}.{partner}": v for k, v in ledger.items()})
    return metrics, steps


def register_partner_models(ctx: RunContext, members: list[str], out: HorizontalOutcome, *, accountant: str) -> None:
    """Each bank's DP-SGD run as one model of the per-person accounting (:mod:`fedsim.person_privacy`).

    Every round a bank releases a DP-trained update of its own rows; the global model is post-processing of
    those updates, so a person is exposed once per bank at which one of their entities trained, with that
    bank's (σ, q, steps) and δ: one stretch, since σ and q are fixed for a bank's whole schedule. The
    examples are the bank's training entities (one example per entity; no other partner's features are
    joined in horizontal FL), rebuilt here with the very function each partner used.
    """
    from fedsim.federation.partner_data import build_partner_data, partner_only
    from fedsim.person_privacy import ModelExposure, home_examples, register_exposure

    for partner in members:
        ledger = out.dp.get(partner)
        if not ledger:  # failed before its first round: it released nothing
            continue
        entities = np.unique(build_partner_data(partner_only(ctx, partner), partner).entity)
        history = ((ledger["dp_sigma"], ledger["dp_sample_rate"], int(ledger["dp_steps"])),)
        examples = home_examples(np.column_stack([np.full(len(entities), partner, dtype=object), entities]))
        register_exposure(
            ModelExposure(
                f"horizontal.{partner}", history, ledger["dp_delta"], ledger["dp_epsilon"], accountant, examples
            )
        )


def dropout_words(out: HorizontalOutcome) -> list[str]:
    """``partner@rounds r1,r2`` for every partner that failed a round."""
    return [f"{p}@rounds {','.join(map(str, r))}" for p, r in sorted(out.dropouts.items())]


def federation_params(
    settings: HorizontalSettings, engine: str, federated: dict[str, list[str]], alone: list[str], dropouts: list[str]
) -> dict[str, Any]:
    """Every param a horizontal run logs: the federation, its convergence check and its privacy."""
    params = {**_params(settings, engine, federated, alone, dropouts), **run_params(settings.privacy)}
    params["fl_convergence_check"] = (
        f"mean train loss of the last {FLAT_WINDOW} rounds within {FLAT_TOLERANCE:.0%} of the {FLAT_WINDOW} before "
        f"(needs ≥ {2 * FLAT_WINDOW} rounds)"
    )
    if settings.privacy is not None:
        params["dp_not_covered"] = (
            "column moments, row counts and class-weight sums sent before training; the global standardiser and "
            "pos_weight; per-round row counts and ledgers (without SecAgg+) - see the leakage register"
        )
    return params


def _params(
    settings: Any, engine: str, federated: dict[str, list[str]], alone: list[str], dropouts: list[str]
) -> dict[str, Any]:
    from fedsim.federation.engine import engine_address_param

    return {
        "sharing": "model updates only (horizontal FL)",
        "fl_engine": engine,
        **engine_address_param(engine),
        "fl_rounds": settings.rounds,
        "fl_strategy": settings.strategy,
        # μ only where it acts: under fedavg the spec's federation.proximal_mu is unused, and logging a 0 beside it
        # contradicted it (issue 13)
        **({"fl_proximal_mu": settings.mu} if settings.strategy == "fedprox" else {}),
        "fl_local_epochs": settings.local_epochs,
        "fl_secure_aggregation": "secagg+" if settings.secure_aggregation else "none",
        "fl_standardisation": "federated (pooled column moments, Chan et al. 1979)",
        "fl_class_balance": "federated (global Σw- / Σw+)",
        "fl_groups": "; ".join(f"{b}: {'+'.join(m)}" for b, m in federated.items()),
        "siloed_members": "+".join(alone) if alone else "none",
        "fl_dropouts": "; ".join(dropouts) if dropouts else "none",
    }


def _last_finite(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return finite[-1] if finite else math.nan
