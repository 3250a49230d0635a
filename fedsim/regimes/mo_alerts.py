"""Modus-operandi alerts: partners warn each other of a fraud pattern "without names" (issue 11).

The programme's own sharing design (the annual report in ../shared/reference/, modelled on the NCTV's
cyber-threat sharing): a partner that has seen reported cases of a fraud type describes them without any
identifier, and the others look for that pattern among their own customers.

**What is released.** Each coalition partner groups the cases reported to it before the end of the training
window (its own reports, :func:`fedsim.data.known_cases`) by fraud type and by the role its traced entity
played (victim, mule, fraudster). For each group with at least ``min_count`` distinct cases it releases

* the group's *feature profile*: per feature of its own kind (its model columns, watchlist flags excluded) the
  mean and standard deviation over the traced entities' decision rows inside the cases' windows — only a
  partner of the same kind can evaluate it (a bank cannot compute a telco feature);
* a kind-independent description: fraud type, role, the number of cases and the hour-of-day shares of those
  rows (24 numbers), which any partner can compare with its own rows' hours.

No identifier, no per-entity row, and nothing of a group below ``min_count`` leaves the partner. Privacy rests
on aggregation alone (no noise, ε does not apply): the leakage register says so with the minimum count.

**How a partner uses what it receives.** Another coalition partner turns each received description into one
feature of its own rows: for a same-kind profile, the Gaussian naive-Bayes log-likelihood ratio of the row
under the profile against its own training population, averaged over features (Hand & Yu, "Idiot's Bayes —
not so stupid after all?", International Statistical Review 69(3), 2001); for the hour shares, the
log-ratio of the profile's share of the row's hour to its own population's share. The features join its own
model, trained on its own reports as in the silo: the partner calibrates each alert against its own outcomes
(as it does a watchlist flag), so an alert that does not match its fraud gets little weight instead of
overriding its model. A partner that receives nothing runs exactly its silo model, so with nothing released
the regime's scores equal status quo's for its coalition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from fedsim.data import DAY, REPORT_CHANNELS, case_windows, known_cases
from fedsim.regimes.base import LeakageRow, Regime, RegimeResult, RunContext, fit_and_score
from fedsim.regimes.fitting import fit_scorer
from fedsim.rows import entity_days, silo, unit_frame
from fedsim.settings import FederationSettings

MIN_COUNT = 10
"""Default minimum number of distinct reported cases before a group's description is released."""
HOURS = 24
SD_FLOOR = 0.1
"""A profile's spread is floored at this share of the receiver's population spread (a profile over a few
cases can be near-constant in a feature; an unfloored Gaussian would then veto every other value)."""
CLIP = 10.0  # per-feature log-ratio clip: one extreme feature must not decide the similarity alone


