"""`fedsim deploy write-app`: the cross-machine Flower app carries every setting of the cell, privacy included."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from typer.testing import CliRunner

from fedsim.cli import app
from tests.worlds import KNOWN_ANSWER_SPLIT, KNOWN_ANSWER_WORLD


def _experiment(tmp_path: Path, *, secret: bool = True, **extra: object) -> Path:
    """The experiment file; with ``secret`` its world is generated with a secret file beside it (a deployment needs
    one: the partners' exports must not let them rebuild the world from the seed)."""
    world = dict(KNOWN_ANSWER_WORLD)
    if secret:
        (tmp_path / "world.secret").write_bytes(bytes(range(32)))
        world["secret_file"] = "world.secret"
    spec = {
        "name": "deploy-test",
        "world": world,
        "split": KNOWN_ANSWER_SPLIT,
        "regimes": ["horizontal"],
        "coalitions": [["bank_1", "bank_2", "bank_3"]],
        "models": ["logistic"],
        "seeds": [0, 1],
        "federation": {"rounds": 3, "strategy": "fedprox", "proximal_mu": 0.05},
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _config(app_dir: Path) -> dict[str, object]:
    return dict(tomllib.loads((app_dir / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"])


def test_write_app_carries_federation_training_and_privacy(tmp_path: Path, monkeypatch: object) -> None:
    exp = _experiment(tmp_path, privacy={"epsilon": [2.0]})
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["deploy", "write-app", str(exp), "--out", "app", "--seed", "1"])
    assert result.exit_code == 0, result.output
    config = _config(tmp_path / "app")
    assert (config["rounds"], config["strategy"], config["proximal-mu"], config["seed"]) == (3, "fedprox", 0.05, 1)
    assert config["num-partners"] == 3
    privacy = yaml.safe_load(str(config["privacy"]))  # JSON is YAML
    assert privacy["target_epsilon"] == 2.0


def test_write_app_without_dp_says_so_and_unknown_cell_is_refused(tmp_path: Path, monkeypatch: object) -> None:
    exp = _experiment(tmp_path)
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    ok = CliRunner().invoke(app, ["deploy", "write-app", str(exp), "--out", "app"])
    assert ok.exit_code == 0, ok.output
    assert _config(tmp_path / "app")["privacy"] == ""
    bad = CliRunner().invoke(app, ["deploy", "write-app", str(exp), "--out", "app2", "--seed", "7"])
    assert bad.exit_code == 2
    assert "seed = 7" in bad.output and "allowed" in bad.output


def test_a_full_disk_is_one_line_not_a_traceback() -> None:
    import errno

    import click
    import pytest

    from fedsim.cli import _disk_full, friendly_errors
    from fedsim.experiment import RunFailedError

    def fills_the_disk() -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/mlflow.db")
        except OSError as exc:
            raise RunFailedError("run 3/7 failed") from exc

    assert _disk_full(ValueError("other")) is None
    with pytest.raises(click.exceptions.Exit) as stop:
        friendly_errors(fills_the_disk)()
    assert stop.value.exit_code == 2
    with pytest.raises(KeyError):  # anything else still surfaces as itself
        friendly_errors(lambda: {"y": 1}["x"])()


def test_write_app_refuses_a_coalition_that_is_not_one_federation(tmp_path: Path, monkeypatch: object) -> None:
    # banks federate, the telco would stay alone: a deployment runs one app per federation, and `deploy evaluate`
    # could not turn such an app's scores into the cell's run
    exp = _experiment(tmp_path, coalitions=[["bank_1", "bank_2", "telco"]])
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["deploy", "write-app", str(exp), "--out", "app"])
    assert result.exit_code == 2, result.output
    assert "not one federation of one kind" in " ".join(result.output.split())
    assert not (tmp_path / "app").exists()


def test_write_app_refuses_a_world_without_a_secret_and_names_where_one_comes_from(
    tmp_path: Path, monkeypatch: object
) -> None:
    exp = _experiment(tmp_path, secret=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    monkeypatch.delenv("FEDSIM_WORLD_SECRET_FILE", raising=False)  # type: ignore[attr-defined]
    result = CliRunner().invoke(app, ["deploy", "write-app", str(exp), "--out", "app"])
    assert result.exit_code == 2, result.output
    words = " ".join(result.output.split())
    assert "world.secret_file" in words and "FEDSIM_WORLD_SECRET_FILE" in words
    assert not (tmp_path / "app").exists()
