"""Gather the effectiveness report's numbers from an experiment's tracked runs into a :class:`ReportModel`.

Read only: the tracking store (finished runs, their metrics and artifacts, through :class:`fedsim.tracking.Tracker`)
and the experiment's world (cached under ``workdir``, regenerated from its config and seed if absent). Every
number comes from the machinery the CLI prints it with — `fedsim compare` (paired contrasts), `fedsim value`
(the coalition game), `fedsim runs` (seed means with cases × seeds CIs, per-person ε) — so the report and the
commands never disagree. The parts:

* the coalition game (:mod:`fedsim.report.gather_value`), only for a coalition lattice;
* page one (:mod:`fedsim.report.gather_page_one`): the primary contrast A − B on the full chain at the headline
  (model, ε) (:func:`fedsim.report.gather_store.headline_cell`), with the grid's problems;
* one section per fraud type and ``all`` (:mod:`fedsim.report.gather_sections`);
* methods, limitations, parameters and the grid's problems (:mod:`fedsim.report.gather_runs`);
* the leakage register (the regime registry's rows for the experiment's regimes); the audit table from the files
  `fedsim audit` attached to the experiment's summary run (:mod:`fedsim.report.gather_audit`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from fedsim.report.gather_audit import audit_table
from fedsim.report.gather_page_one import page_one
from fedsim.report.gather_runs import grid_cells, limitations, methods, parameters, run_problems, stored_runs
from fedsim.report.gather_sections import section
from fedsim.report.gather_store import CONTRAST_METRICS, SHARING, Store, headline_cell, open_store, world_hash
from fedsim.report.gather_value import game_entries
from fedsim.report.model import ReportModel

logger = logging.getLogger("fedsim.report")
REGISTER_COLUMNS = ["regime", "party", "what_leaves", "protected_by", "residual_risk"]


def gather_report(experiment: Path, *, tracking_uri: str | None, workdir: Path) -> ReportModel:
    """The whole report of ``experiment`` (its file) as data, from the store at ``tracking_uri``.

    Raises :class:`fedsim.errors.FedsimError` when the experiment has no finished run, or no finished run of the
    primary contrast's two regimes with a common (model, ε, seed)."""
    from fedsim.errors import FedsimError
    from fedsim.experiment import load_experiment

    spec = load_experiment(experiment)
    with tempfile.TemporaryDirectory(prefix="fedsim-report-") as tmp:
        store = open_store(spec, tracking_uri, Path(workdir), Path(tmp))
        a, b = spec.primary.contrast if spec.primary else ("pooled", "status_quo")
        cell = headline_cell(spec, store.runs, a, b, store.scale)
        primary = store.contrast(a, b, cell)
        if primary.empty:
            raise FedsimError(f"report: no finished {a!r} and {b!r} runs with the same model, ε and seed")
        problems = run_problems(*grid_cells(spec, world_hash(store)), stored_runs(store.tracker, spec.name), store.runs)
        contrasts = _sharing_contrasts(store, cell)
        metric = _contrast_metric(spec)
        values = game_entries(store, cell)
        game = a if any(e["regime"] == a for e in values) else None
        sections = [
            section(store, t, metric, cell, contrasts, [e for e in values if e["fraud_type"] == t], game)
            for t in _fraud_types(primary)
        ]
        return ReportModel(
            experiment=spec.name,
            page_one=page_one(store, primary, *cell, problems),
            sections=sections,
            audit=audit_table(store.tracker),
            leakage_register=_register(set(store.runs["regime"]), dp=_has_dp(store)),
            methods=methods(spec, store.runs, store.tracker.tracking_uri),
            limitations=limitations(spec),
            parameters=parameters(spec, store.runs),
        )


def _fraud_types(contrast: pd.DataFrame) -> list[str]:
    """``all`` first, then every fraud type the contrast has rows for."""
    types = sorted(set(contrast["fraud_type"]) - {"all"})
    return ["all", *types]


def _contrast_metric(spec: Any) -> str:
    """The sections' metric: the primary's when the contrast carries it, else ED(0)."""
    metric = spec.primary.metric if spec.primary else "ed_h0"
    return metric if metric in CONTRAST_METRICS else "ed_h0"


def _sharing_contrasts(store: Store, cell: tuple[str, str]) -> dict[str, pd.DataFrame]:
    """Each sharing regime run on the full chain − status quo, at the headline (model, ε)."""
    out = {}
    for regime in [r for r in SHARING if r in set(store.runs["regime"])]:
        table = store.contrast(regime, "status_quo", cell)
        if not table.empty:
            out[regime] = table
    return out


def _has_dp(store: Store) -> bool:
    return bool((pd.to_numeric(store.runs["epsilon"], errors="coerce") < float("inf")).any())


def _register(regimes: set[str], *, dp: bool) -> pd.DataFrame:
    """The leakage register's rows of the experiment's regimes (and what DP does not cover, when it ran DP):
    what leaves a partner (``what_leaves``: what the party learns), what limits it (``protected_by``) and the
    risk the register states as left (``residual_risk``: the DP row's, else empty)."""
    from fedsim.evaluation.privacy_audit import DP_ROW, leakage_register

    table = leakage_register()
    keep = table["regime"].isin(regimes) | ((table["regime"] == DP_ROW[0]) & dp)
    rows = table[keep]
    is_dp = rows["regime"] == DP_ROW[0]
    return pd.DataFrame(
        {
            "regime": rows["regime"],
            "party": rows["party"],
            "what_leaves": rows["learns"],
            "protected_by": rows["limited_by"].where(~is_dp, "record-level DP-SGD (ε per person)"),
            "residual_risk": rows["limited_by"].where(is_dp, ""),
        }
    ).reset_index(drop=True)[REGISTER_COLUMNS]
