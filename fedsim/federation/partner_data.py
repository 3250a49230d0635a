"""What one partner of a federation holds: its own training rows and test rows, built from its own data only.

A federated client builds its rows with exactly the code of the siloed regime
(:func:`fedsim.rows.unit_frame` on the partner's silo unit: its own features, its own reports
as labels and as watchlist), so the federated and siloed regimes differ only in how the model is
trained. Two places can build them:

* **simulation engine** — the driver process builds each partner's :class:`PartnerData` from a
  :class:`RunContext` restricted to that partner (:func:`partner_only`) and saves it in a per-partner
  directory; the partner's ClientApp reads only its own directory.
* **deployment engine** — each SuperNode gets a *partner export* made by :func:`export_partner_world` on the
  evaluator's side: that partner's own tables and the fraud reports it received (:func:`received_reports`:
  which of its entities a report traced, when the report arrived, the span its rows count as fraud), read with
  :func:`read_partner_export`; the ClientApp builds its rows there. No seed, no generator config, no truth, no
  key salt, nothing of another partner; 0600 files in 0700 folders. Only a world generated with a secret
  (:class:`synthetic.ids.WorldSecret`) is exported: the seed and config of any other world rebuild it all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedsim.data import Split, case_windows, known_cases
from fedsim.errors import FedsimError
from fedsim.features import PartnerFeatures
from fedsim.rows import RunContext, TrainingSettings, silo, unit_frame
from synthetic.config import WorldConfig
from synthetic.schema import SCHEMA_VERSION, TABLES_BY_KIND
from synthetic.world import MANIFEST, SECRET_ENV, SECRET_FIELD, PartnerView, World, read_manifest

TRUTH_FOR_LABELS = ("cases", "money_outs", "case_entities")
"""Truth tables the evaluator's label tracing reads (fedsim.data.known_cases / row_labels)."""

_Y, _W, _ENTITY, _TS = "_fedsim_y", "_fedsim_weight", "_fedsim_entity_id", "_fedsim_decision_ts"


@dataclass
class PartnerData:
    """One partner's rows for one run.

    columns: feature names (d). X: training features ``(n, d)`` float64, NaN = missing (raw, unscaled).
    y: 0/1 labels ``(n,)``. weight: ``(n,)`` inverse negative-subsampling weights (1 for positives,
    1 / negative_rate for kept negatives). entity: ``(n,)`` the partner's entity id of each training
    row (the unit of privacy under DP-SGD; never leaves the partner). tests: window name → frame with
    ``entity_id``, ``decision_ts`` and the feature columns (rows of the test windows, unlabelled).
    """

    partner: str
    columns: list[str]
    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    entity: np.ndarray
    tests: dict[str, pd.DataFrame]

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    def save(self, directory: Path) -> Path:
        """Write as Parquet + a small JSON header into ``directory`` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        train = pd.DataFrame(self.X, columns=self.columns).assign(**{_Y: self.y, _W: self.weight, _ENTITY: self.entity})
        train.to_parquet(directory / "train.parquet", index=False)
        for name, frame in self.tests.items():
            frame.rename(columns={"entity_id": _ENTITY, "decision_ts": _TS}).to_parquet(
                directory / f"{name}.parquet", index=False
            )
        header = {"partner": self.partner, "columns": self.columns, "tests": list(self.tests)}
        (directory / "partner_data.json").write_text(json.dumps(header))
        return directory

    @classmethod
    def load(cls, directory: Path) -> PartnerData:
        header = json.loads((directory / "partner_data.json").read_text())
        train = pd.read_parquet(directory / "train.parquet")
        tests = {
            name: pd.read_parquet(directory / f"{name}.parquet").rename(
                columns={_ENTITY: "entity_id", _TS: "decision_ts"}
            )
            for name in header["tests"]
        }
        cols = header["columns"]
        return cls(
            partner=header["partner"],
            columns=cols,
            X=train[cols].to_numpy(np.float64),
            y=train[_Y].to_numpy(np.int8),
            weight=train[_W].to_numpy(np.float64),
            entity=train[_ENTITY].to_numpy(np.int64),
            tests=tests,
        )


def scoring_windows(split: Split) -> dict[str, tuple[int, int]]:
    """Window name → [start, end) seconds of every window a partner scores."""
    out = {"test": (split.test_start, split.test_end)}
    if split.second_test:
        out["second_test"] = split.second_test
    return out


def build_partner_data(ctx: RunContext, partner: str) -> PartnerData:
    """The partner's training rows (subsampled, labelled from its own reports) and test rows.

    Same recipe as the siloed regime (:func:`fedsim.rows.silo` through :func:`fedsim.rows.unit_frame`).
    """
    unit = silo(partner)
    X, idx = unit_frame(
        ctx, unit, (ctx.split.train_start, ctx.split.train_end), labels_before=ctx.split.train_end, train=True
    )
    y = idx["y"].to_numpy().astype(np.int8)
    weight = np.where(y == 1, 1.0, 1.0 / ctx.training.negative_rate)
    tests = {}
    for name, window in scoring_windows(ctx.split).items():
        Xt, it = unit_frame(ctx, unit, window, labels_before=ctx.split.train_end, train=False)
        frame = Xt.reindex(columns=X.columns).astype(np.float64)
        tests[name] = pd.concat([it[["entity_id", "decision_ts"]], frame], axis=1)
    return PartnerData(
        partner=partner,
        columns=[str(c) for c in X.columns],
        X=X.to_numpy(np.float64),
        y=y,
        weight=weight,
        entity=idx["entity_id"].to_numpy(np.int64),
        tests=tests,
    )


# --------------------------------------------------------------------------------------------------
# One partner's view of the world
# --------------------------------------------------------------------------------------------------
def partner_truth(truth: dict[str, pd.DataFrame], partner: str) -> dict[str, pd.DataFrame]:
    """The truth rows label tracing needs for ``partner``: its case_entities and those cases' rows."""
    ce = truth["case_entities"]
    ce = ce[ce["partner"] == partner].reset_index(drop=True)
    ids = ce["case_id"].unique()
    return {
        "case_entities": ce,
        "cases": truth["cases"][truth["cases"]["case_id"].isin(ids)].reset_index(drop=True),
        "money_outs": truth["money_outs"][truth["money_outs"]["case_id"].isin(ids)].reset_index(drop=True),
    }