class MoAlertsSettings(BaseModel):
    """The regime's settings, ``regime_settings: {mo_alerts: {min_count: 20}}`` in an experiment file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_count: int = Field(
        default=MIN_COUNT,
        ge=1,
        le=1_000_000,
        strict=True,
        description="Fewest distinct reported cases of a (fraud type, role) group before its description is "
        f"released; the privacy of the alerts rests on it. Integer >= 1. Default {MIN_COUNT}.",
    )


@dataclass(frozen=True)
class Description:
    """One released MO description: identifier-free aggregates of ≥ ``min_count`` reported cases."""

    source: str  # the releasing partner (its name travels with the alert, as a sender does)
    block: str  # feature kind of the profile
    fraud_type: str
    role: str
    cases: int
    mean: Mapping[str, float]
    sd: Mapping[str, float]
    hour_share: tuple[float, ...]  # 24 shares of the rows' hour of day

    @property
    def key(self) -> str:
        return f"{self.fraud_type}_{self.role}"

    def text(self) -> str:
        peak = int(np.argmax(self.hour_share))
        what = f"{self.cases} cases, {len(self.mean)} {self.block} features"
        return f"{self.fraud_type}/{self.role}: {what}, peak hour {peak}h"


def positive_groups(ctx: RunContext, partner: str, idx: pd.DataFrame) -> pd.DataFrame:
    """For the training rows ``idx`` (partner, entity_id, decision_ts, y): the (case, fraud type, role) of each
    positive row, from the partner's own reported cases (the label tracing of :mod:`fedsim.data`)."""
    cases = known_cases(ctx.truth, ctx.kinds, label_sources=(partner,), before_ts=ctx.split.train_end)
    ce = ctx.truth["case_entities"]
    ce = ce[(ce["partner"] == partner) & ce["case_id"].isin(cases)]
    win = case_windows(ctx.truth["cases"], ctx.truth["money_outs"]).set_index("case_id").loc[ce["case_id"]]
    start = np.where(ce["role"].to_numpy() == "victim", win["victim_start"].to_numpy(), win["other_start"].to_numpy())
    spans = pd.DataFrame(
        {
            "entity_id": ce["entity_id"].to_numpy().astype(np.int64),
            "case_id": ce["case_id"].to_numpy(),
            "role": ce["role"].to_numpy(),
            "fraud_type": win["fraud_type"].to_numpy(),
            "start": start,
            "end": win["end"].to_numpy(),
        }
    )
    pos = idx[idx["y"] == 1].assign(row=lambda d: d.index, entity_id=lambda d: d["entity_id"].astype(np.int64))
    hit = pos.merge(spans, on="entity_id")
    hit = hit[(hit["decision_ts"] >= hit["start"]) & (hit["decision_ts"] <= hit["end"])]
    return hit.sort_values(["row", "case_id"]).drop_duplicates("row")[["row", "case_id", "fraud_type", "role"]]


