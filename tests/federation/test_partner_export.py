"""Partner exports (fedsim.federation.partner_data.export_partner_world) hold what the partner would hold: its own
tables and the reports it received. An attacker holding one cannot regenerate the world; the evaluator, who keeps
the secret, can; the partner's training rows built from the export are those of the in-process siloed recipe."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedsim.errors import FedsimError
from fedsim.federation.partner_data import (
    RECEIVED,
    build_partner_data,
    export_partner_world,
    load_partner_context,
    partner_only,
)
from fedsim.rows import RunContext, TrainingSettings
from synthetic.world import World, WorldError, WorldSecret, generate, read_world, write_world

pytestmark = pytest.mark.xdist_group("test_partner_export")

SEED = 2
SECRET = WorldSecret(hashlib.sha256(b"test_partner_export").digest())
WORLD = {"preset": "small", "seed": SEED, "overrides": {"persons": 1000, "days": 60}}
SPLIT = {"train_days": 35, "gap_days": 3, "test_days": 20}
Exported = tuple[Any, RunContext, dict[str, Path]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """(experiment spec, the evaluator's run context on the world with a secret, partner → its export folder)."""
    from fedsim.experiment import parse_experiment
    from fedsim.runner import Workspace

    tmp = tmp_path_factory.mktemp("partner-export")
    spec = parse_experiment(
        {
            "name": "export",
            "world": WORLD,
            "split": SPLIT,
            "regimes": ["siloed"],
            "coalitions": "all",
            "models": ["logistic"],
            "seeds": [0],
        }
    )
    world = generate(spec.world.world_config(), SEED, secret=SECRET)
    ws = Workspace.build(spec, world, tmp / "artifacts")
    ctx = RunContext(
        world=world,
        coalition=tuple(world.partners),
        model="logistic",
        seed=0,
        split=ws.split,
        training=TrainingSettings(),
        features=ws.features,
        truth=ws.truth,
    )
    folders = {p: export_partner_world(world, ws.truth, p, tmp / "exports" / p) for p in world.partners}
    return spec, ctx, folders


def _export_tables(folder: Path, partner: str) -> dict[str, pa.Table]:
    return {f.stem: pq.read_table(f) for f in sorted((folder / "partners" / partner).glob("*.parquet"))}


def _identifiers(tables: dict[str, pa.Table]) -> set[int]:
    """Every value of an identifier column (``*_id``, ``*_hash``): entity ids and salted-hash keys."""
    out: set[int] = set()
    for table in tables.values():
        for name in table.column_names:
            if name.endswith(("_id", "_hash")):
                out |= {int(v) for v in table.column(name).drop_null().to_numpy()}
    return out


def test_an_attacker_with_an_export_cannot_regenerate_the_world_the_evaluator_can(exported: Exported) -> None:
    spec, ctx, folders = exported
    config = spec.world.world_config()  # the attacker even knows the exact config, not only the preset
    held = {p: _export_tables(folders[p], p) for p in folders}
    assert all(held[p] for p in held)
    # execute: every seed 0..20 (the true seed among them) without the secret
    for seed in range(21):
        guess = generate(config, seed)
        for partner, tables in held.items():
            for name, table in tables.items():
                assert not guess.partners[partner].tables[name].equals(table), (seed, partner, name)
    # the evaluator, with the secret, rebuilds every table byte for byte
    again = generate(config, SEED, secret=SECRET)
    assert again.manifest["tables"] == ctx.world.manifest["tables"]
    for partner, tables in held.items():
        assert all(again.partners[partner].tables[n].equals(t) for n, t in tables.items())


def test_the_export_holds_own_tables_and_received_reports_only_privately(exported: Exported) -> None:
    _, ctx, folders = exported
    world: World = ctx.world
    for partner, folder in folders.items():
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        own = sorted(f"partners/{partner}/{t}.parquet" for t in world.partners[partner].tables)
        assert files == sorted(["manifest.json", RECEIVED, *own])  # no truth/, no salt, no other partner
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(manifest) == {"schema_version", "partners", "partner_export_of", "secret_fingerprint"}
        assert manifest["partners"] == {partner: world.partners[partner].kind}
        with pytest.raises(WorldError, match="partner export"):  # not a world: nothing to rebuild one from
            read_world(folder)
        # permissions: 0600 files, 0700 folders (the export's own folder included)
        for path in [folder, *folder.rglob("*")]:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        # no identifier that only another partner holds (report_id is the partner's own 0, 1, 2, ... numbering)
        mine = _identifiers(world.partners[partner].tables)
        others = set().union(*(_identifiers(v.tables) for n, v in world.partners.items() if n != partner)) - mine
        held = _identifiers(_export_tables(folder, partner)) | _identifiers(
            {"r": pq.read_table(folder / RECEIVED, columns=["entity_id"])}
        )
        assert held <= mine and not held & others


def test_received_reports_are_the_reported_cases_of_the_partner_not_the_truth(exported: Exported) -> None:
    _, ctx, folders = exported
    ce, cases = ctx.truth["case_entities"], ctx.truth["cases"]
    for partner in ("bank_1", "marketplace"):
        received = pd.read_parquet(folders[partner] / RECEIVED)
        assert list(received.columns) == [
            "report_id",
            "entity_id",
            "report_ts",
            "fraud_type",
            "label_from",
            "label_until",
        ]
        assert len(received) > 0 and (received["label_from"] <= received["label_until"]).all()
        mine = ce[ce["partner"] == partner]
        assert set(received["entity_id"]) <= set(mine["entity_id"])
        # cases of this partner's entities that were never reported to it are not in its export
        unreported = mine[mine["case_id"].isin(cases.loc[~cases["reported"], "case_id"])]
        assert len(unreported) > 0 and not set(unreported["entity_id"]) <= set(received["entity_id"])
        assert received["report_id"].max() + 1 == received["report_id"].nunique()  # local numbering, not case ids


def test_training_rows_from_the_export_equal_the_in_process_rows(exported: Exported) -> None:
    _, ctx, folders = exported
    positives = {}
    for partner, folder in folders.items():
        at_node = build_partner_data(
            load_partner_context(
                folder, partner, split=ctx.split, training=ctx.training, seed=ctx.seed, model=ctx.model
            ),
            partner,
        )
        in_process = build_partner_data(partner_only(ctx, partner), partner)
        assert at_node.columns == in_process.columns
        np.testing.assert_array_equal(at_node.y, in_process.y)
        np.testing.assert_array_equal(at_node.entity, in_process.entity)
        np.testing.assert_allclose(at_node.X, in_process.X, equal_nan=True)
        for window, frame in in_process.tests.items():
            pd.testing.assert_frame_equal(at_node.tests[window], frame)
        positives[partner] = int(at_node.y.sum())
    assert all(n > 0 for n in positives.values()), positives  # the labels were really exercised
    with pytest.raises(FedsimError, match="bank_1"):
        load_partner_context(folders["bank_2"], "bank_1", split=ctx.split, training=ctx.training, seed=0, model="x")


def test_a_world_without_a_secret_is_not_exported(exported: Exported, tmp_path: Path) -> None:
    from fedsim.federation.deployment import main

    spec, ctx, _ = exported
    plain = generate(spec.world.world_config(), SEED)
    with pytest.raises(FedsimError) as refused:
        export_partner_world(plain, ctx.truth, "bank_1", tmp_path / "bank_1")
    for where in ("world.secret_file", "--secret-file", "FEDSIM_WORLD_SECRET_FILE"):
        assert where in str(refused.value)
    assert not (tmp_path / "bank_1").exists()
    # the command: one error line, exit 2
    write_world(plain, tmp_path / "world")
    with pytest.raises(SystemExit) as stop:
        main(
            ["export-partner", "--world", str(tmp_path / "world"), "--partner", "bank_1", "--out", str(tmp_path / "o")]
        )
    assert stop.value.code == 2 and not (tmp_path / "o").exists()
