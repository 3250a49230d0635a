"""The notebooks in notebooks/ run end to end (issue 12: "all of them run in `make test`") and show what they claim.

Each notebook is executed with nbclient in a kernel of this interpreter (a kernel spec written to the test's tmp
dir and found through JUPYTER_PATH, so nothing is registered globally and no other Python is picked up), with
its working directory in the test's tmp dir. Any cell error fails the test. A cell appended by the test then
reports, as JSON (ε = ∞ as Infinity), one real property of what the notebook computed and displayed: the followed
case's journey spans several partners, the paired contrast's estimate sits inside its CI, the Shapley values add
up to v(full chain) − v(∅). The notebooks stay in git without outputs and define no functions of their own.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "fedsim-test-python3"

# Appended after the notebook's own cells; reads the notebook's variables and prints one JSON line.
PROBES = {
    "01_explore_world": """
import json
print(json.dumps({
    "case_id": int(case_id),
    "journey_partners": sorted(journey["partner"].unique().tolist()),
    "journey_cases": sorted(journey["case_id"].unique().tolist()),
    "truth_partners": sorted(case_entities.loc[case_entities["case_id"] == case_id, "partner"].unique().tolist()),
    "calibration_rows": len(calibration),
    "calibration_ok": [None if v is None else bool(v) for v in calibration["ok"]],
}))
""",
    "02_compare_regimes": """
import json
print(json.dumps({
    "run_ids": sorted(summary.run_ids),
    "table_run_ids": sorted(runs_table["run_id"].tolist()),
    "pairs": sorted({(a.split(" ")[0], b.split(" ")[0]) for a, b in zip(contrast["a"], contrast["b"])}),
    "rows": contrast[["metric", "fraud_type", "diff", "lo", "hi"]].to_dict(orient="records"),
}))
""",
    "03_privacy_and_value": """
import json
shapley = values[values["concept"] == "shapley"]["value"].sum()
full = coalitions.loc[coalitions["size"] == coalitions["size"].max(), "value"].iloc[0]
print(json.dumps({
    "shapley_sum": float(shapley),
    "v_full": float(full),
    "players": sorted(values["player"].unique().tolist()),
    "curve": curve[["regime", "epsilon", "epsilon_person", "epsilon_spent", "odds_factor"]].to_dict(orient="records"),
}))
""",
}


@pytest.fixture()
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec for this interpreter in a tmp dir, visible to this test only (JUPYTER_PATH)."""
    from ipykernel.kernelspec import write_kernel_spec

    write_kernel_spec(tmp_path / "jupyter" / "kernels" / KERNEL)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def execute(name: str, kernel: str, workdir: Path) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Run notebook ``name`` with its probe cell appended; return the executed notebook and the probe's JSON."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBES[name].strip()))
    NotebookClient(nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(workdir)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream" and o.name == "stdout")
    return nb, json.loads(text.strip().splitlines()[-1])


def displayed(nb: nbformat.NotebookNode, tag: str) -> bool:
    """Whether the cell tagged ``tag`` showed something (a table, a figure or printed text)."""
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    return len(cells) == 1 and bool(cells[0].outputs)


def test_notebooks_are_stored_without_outputs_and_define_no_logic() -> None:
    names = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == sorted(PROBES), "every notebook has a test probe"
    for name in names:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: clear outputs before commit"
        lines = [line.lstrip() for c in code for line in c.source.splitlines()]
        assert not [line for line in lines if line.startswith(("def ", "class "))], f"{name} defines its own logic"


@pytest.mark.slow
def test_explore_world_follows_one_case_across_partners(kernel: str, tmp_path: Path) -> None:
    nb, probe = execute("01_explore_world", kernel, tmp_path)
    assert displayed(nb, "journey") and displayed(nb, "calibration")
    assert probe["journey_cases"] == [probe["case_id"]]
    assert len(probe["journey_partners"]) >= 2, "the followed case's rows sit at two or more partners"
    # the truth says which partners' entities played a role; each of them left rows in the journey
    assert set(probe["truth_partners"]) <= set(probe["journey_partners"])
    assert probe["calibration_rows"] > 0 and any(v is not None for v in probe["calibration_ok"])


@pytest.mark.slow
def test_compare_regimes_reads_the_runs_back_with_a_ci_around_each_contrast(kernel: str, tmp_path: Path) -> None:
    nb, probe = execute("02_compare_regimes", kernel, tmp_path)
    assert displayed(nb, "contrast")
    assert len(probe["run_ids"]) == 4 and probe["table_run_ids"] == probe["run_ids"]
    assert probe["pairs"] == [["pooled", "status_quo"]]
    metrics = {(r["metric"], r["fraud_type"]) for r in probe["rows"]}
    assert ("ed_h0", "all") in metrics
    for row in probe["rows"]:
        assert row["lo"] <= row["diff"] + 1e-12 and row["diff"] <= row["hi"] + 1e-12, row


@pytest.mark.slow
def test_privacy_and_value_shapley_adds_up_and_person_epsilon_covers_each_model(kernel: str, tmp_path: Path) -> None:
    nb, probe = execute("03_privacy_and_value", kernel, tmp_path)
    assert displayed(nb, "privacy") and displayed(nb, "value")
    assert probe["players"] == ["bank_1", "telco"]
    # efficiency: the Shapley values share out exactly v(full chain) − v(∅), with v(∅) = 0 for ED(0)
    assert probe["shapley_sum"] == pytest.approx(probe["v_full"], abs=1e-9)
    private = [r for r in probe["curve"] if math.isfinite(r["epsilon"])]
    assert private and all(r["epsilon"] == 4 for r in private)
    for row in private:
        # a person's ε composes every model holding their data: never below the largest single model's ε
        assert row["epsilon_person"] >= row["epsilon_spent"] - 1e-6
        assert row["odds_factor"] == pytest.approx(math.exp(row["epsilon_person"]), rel=1e-6)
    assert all(math.isinf(r["epsilon_person"]) for r in probe["curve"] if math.isinf(r["epsilon"]))