def partner_only(ctx: RunContext, partner: str) -> RunContext:
    """``ctx`` narrowed to what ``partner`` holds: its features and its own truth rows."""
    if partner not in ctx.features:
        raise FedsimError(f"partner = {partner!r}: not in this world; allowed: {', '.join(ctx.features)}")
    return replace(
        ctx, coalition=(partner,), features={partner: ctx.features[partner]}, truth=partner_truth(ctx.truth, partner)
    )


# --------------------------------------------------------------------------------------------------
# Deployment exports: the partner's tables and the reports it received, nothing else
# --------------------------------------------------------------------------------------------------
RECEIVED = "received_reports.parquet"
"""The export's file of what the partner learned from the fraud reports it received (:func:`received_reports`)."""

RECEIVED_COLUMNS = ["report_id", "entity_id", "report_ts", "fraud_type", "label_from", "label_until"]

_NEVER = np.iinfo(np.int64).max


def received_reports(truth: dict[str, pd.DataFrame], partner: str, kind: str) -> pd.DataFrame:
    """What ``partner`` knows from the fraud reports it received, computed on the evaluator's side from the truth.

    The label rule of :mod:`fedsim.data` for the partner alone (the siloed recipe, ``label_sources = (partner,)``):
    a report reaches the partner when the victim is its customer and the fraud type has a channel to its kind
    (:data:`fedsim.data.REPORT_CHANNELS`); the partner then traces its own entities of that case. One row per
    (report, traced entity): a local ``report_id`` (the reports' order of arrival, not the world's case id), the
    entity, when the report arrived, its fraud type, and the span in which that entity's rows count as fraud
    (:func:`fedsim.data.case_windows`: the victim from contact, mules and fraudsters from preparation, until the
    last cash-out). Every report over the world's whole time span is listed; the training recipe keeps those that
    arrived before the end of its training window. No crew, loss, victim person or phase beyond this span.
    """
    mine = known_cases(truth, {partner: kind}, label_sources=(partner,), before_ts=_NEVER)
    ce = truth["case_entities"]
    ce = ce[(ce["partner"] == partner) & ce["case_id"].isin(mine)]
    cases = truth["cases"].set_index("case_id")
    win = case_windows(truth["cases"], truth["money_outs"]).set_index("case_id").loc[ce["case_id"]]
    victim = ce["role"].to_numpy() == "victim"
    frame = pd.DataFrame(
        {
            "case_id": ce["case_id"].to_numpy(np.int64),
            "entity_id": ce["entity_id"].to_numpy(np.int64),
            "report_ts": cases.loc[ce["case_id"], "report_ts"].to_numpy(np.int64),
            "fraud_type": cases.loc[ce["case_id"], "fraud_type"].to_numpy(object),
            "label_from": np.where(victim, win["victim_start"].to_numpy(), win["other_start"].to_numpy()),
            "label_until": win["end"].to_numpy(np.int64),
        }
    ).sort_values(["report_ts", "case_id", "entity_id"], kind="stable")
    # The world's case ids are shared by every partner: replace them by the partner's own numbering of reports.
    frame["report_id"] = pd.factorize(frame["case_id"])[0].astype(np.int64)
    return frame[RECEIVED_COLUMNS].reset_index(drop=True)