def _hours(ts: np.ndarray) -> np.ndarray:
    return ((np.asarray(ts, dtype=np.int64) % DAY) // 3600).astype(int)


def _hour_share(ts: np.ndarray) -> np.ndarray:
    return np.bincount(_hours(ts), minlength=HOURS)[:HOURS] / max(len(ts), 1)


def profile_columns(X: pd.DataFrame) -> list[str]:
    """The model columns a profile describes: the partner's own features, not its watchlist flags."""
    return [c for c in X.columns if not c.startswith("wl_")]


def release(ctx: RunContext, partner: str, min_count: int) -> list[Description]:
    """The descriptions ``partner`` releases: one per (fraud type, role) group of ≥ ``min_count`` reported cases."""
    X, idx = _train_frame(ctx, partner)
    groups = positive_groups(ctx, partner, idx)
    cols = profile_columns(X)
    out = []
    for (fraud_type, role), g in groups.groupby(["fraud_type", "role"], sort=True):
        n_cases = g["case_id"].nunique()
        if n_cases < min_count:
            continue  # below the minimum count nothing of the group leaves the partner
        rows = X.loc[g["row"].to_numpy(), cols]
        out.append(
            Description(
                source=partner,
                block=ctx.features[partner].block,
                fraud_type=str(fraud_type),
                role=str(role),
                cases=int(n_cases),
                mean={c: float(v) for c, v in rows.mean().items() if np.isfinite(v)},
                sd={c: float(v) for c, v in rows.std(ddof=0).items() if np.isfinite(v)},
                hour_share=tuple(float(v) for v in _hour_share(idx.loc[g["row"].to_numpy(), "decision_ts"].to_numpy())),
            )
        )
    return out


def _train_frame(ctx: RunContext, partner: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return unit_frame(
        ctx, silo(partner), (ctx.split.train_start, ctx.split.train_end), labels_before=ctx.split.train_end, train=True
    )


@dataclass(frozen=True)
class Population:
    """The receiver's own training population: weighted mean and spread per column, hour-of-day shares."""

    mean: pd.Series
    sd: pd.Series
    hour_share: np.ndarray

    @staticmethod
    def of(X: pd.DataFrame, ts: np.ndarray, weight: np.ndarray) -> Population:
        w = pd.Series(weight, index=X.index)
        ok = X.notna()
        wsum = ok.mul(w, axis=0).sum()
        mean = X.fillna(0).mul(w, axis=0).sum() / wsum.replace(0, np.nan)
        var = ((X - mean) ** 2).fillna(0).mul(w, axis=0).sum() / wsum.replace(0, np.nan)
        hours = np.bincount(_hours(ts), weights=weight, minlength=HOURS)[:HOURS]
        return Population(mean, np.sqrt(var), hours / max(hours.sum(), 1e-12))


def profile_llr(X: pd.DataFrame, d: Description, pop: Population) -> np.ndarray:
    """Mean per-feature Gaussian log-likelihood ratio, profile vs the receiver's population (module docstring)."""
    cols = [c for c in d.mean if c in X and np.isfinite(pop.sd.get(c, np.nan)) and pop.sd[c] > 0]
    if not cols:
        return np.zeros(len(X))
    x = X[cols].to_numpy(float)
    mu0, sd0 = pop.mean[cols].to_numpy(float), pop.sd[cols].to_numpy(float)
    mu1 = np.array([d.mean[c] for c in cols])
    sd1 = np.maximum(np.array([d.sd.get(c, 0.0) for c in cols]), SD_FLOOR * sd0)
    llr = (np.log(sd0 / sd1) - 0.5 * ((x - mu1) / sd1) ** 2 + 0.5 * ((x - mu0) / sd0) ** 2).clip(-CLIP, CLIP)
    n = np.isfinite(llr).sum(axis=1)
    return np.where(n > 0, np.nansum(llr, axis=1) / np.maximum(n, 1), 0.0)


def hour_llr(ts: np.ndarray, d: Description, pop: Population) -> np.ndarray:
    """log(profile share / population share) of each row's hour of day (add-one smoothed over 24 hours)."""
    h = _hours(ts)
    prof = (np.array(d.hour_share) * d.cases + 1) / (d.cases + HOURS)
    base = pop.hour_share + 1.0 / HOURS / 100
    return np.asarray(np.log(prof[h] / base[h]))


def alert_features(
    X: pd.DataFrame, ts: np.ndarray, received: list[Description], block: str, pop: Population
) -> pd.DataFrame:
    """One column per received (fraud type, role) alert: the best match over senders (max of their ratios)."""
    cols: dict[str, np.ndarray] = {}
    for d in received:
        name = f"mo_{d.key}" if d.block == block else f"mo_hour_{d.key}"
        value = profile_llr(X, d, pop) if d.block == block else hour_llr(ts, d, pop)
        cols[name] = np.maximum(cols[name], value) if name in cols else value
    return pd.DataFrame(cols, index=X.index)


def receivable(ctx: RunContext, partner: str, released: list[Description]) -> list[Description]:
    """What ``partner`` can use: other partners' same-kind profiles, and other kinds' hour shares for fraud
    types that run through its own kind (:data:`fedsim.data.REPORT_CHANNELS`)."""
    block, channels = ctx.features[partner].block, REPORT_CHANNELS[ctx.kinds[partner]]
    return [d for d in released if d.source != partner and (d.block == block or d.fraud_type in channels)]


class MoAlerts(Regime):
    """Identifier-free modus-operandi descriptions above a minimum count (module docstring)."""

    name = "mo_alerts"
    settings_model = MoAlertsSettings
    leakage = (
        LeakageRow(
            "each partner",
            "per fraud type and role of another partner's reported cases: the number of cases, the mean and spread "
            "of each of that partner's features over those cases' rows (only partners of the same kind can "
            "evaluate them) and the rows' hour-of-day shares",
            f"aggregation only: released per group of ≥ the minimum count of cases (default {MIN_COUNT}, "
            "regime_settings.mo_alerts.min_count; the run logs mo_min_count), no identifiers, no per-entity rows; "
            "no noise, ε does not apply (a mean over few cases can still reveal an outlier's values)",
        ),
        LeakageRow(
            "alert hub operator",
            "every released description and which partner released it, when",
            f"aggregation over ≥ the minimum count of cases (default {MIN_COUNT})",
        ),
    )

    def __init__(self, min_count: int = MIN_COUNT) -> None:
        """``min_count``: used when the run context carries no settings (a context built by hand); a grid cell
        always carries the experiment's (``regime_settings.mo_alerts``, default :data:`MIN_COUNT`)."""
        if min_count < 1:
            raise ValueError(f"min_count = {min_count}: allowed: an integer ≥ 1")
        self.min_count = min_count

    def min_count_of(self, ctx: RunContext) -> int:
        """The run's minimum count: the cell's settings, else this instance's."""
        if ctx.regime_settings is None:
            return self.min_count
        return ctx.settings(MoAlertsSettings).min_count

    def admits(
        self, coalition: tuple[str, ...], kinds: Mapping[str, str], federation: FederationSettings | None = None
    ) -> str | None:
        if len(coalition) < 2:
            return (
                f"regime = 'mo_alerts' on coalition {'+'.join(coalition)}: alerts go from one partner to others; "
                "allowed: coalitions of 2 or more partners (one partner alone is `siloed`)"
            )
        return None

    def score(self, ctx: RunContext) -> RegimeResult:
        min_count = self.min_count_of(ctx)
        released = [d for p in ctx.coalition for d in release(ctx, p, min_count)]
        params: dict[str, object] = {
            "sharing": "identifier-free MO descriptions (per fraud type and role: case count, feature means and "
            f"spreads, hour-of-day shares) of groups of ≥ {min_count} reported cases; no identifiers",
            "mo_min_count": min_count,
        }
        metrics: dict[str, float] = {}
        scores, seconds = [], []
        for p in ctx.coalition:
            mine = [d for d in released if d.source == p]
            params[f"mo_released.{p}"] = "; ".join(d.text() for d in mine) or "nothing (no group reached the count)"
            got = receivable(ctx, p, released)
            metrics[f"mo_released.{p}"] = float(len(mine))
            metrics[f"mo_received.{p}"] = float(len(got))
            test, second, info = _score_partner(ctx, p, got)
            scores.append(test)
            if second is not None:
                seconds.append(second)
            metrics.update({f"{k}.{p}": v for k, v in info.items()})
        return RegimeResult(
            scores=pd.concat(scores, ignore_index=True),
            params=params,
            metrics=metrics,
            second_scores=pd.concat(seconds, ignore_index=True) if seconds else None,
        )


def _score_partner(
    ctx: RunContext, partner: str, received: list[Description]
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, float]]:
    """The partner's own model with one feature per received alert; with no alert, exactly its silo model."""
    if not received:
        out = fit_and_score(ctx, silo(partner))
        return out.scores, out.second_scores, out.metrics
    X, idx = _train_frame(ctx, partner)
    y = idx["y"].to_numpy()
    weight = np.where(y == 1, 1.0, 1.0 / ctx.training.negative_rate)
    ts = idx["decision_ts"].to_numpy()
    block = ctx.features[partner].block
    pop = Population.of(X[profile_columns(X)], ts, weight)
    X = pd.concat([X, alert_features(X, ts, received, block, pop)], axis=1)
    fitted = fit_scorer(ctx, X, y, weight, groups=idx[["partner", "entity_id"]].to_numpy(), times=ts)
    scored = []
    for window in [(ctx.split.test_start, ctx.split.test_end)] + (
        [ctx.split.second_test] if ctx.split.second_test else []
    ):
        Xt, it = unit_frame(ctx, silo(partner), window, labels_before=ctx.split.train_end, train=False)
        Xt = pd.concat([Xt, alert_features(Xt, it["decision_ts"].to_numpy(), received, block, pop)], axis=1)
        it["score"] = fitted.scorer(Xt.reindex(columns=X.columns))
        scored.append(entity_days(it))
    info = {"train_rows": float(len(y)), "train_positives": float(y.sum()), **fitted.metrics}
    return scored[0], scored[1] if len(scored) > 1 else None, info
