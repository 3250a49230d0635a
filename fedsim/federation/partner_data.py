"""What one partner of a federation holds: its own training rows and test rows, built from its own data only.

A federated client builds its rows with exactly the code of the siloed regime
(:func:`fedsim.rows.unit_frame` on the partner's silo unit: its own features, its own reports
as labels and as watchlist), so the federated and siloed regimes differ only in how the model is
trained. Two places can build them:

* **simulation engine** — the driver process builds each partner's :class:`PartnerData` from a
  :class:`RunContext` restricted to that partner (:func:`partner_only`) and saves it in a per-partner
  directory; the partner's ClientApp reads only its own directory.
* **deployment engine** — each SuperNode gets a *partner directory* made by
  :func:`export_partner_world`: a world directory with only that partner's tables plus the truth rows
  label tracing needs for that partner (see below), read with
  ``synthetic.world.read_world(path, partners=[name], truth=False)``; the ClientApp builds its rows there.

Truth a partner reads (label tracing, see :mod:`fedsim.data`): ``case_entities`` rows of its own
entities, and the ``cases`` and ``money_outs`` rows of those cases (report time, case window). It never
sees another partner's tables or another partner's case rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedsim.data import Split
from fedsim.errors import FedsimError
from fedsim.features import PartnerFeatures
from fedsim.rows import RunContext, TrainingSettings, silo, unit_frame
from synthetic.schema import SCHEMA_VERSION
from synthetic.world import MANIFEST, World, read_manifest, read_world, to_pandas

TRUTH_FOR_LABELS = ("cases", "money_outs", "case_entities")
"""Truth tables label tracing reads (fedsim.data.known_cases / row_labels)."""

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


def export_partner_world(world: World, truth: dict[str, pd.DataFrame], partner: str, dest: Path) -> Path:
    """Write a world directory holding only ``partner``'s tables and its own truth rows.

    The manifest lists that partner only (so ``read_world`` cannot be asked for another one) and keeps
    the source world's seed, config and content hash for provenance.
    """
    if partner not in world.partners:
        raise FedsimError(f"partner = {partner!r}: not in this world; allowed: {', '.join(world.partners)}")
    view = world.partners[partner]
    (dest / "partners" / partner).mkdir(parents=True, exist_ok=True)
    (dest / "truth").mkdir(parents=True, exist_ok=True)
    for name, table in view.tables.items():
        pq.write_table(table, dest / "partners" / partner / f"{name}.parquet")
    for name, frame in partner_truth(truth, partner).items():
        schema = world.truth[name].schema if name in world.truth else None
        pq.write_table(
            pa.Table.from_pandas(frame, schema=schema, preserve_index=False), dest / "truth" / f"{name}.parquet"
        )
    manifest = {k: v for k, v in world.manifest.items() if k not in ("tables", "partners")}
    manifest.update(
        schema_version=SCHEMA_VERSION,
        seed=world.seed,
        config=world.config.model_dump(mode="json"),
        partners={partner: view.kind},
        partner_export_of=world.content_hash,
    )
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return dest


def load_partner_context(
    partner_dir: Path, partner: str, *, split: Split, training: TrainingSettings, seed: int, model: str
) -> RunContext:
    """A :class:`RunContext` for ``partner`` read from its partner directory (its tables + own truth)."""
    manifest = read_manifest(partner_dir)
    if partner not in manifest["partners"]:
        raise FedsimError(
            f"node-config partner = {partner!r}: directory {partner_dir} holds "
            f"{', '.join(manifest['partners'])}; allowed: the partner the directory was made for"
        )
    world = read_world(partner_dir, partners=[partner], truth=False)
    truth = {name: to_pandas(pq.read_table(partner_dir / "truth" / f"{name}.parquet")) for name in TRUTH_FOR_LABELS}
    truth = partner_truth(truth, partner)  # a full world directory works too: keep only own rows
    features = {partner: PartnerFeatures.for_view(world.partners[partner])}
    return RunContext(
        world=world,
        coalition=(partner,),
        model=model,
        seed=seed,
        split=split,
        training=training,
        features=features,
        truth=truth,
    )