def label_truth(received: pd.DataFrame, partner: str) -> dict[str, pd.DataFrame]:
    """The received reports in the shape the label code reads (:func:`fedsim.data.known_cases`, ``row_labels``).

    One stand-in case per traced row, the entity as its victim, its span as [contact, cash-out]: the labels and
    the report-time cut-off then come out of the same code as for the in-process siloed recipe, row for row.
    """
    n = len(received)
    case_id = np.arange(n, dtype=np.int64)
    cases = pd.DataFrame(
        {
            "case_id": case_id,
            "fraud_type": received["fraud_type"].to_numpy(object),
            "reported": np.ones(n, dtype=bool),
            "report_ts": received["report_ts"].to_numpy(np.int64),
            "ts_contact": received["label_from"].to_numpy(np.int64),
            "ts_preparation": received["label_from"].to_numpy(np.int64),
            "ts_cash_out": received["label_until"].to_numpy(np.int64),
        }
    )
    entities = pd.DataFrame(
        {
            "case_id": case_id,
            "partner": partner,
            "entity_id": received["entity_id"].to_numpy(np.int64),
            "role": "victim",
        }
    )
    money_outs = pd.DataFrame({"case_id": pd.Series(dtype=np.int64), "cashout_ts": pd.Series(dtype=np.int64)})
    return {"cases": cases, "case_entities": entities, "money_outs": money_outs}


def export_partner_world(world: World, truth: dict[str, pd.DataFrame], partner: str, dest: Path) -> Path:
    """Write ``dest``: what ``partner`` would hold — its own tables and the reports it received — and nothing else.

    Refused for a world generated without a secret: its seed and public config rebuild every partner's tables.
    No seed, generator config, truth, salt or other partner's data is written; files are 0600, folders 0700.
    The manifest names the partner, its kind, the schema and the source world (by content hash and secret
    fingerprint); it lists no tables, so :func:`read_partner_export` reads it.
    """
    if not world.manifest.get(SECRET_FIELD):
        raise FedsimError(
            "export-partner: the world was generated without a secret, so its seed and config (public) rebuild "
            "every partner's data; generate it with a secret - `fedsim world generate --secret-file FILE`, the "
            f"experiment field world.secret_file, or {SECRET_ENV}=FILE (e.g. `openssl rand -hex 32 > FILE`)"
        )
    if partner not in world.partners:
        raise FedsimError(f"partner = {partner!r}: not in this world; allowed: {', '.join(world.partners)}")
    view = world.partners[partner]
    if dest.exists() and any(dest.iterdir()):
        raise FedsimError(f"export-partner: {dest} is not empty; give a new folder")
    _private_dir(dest)
    own = _private_dir(dest / "partners" / partner)
    for name, table in view.tables.items():
        pq.write_table(table, _private_file(own / f"{name}.parquet"))
    received = pa.Table.from_pandas(received_reports(truth, partner, view.kind), preserve_index=False)
    pq.write_table(received, _private_file(dest / RECEIVED))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "partners": {partner: view.kind},
        "partner_export_of": world.content_hash,
        SECRET_FIELD: world.manifest[SECRET_FIELD],
    }
    _private_file(dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return dest


def _private_dir(path: Path) -> Path:
    """``path`` and every folder made on the way to it: 0700 (only the owner may list or enter them)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for folder in (path, *missing):  # mkdir's mode is masked by the umask: set it explicitly
        folder.chmod(0o700)
    return path


def _private_file(path: Path) -> Path:
    """Create ``path`` empty at 0600 before anything is written to it: the data is never readable by others."""
    _private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    path.chmod(0o600)  # the umask can only remove bits; set exactly 0600
    return path


def read_partner_export(partner_dir: Path, partner: str) -> tuple[World, pd.DataFrame]:
    """A partner export (:func:`export_partner_world`): the partner's view as a :class:`World` and its received reports.

    The export carries no generator config and no seed: the returned world has the default config and seed -1
    as placeholders (nothing on the partner's side reads them) and no truth.
    """
    manifest = read_manifest(partner_dir)
    partners = manifest.get("partners")
    if not isinstance(partners, dict) or partner not in partners:
        have = ", ".join(partners) if isinstance(partners, dict) else "none"
        raise FedsimError(
            f"node-config partner = {partner!r}: directory {partner_dir} holds {have}; "
            "allowed: the partner the directory was made for"
        )
    if "partner_export_of" not in manifest or not (partner_dir / RECEIVED).is_file():
        raise FedsimError(
            f"{partner_dir}: not a partner export (no {RECEIVED}); make one with "
            "`python -m fedsim.federation.deployment export-partner`"
        )
    kind = str(partners[partner])
    folder = partner_dir / "partners" / partner
    tables = {
        t: pq.read_table(folder / f"{t}.parquet") for t in TABLES_BY_KIND[kind] if (folder / f"{t}.parquet").exists()
    }
    view = PartnerView(name=partner, kind=kind, tables=tables)
    world = World(config=WorldConfig(), seed=-1, partners={partner: view}, truth={}, manifest=manifest)
    return world, pd.read_parquet(partner_dir / RECEIVED)


def load_partner_context(
    partner_dir: Path, partner: str, *, split: Split, training: TrainingSettings, seed: int, model: str
) -> RunContext:
    """A :class:`RunContext` for ``partner`` from its export: its own tables, labels from the reports it received."""
    world, received = read_partner_export(partner_dir, partner)
    return RunContext(
        world=world,
        coalition=(partner,),
        model=model,
        seed=seed,
        split=split,
        training=training,
        features={partner: PartnerFeatures.for_view(world.partners[partner])},
        truth=label_truth(received, partner),
    )
