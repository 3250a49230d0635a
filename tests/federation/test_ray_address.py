"""Which Ray a simulation uses: a private one unless an address is given (``--ray-address``, ``$RAY_ADDRESS``),
addresses checked and probed before any work, and where a run ran logged as a param. No Ray is started here
(tests/test_cluster.py runs a grid on a real cluster)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedsim.cli import app
from fedsim.errors import FedsimError
from fedsim.federation import engine
from fedsim.federation.engine import (
    check_ray_address,
    engine_address_param,
    probe_ray_cluster,
    ray_address,
    use_ray_cluster,
)


@pytest.fixture(autouse=True)
def _no_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    use_ray_cluster(None)
    yield
    use_ray_cluster(None)


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_an_address_ray_is_private_even_beside_a_cluster() -> None:
    # no choice: a private Ray, started with address="local" (Ray's default would join the last `ray start`)
    assert ray_address() is None
    assert engine._ray_init_args(None, False) == {
        "address": "local",
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "WARNING",
    }
    assert engine_address_param("simulation") == {"fl_engine_address": "local"}
    assert engine_address_param("deployment") == engine_address_param("in_process") == {}


def test_the_option_wins_over_the_environment_and_local_forces_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", " 10.0.0.5:6379 ")
    assert ray_address() == "10.0.0.5:6379"  # the environment, stripped
    assert use_ray_cluster("127.0.0.1:7000") == "127.0.0.1:7000"
    assert ray_address() == "127.0.0.1:7000"
    assert engine._ray_init_args(ray_address(), False)["address"] == "127.0.0.1:7000"
    assert engine_address_param("simulation") == {"fl_engine_address": "127.0.0.1:7000"}
    use_ray_cluster("local")
    assert ray_address() is None and engine_address_param("simulation") == {"fl_engine_address": "local"}


@pytest.mark.parametrize("address", ["10.0.0.5:6379", "head.cluster:6379", "[::1]:6379"])
def test_cluster_addresses_are_accepted(address: str) -> None:
    assert check_ray_address(f" {address}") == address


@pytest.mark.parametrize(
    "address", ["", "head", "head:", "head:0", "head:70000", "http://head:6379", "ray://head:10001", "a b:1"]
)
def test_other_words_are_refused_naming_value_and_allowed(address: str) -> None:
    with pytest.raises(FedsimError) as err:
        check_ray_address(address)
    assert repr(address) in str(err.value) and "host:port" in str(err.value)


def test_a_silent_address_fails_in_seconds_and_a_listening_one_passes() -> None:
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(FedsimError, match=f"127.0.0.1:{port}: no Ray cluster answers there"):
        probe_ray_cluster(f"127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - started < 5
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        probe_ray_cluster(f"127.0.0.1:{listening.getsockname()[1]}")  # no error


def test_fedsim_run_refuses_a_dead_address_before_building_anything(tmp_path: Path) -> None:
    experiment = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"
    port = _closed_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        result = CliRunner().invoke(
            app, ["run", str(experiment), "--ray-address", f"127.0.0.1:{port}", "--workdir", str(tmp_path / "w")]
        )
    assert result.exit_code != 0
    assert f"Ray address = 127.0.0.1:{port}: no Ray cluster answers there" in " ".join(result.output.split())
    assert not (tmp_path / "w").exists() and not (tmp_path / "mlflow.db").exists()
