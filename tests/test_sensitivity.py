"""`fedsim sensitivity` (issue 11): the sweep file is validated against the experiment, derived experiments differ
only in their knob, the capacity knob reuses the base runs (a real tracked run), verdict changes are found on a
hand-made table, and the tornado has one bar per knob in swing order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.xdist_group("test_sensitivity")

SPEC: dict[str, Any] = {
    "name": "sens_test",
    "world": {"preset": "small", "seed": 2, "overrides": {"persons": 1500, "days": 90}},
    "split": {"train_days": 50, "gap_days": 5, "test_days": 20},
    "regimes": ["status_quo", "reports"],
    "coalitions": "all",
    "models": ["gbt"],
    "seeds": [0, 1],
    "metrics": {"capacity_scales": [1], "horizons_h": [0], "latencies_h": [0], "interdiction": [1.0], "bootstrap": 30},
    "primary": {"metric": "ed_h0", "capacity_scale": 1, "contrast": ["reports", "status_quo"], "min_seeds": 2},
}

KNOBS: list[dict[str, Any]] = [
    {"name": "mules", "path": "fraud.helpdesk.victims_per_mule", "low": 1.0, "high": 6.0, "source": "test"},
    # purchase is not listed in the small preset: its whole default entry must travel with the knob
    {"name": "purchase_reports", "path": "fraud.purchase.report_probability", "low": 0.1, "high": 0.6, "source": "t"},
    {"name": "phones", "path": "keys.phone_coverage", "low": 0.6, "high": 0.99, "source": "test"},
    {"name": "capacity", "path": "capacity_scale", "low": 0.5, "high": 2.0, "source": "test"},
]


@pytest.fixture()
def experiment(tmp_path: Path) -> Path:
    path = tmp_path / "sens_test.yaml"
    path.write_text(yaml.safe_dump(SPEC))
    return path


def _sweep(experiment: Path, knobs: list[dict[str, Any]], **extra: Any) -> Any:
    from fedsim.sensitivity import parse_sweep

    return parse_sweep(experiment, {"knobs": knobs, **extra})


# ---------------------------------------------------------------------------------------------------- validation
def test_a_bad_knob_path_names_the_field_the_value_and_what_is_allowed(experiment: Path) -> None:
    from fedsim.sensitivity import SweepError

    bad = {"name": "mules", "path": "fraud.helpdesk.victim_per_mule", "low": 1, "high": 4, "source": "x"}
    with pytest.raises(SweepError) as err:
        _sweep(experiment, [bad])
    msg = str(err.value)
    assert "sensitivity.knobs[0] (mules).path = 'fraud.helpdesk.victim_per_mule'" in msg
    assert "'victim_per_mule' is not a field of fraud.helpdesk" in msg
    assert "allowed:" in msg and "victims_per_mule" in msg and "capacity_scale" in msg


def test_a_value_outside_the_world_configs_range_is_refused_with_the_field(experiment: Path) -> None:
    from fedsim.sensitivity import SweepError

    bad = {"name": "rate", "path": "fraud.helpdesk.report_probability", "low": 0.2, "high": 1.5, "source": "x"}
    with pytest.raises(SweepError) as err:
        _sweep(experiment, [bad])
    msg = str(err.value)
    assert "sensitivity.knobs[0] (rate).high" in msg
    assert "report_probability = 1.5" in msg and "less than or equal to 1" in msg


@pytest.mark.parametrize(
    ("knob", "words"),
    [
        ({"base": 3.0}, "the experiment has fraud.helpdesk.victims_per_mule = 2; allowed: 2"),
        ({"low": 5.0, "high": 3.0}, "allowed: low < high"),
        ({"low": 3.0, "high": 5.0}, "base 2 outside [low, high] = [3, 5]"),
        ({"path": "keys"}, "holds {"),
    ],
)
def test_base_range_and_type_are_checked(experiment: Path, knob: dict[str, Any], words: str) -> None:
    from fedsim.sensitivity import SweepError

    with pytest.raises(SweepError, match=None) as err:
        _sweep(experiment, [{**KNOBS[0], **knob}])
    assert words in str(err.value)


def test_a_joint_design_names_only_knobs_of_the_sweep(experiment: Path) -> None:
    from fedsim.sensitivity import SweepError

    with pytest.raises(SweepError, match=r"joint.knobs\[1\] = 'nope': not a knob of this sweep; allowed: mules"):
        _sweep(experiment, KNOBS, joint={"knobs": ["mules", "nope"]})


def test_a_half_fraction_of_two_knobs_is_refused(experiment: Path) -> None:
    from fedsim.sensitivity import SweepError

    with pytest.raises(SweepError, match="main effects are aliased; allowed: design: full, or half with 3"):
        _sweep(experiment, KNOBS, joint={"knobs": ["mules", "phones"], "design": "half"})


def test_the_metric_must_be_in_the_contrast_table(experiment: Path) -> None:
    from fedsim.sensitivity import SweepError

    with pytest.raises(SweepError, match="sensitivity.metric = 'roc_auc'.*allowed: ed_h0"):
        _sweep(experiment, KNOBS[:1], metric="roc_auc")


# ---------------------------------------------------------------------------------------------------- derivation
def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _cells(spec: Any) -> list[Any]:
    from fedsim.experiment import expand
    from fedsim.runner import partners_of

    return expand(spec, partners_of(spec))


def test_derived_experiments_differ_only_in_their_knob(experiment: Path) -> None:
    from fedsim.experiment import load_experiment, parse_experiment
    from fedsim.sensitivity import derived_experiment

    sweep = _sweep(experiment, KNOBS, joint={"knobs": ["mules", "phones", "capacity"], "design": "half"})
    base = load_experiment(experiment)
    base_world = _flat(base.world.world_config().model_dump(mode="json"))
    base_cells = _cells(base)
    derived = [v for v in sweep.variants if v.world_changed]
    assert len(derived) == 3 * 2 + 4  # three world knobs × (low, high) + the half fraction of 2^3
    hashes = set()
    for v in derived:
        spec = parse_experiment(derived_experiment(experiment, v), base_dir=experiment.parent)
        world = _flat(spec.world.world_config().model_dump(mode="json"))
        changed = {p for p in base_world if world[p] != base_world[p]}
        expected = {p for p, x in v.values.items() if p != "capacity_scale" and x != base_world[p]}
        assert changed == expected and changed, (v.level, changed)
        assert spec.name.startswith("sens_test--") and spec.name != base.name
        same = {"name", "world"}
        assert spec.model_dump(exclude=same) == base.model_dump(exclude=same)
        cells = _cells(spec)
        assert len(cells) == len(base_cells)
        for cell, base_cell in zip(cells, base_cells, strict=True):
            assert cell.config_hash != base_cell.config_hash
            fields, base_fields = cell.result_fields(), base_cell.result_fields()
            assert fields.pop("world_digest") != base_fields.pop("world_digest")
            assert fields == base_fields
            hashes.add(cell.config_hash)
    assert len(hashes) == len(derived) * len(base_cells)  # every variant is a world of its own


def test_the_half_fraction_is_balanced_and_orthogonal() -> None:
    from fedsim.sensitivity import two_level_design

    for k in (2, 3, 4, 5):
        full, half = two_level_design(k, "full"), two_level_design(k, "half")
        assert len(full) == 2**k and len(set(full)) == 2**k
        assert len(half) == 2 ** (k - 1) and set(half) <= set(full)
        for i in range(k):
            assert sum(r[i] for r in half) == 0  # each knob at low in half the points
            for j in range(i + 1, k):
                if k >= 3:  # resolution >= III: main effects not aliased with each other
                    assert sum(r[i] * r[j] for r in half) == 0


# ---------------------------------------------------------------------------------------------------- real runs
def test_the_capacity_knob_reuses_the_base_runs(experiment: Path, tmp_path: Path) -> None:
    from fedsim.runner import run_experiment
    from fedsim.sensitivity import run_sweep
    from fedsim.tracking import Tracker

    uri, workdir = f"sqlite:///{tmp_path}/mlflow.db", tmp_path / ".fedsim"
    summaries = []

    def run(path: Path) -> None:
        summaries.append((path, run_experiment(path, tracking_uri=uri, workdir=workdir, progress=False)))

    sweep = _sweep(experiment, [{**KNOBS[3], "low": 0.25, "high": 8.0}])
    table = run_sweep(sweep, tracking_uri=uri, workdir=workdir, run=run)
    assert [(p, s.executed) for p, s in summaries] == [(experiment, 4)]  # only the base grid ran
    assert list(table["level"]) == ["base", "low", "high"]
    assert set(table["experiment"]) == {"(base)"}
    by_level = table.set_index("level")
    a = by_level["value_a"]  # ED(0) of reports: more alerts a day catch at least as many cases (nested alert sets)
    assert a["low"] <= a["base"] <= a["high"]
    assert by_level["capacity"].nunique() == 3  # each variant evaluated at its own capacity
    assert by_level.loc["low", "capacity"].startswith("0.25 × ") and by_level.loc["high", "capacity"].startswith("8 × ")
    assert not (workdir / "sensitivity").exists()  # no derived experiment written
    again = run_sweep(sweep, tracking_uri=uri, workdir=workdir, run=run)
    assert summaries[-1][1].executed == 0 and summaries[-1][1].reused == 4  # nothing re-run
    pd.testing.assert_frame_equal(table, again)
    assert len(Tracker(uri, "sens_test").runs_table("sens_test")) == 4


# ---------------------------------------------------------------------------------------------------- verdicts
def _hand_table() -> pd.DataFrame:
    rows = [
        ("base", "base", None, 0.05, 0.01, 0.09),
        ("a", "low", 1.0, -0.04, -0.08, -0.01),  # significant the other way
        ("a", "high", 3.0, 0.08, 0.04, 0.12),
        ("b", "low", 0.1, 0.03, -0.01, 0.07),  # same sign, CI now covers 0
        ("b", "high", 0.9, 0.06, 0.02, 0.10),
        ("c", "low", 5.0, -0.01, -0.05, 0.03),  # estimate crosses 0, not significant
        ("c", "high", 9.0, 0.05, 0.01, 0.09),
        ("d", "low", 0.0, 0.0, -0.04, 0.04),  # exactly 0: no crossing
        ("d", "high", 1.0, 0.04, 0.01, 0.08),
    ]
    return pd.DataFrame(rows, columns=["knob", "level", "value", "diff", "lo", "hi"])


def test_flips_and_lost_significance_are_found() -> None:
    from fedsim.sensitivity import swings, verdicts

    out = verdicts(_hand_table()).set_index(["knob", "level"])
    assert out.loc[("a", "low"), "change"] == "verdict flips"
    assert out.loc[("b", "low"), "change"] == "loses significance"
    assert out.loc[("c", "low"), "change"] == "sign flips; loses significance"
    assert out.loc[("d", "low"), "change"] == "estimate at 0; loses significance"
    for key in [("base", "base"), ("a", "high"), ("b", "high"), ("c", "high"), ("d", "high")]:
        assert out.loc[key, "change"] == ""
    assert list(out["significant"]) == [True, True, True, False, True, False, True, False, True]
    assert list(out["sign"]) == [1, -1, 1, 1, 1, -1, 1, 0, 1]
    s = swings(verdicts(_hand_table()))
    assert list(s["knob"]) == ["a", "c", "d", "b"]  # swings 0.12, 0.06, 0.04, 0.03
    assert list(s["flips"]) == [True, True, True, True]
    assert s["swing"].tolist() == pytest.approx([0.12, 0.06, 0.04, 0.03])


def test_a_base_that_is_not_significant_gains_significance() -> None:
    from fedsim.sensitivity import verdicts

    t = _hand_table()
    t.loc[0, ["lo", "hi"]] = [-0.01, 0.11]
    out = verdicts(t).set_index(["knob", "level"])
    assert out.loc[("a", "high"), "change"] == "gains significance"
    assert out.loc[("a", "low"), "change"] == "sign flips; gains significance"


def test_the_tornado_has_one_bar_per_knob_in_swing_order(tmp_path: Path) -> None:
    from matplotlib.container import BarContainer

    from fedsim.evaluation.tornado import save_tornado, tornado_figure
    from fedsim.sensitivity import swings, verdicts

    s = swings(verdicts(_hand_table()))
    s.loc[s["knob"] == "b", "flips"] = False  # one knob without a flip: plain bar
    fig = tornado_figure(s, base=(0.05, 0.01, 0.09), title="t", xlabel="x")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ticks = list(ax.get_yticks())
    top_down = [lab for _, lab in sorted(zip(ticks, labels, strict=True), reverse=True)]
    assert top_down == ["a", "c", "d", "b"]  # largest swing at the top
    bars = [bar for c in ax.containers if isinstance(c, BarContainer) for bar in c]
    assert len(bars) == 4
    by_y = {round(b.get_y() + b.get_height() / 2): b for b in bars}
    for y, label in zip(ticks, labels, strict=True):
        row = s[s["knob"] == label].iloc[0]
        bar = by_y[round(y)]
        assert bar.get_x() == pytest.approx(min(row["at_low"], row["at_high"]))
        assert bar.get_width() == pytest.approx(row["swing"])
        assert (bar.get_hatch() == "//") == bool(row["flips"])
    paths = save_tornado(fig, tmp_path / "fig")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in paths[1].read_text()[:500]


SWEEPS = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"


@pytest.mark.parametrize("path", sorted(SWEEPS.glob("*.sweep.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_validate_against_their_experiment(path: Path) -> None:
    from fedsim.sensitivity import load_sweep

    experiment = SWEEPS.parent / path.name.replace(".sweep.yaml", ".yaml")
    sweep = load_sweep(experiment, path)
    assert [v.level for v in sweep.variants[:1]] == ["base"]
    assert all(k.source.strip() for k in sweep.knobs)


# ---------------------------------------------------------------------------------------------------- the command
def _cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from fedsim.cli import app

    return CliRunner().invoke(app, ["sensitivity", *args])


def test_the_dry_run_lists_every_variant_and_builds_nothing(experiment: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "s.sweep.yaml"
    sweep.write_text(
        yaml.safe_dump({"sensitivity": {"knobs": KNOBS, "joint": {"knobs": ["mules", "phones"], "design": "full"}}})
    )
    result = _cli(str(experiment), str(sweep), "--dry-run", "--workdir", str(tmp_path / "wd"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 + 4 * 2 + 4 + 1  # base, 4 knobs × (low, high), the full 2^2, the count
    assert "fraud.purchase.report_probability = 0.6" in result.stdout
    assert lines[-1] == "13 variants, 10 derived experiments (each the base grid on its own world)"
    assert not (tmp_path / "wd").exists()


def test_a_bad_sweep_file_exits_2_with_one_line(experiment: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "s.sweep.yaml"
    sweep.write_text(yaml.safe_dump({"sensitivity": {"knobs": [{**KNOBS[0], "path": "keys.phone_cover"}]}}))
    result = _cli(str(experiment), str(sweep), "--dry-run")
    assert result.exit_code == 2
    assert "'phone_cover' is not a field of keys; allowed:" in result.output
    assert "phone_coverage" in result.output and "Traceback" not in result.output


def test_joint_main_effects_recover_an_additive_contrast(experiment: Path) -> None:
    """On a hand-made additive contrast (diff = 0.1·mules − 0.2·phones + 0.05·capacity, in ±1 units) the half
    fraction of three knobs recovers each main effect exactly (2 × the coefficient)."""
    from fedsim.sensitivity import joint_effects

    sweep = _sweep(experiment, KNOBS, joint={"knobs": ["mules", "phones", "capacity"]})
    coef = {"mules": 0.1, "phones": -0.2, "capacity": 0.05}
    knobs = {k.name: k for k in sweep.knobs}
    rows = []
    for v in sweep.variants:
        unit = {n: (1 if v.values.get(k.path) == k.high else -1) for n, k in knobs.items() if k.path in v.values}
        rows.append({"level": v.level, "diff": sum(coef[n] * u for n, u in unit.items() if n in coef)})
    effects = joint_effects(sweep, pd.DataFrame(rows)).set_index("knob")["effect"]
    assert effects.to_dict() == pytest.approx({n: 2 * c for n, c in coef.items()})
