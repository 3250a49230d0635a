"""Files the Flower plumbing writes and reads: capture folders hold JSON + npz (never pickle) and round-trip
every value a message can carry; the Flower home is private (0700, per user) and a writable or foreign one
is repaired or refused."""

from __future__ import annotations

import logging
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from fedsim.errors import FedsimError
from fedsim.federation.engine import (
    CapturedMessage,
    apply_offline_env,
    default_flwr_home,
    load_captured,
    read_capture,
    secure_flwr_home,
    write_captured,
)


def _message() -> CapturedMessage:
    return CapturedMessage(
        "from_partner",
        "train",
        {"partition-id": 1},
        arrays={"arrays/net.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "arrays/net.bias": np.zeros(1)},
        metrics={"metrics/train-loss": 0.25, "metrics/num-examples": 17},
        configs={"secaggplus/keys": [b"\x00\xffkey", b"k2"], "config/dp-settings": "", "config/list": [1.5, 2.0]},
    )


def test_a_captured_message_round_trips_through_json_and_npz(tmp_path: Path) -> None:
    msg = _message()
    path = write_captured(msg, tmp_path)
    back = load_captured(path)
    # assert: every field equal (bytes too), arrays bit-identical with their dtype, files are JSON + npz only
    assert (back.direction, back.message_type, back.node_config) == ("from_partner", "train", {"partition-id": 1})
    assert back.metrics == msg.metrics and back.configs == msg.configs
    assert set(back.arrays) == set(msg.arrays)
    for key, array in msg.arrays.items():
        assert back.arrays[key].dtype == array.dtype
        np.testing.assert_array_equal(back.arrays[key], array)
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".npz"]


def test_read_capture_never_unpickles_a_planted_file(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    write_captured(_message(), tmp_path)
    (tmp_path / "0-planted.pkl").write_bytes(pickle.dumps(Boom()))
    # an npz with an object array (would need pickle) under a valid JSON index
    stem = tmp_path / "1-planted"
    with open(f"{stem}.npz", "wb") as fh:
        np.savez(fh, np.array([Boom()], dtype=object))
    (tmp_path / "1-planted.json").write_text(
        '{"direction": "x", "message_type": "train", "node_config": {}, "array_keys": ["a/b"], '
        '"metrics": {}, "configs": {}, "error": null}'
    )
    with pytest.raises(ValueError, match="allow_pickle"):
        read_capture(tmp_path)
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "1-planted.json").unlink()
    assert len(read_capture(tmp_path)) == 1  # the .pkl is ignored


def test_default_flower_home_is_private_and_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("FLWR_HOME", raising=False)
    home = apply_offline_env()
    assert home == tmp_path / "state" / "fedsim" / "flwr-home" == default_flwr_home()
    assert Path(os.environ["FLWR_HOME"]) == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert home.stat().st_uid == os.getuid()
    # without XDG_STATE_HOME: under the user's home, not the shared temp folder
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_flwr_home() == tmp_path / "user" / ".local" / "state" / "fedsim" / "flwr-home"
    # no usable home directory: a fresh random 0700 folder
    (tmp_path / "ro").mkdir(mode=0o500)
    monkeypatch.setenv("HOME", str(tmp_path / "ro" / "missing"))
    if os.getuid() != 0:  # root writes anywhere, so the fallback cannot be provoked this way
        fallback = default_flwr_home()
        assert "fedsim-flwr-home-" in fallback.name and stat.S_IMODE(fallback.stat().st_mode) == 0o700
        fallback.rmdir()


def test_a_writable_flower_home_is_repaired_and_a_foreign_one_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with caplog.at_level(logging.WARNING, logger="fedsim.federation"):
        secure_flwr_home(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert "writable by its group and every user" in caplog.text
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    if os.getuid() == 0:
        os.chown(foreign, 65534, 65534)
    else:
        foreign = Path("/")  # owned by root, not by this user
    with pytest.raises(FedsimError, match="not by you"):
        secure_flwr_home(foreign)
