"""`fedsim audit` keeps its tables with the experiment's summary run, and the report shows them (issue 12)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report")]


def test_an_audit_attached_by_fedsim_audit_reaches_the_report(tmp_path: Path) -> None:
    from fedsim.cli import app
    from fedsim.report.gather_audit import audit_table
    from fedsim.report.render import write_report
    from fedsim.tracking import Tracker
    from tests.report.test_render import report_model
    from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD

    # the known-answer world: 10% of people are cases, so every pool of the membership attack has positives
    spec = {
        "name": "audit_report",
        "world": KNOWN_ANSWER_WORLD,
        "split": KNOWN_ANSWER_SPLIT,
        "regimes": ["siloed"],
        "coalitions": "all",
        "models": ["logistic"],
        "seeds": [0],
        "training": {"epochs": 2, "batch_size": 256, "learning_rate": 0.01},
    }
    (tmp_path / "audit.yaml").write_text(yaml.safe_dump(spec))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["audit", str(tmp_path / "audit.yaml"), "--tracking-uri", uri, "--workdir", str(tmp_path / "work")]
    args += ["--epsilon", "4", "--out", str(tmp_path / "audit"), "--canaries", "40", "--canary-guesses", "10"]
    done = CliRunner().invoke(app, [*args, "--canary-epochs", "2"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output

    audit = audit_table(Tracker(uri, "audit_report"))
    written = pd.read_csv(tmp_path / "audit" / "membership_audit.csv")
    canary = pd.read_csv(tmp_path / "audit" / "canary_audit.csv")
    # one row per measurable membership operating point and one per canary ε, read back from the store
    assert len(audit) == int(written["measurable"].sum()) + len(canary) and len(canary) == 1
    canary_row = audit[audit["check"].str.startswith("canary")].iloc[0]
    assert canary_row["statistic"] == pytest.approx(float(canary["epsilon_lower_bound"].iloc[0]))
    assert canary_row["passed"] == (canary_row["statistic"] <= canary_row["bound"])
    # a DP claim the audit disproves would be a failed row; at ε = 4 this small audit does not disprove it
    assert audit["passed"].all() and (audit["epsilon"] == 4.0).all()

    # the report renders the audit rows it is given (gather_report reads them with audit_table)
    model = dataclasses.replace(report_model(), audit=audit)
    html = write_report(model, tmp_path / "report", ("en",))[0].read_text()
    assert "This experiment has no privacy audit" not in html
    assert html.count("canary audit: certified ε lower bound") == 1
    assert html.count("membership attack: TPR at FPR") == int(written["measurable"].sum())
