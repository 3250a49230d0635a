"""World secret (synthetic.ids.WorldSecret): with one, nothing of the world follows from the seed and the config;
without one, a world is exactly what it was before secrets existed."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from synthetic.config import WorldConfig, build_config, shorthand_overrides
from synthetic.ids import DOMAIN_PHONE, Keys, WorldSecret, keyed_hash, salted_hash
from synthetic.realistic import generate_realistic
from synthetic.world import (
    SECRET_ENV,
    SECRET_FIELD,
    WorldError,
    check_replaceable,
    generate,
    read_secret,
    read_world,
    secret_from,
    write_world,
)

SECRET = WorldSecret(hashlib.sha256(b"test_world_secret").digest())
OTHER = WorldSecret(hashlib.sha256(b"another secret").digest())


def known_answer() -> WorldConfig:
    return build_config(
        preset="known-answer",
        config_file=None,
        overrides={"known_answer": {"entities": 1000, "days": 20, "prevalence": 0.1}},
    )


def small() -> WorldConfig:
    return build_config(preset="small", config_file=None, overrides=shorthand_overrides(persons=1000, days=30))


def test_without_a_secret_a_world_has_the_bytes_it_had_before_secrets_existed() -> None:
    # recorded with the generator as it was before world secrets (commit ce25c1a); a deliberate change of the
    # known-answer generator updates it
    assert generate(known_answer(), 3).content_hash == (
        "0fad88090a6748df0c6087afa4f31a7fcc86a1da23fd0dfef8fbdbbab491a969"
    )
    # the realistic generator: generate() without a secret is the seed-rooted, seed-salted generator itself
    world = generate(small(), 2)
    direct = generate_realistic(small(), 2)
    assert all(
        world.partners[p].tables[t].equals(direct.partners[p].tables[t])
        for p in world.partners
        for t in world.partners[p].tables
    )
    assert SECRET_FIELD not in world.manifest


@pytest.mark.parametrize("config", [known_answer, small], ids=["known-answer", "realistic"])
def test_same_secret_same_bytes_other_secret_other_world(config: Callable[[], WorldConfig]) -> None:
    plain = generate(config(), 2)
    first, again = generate(config(), 2, secret=SECRET), generate(config(), 2, secret=SECRET)
    other = generate(config(), 2, secret=OTHER)
    assert first.content_hash == again.content_hash
    assert len({plain.content_hash, first.content_hash, other.content_hash}) == 3
    assert first.manifest[SECRET_FIELD] == SECRET.fingerprint() != other.manifest[SECRET_FIELD]
    assert first.seed == 2 and first.manifest["seed"] == 2  # the evaluator's manifest keeps the public seed
    # nothing of the secret itself, nor its key salt, is in the manifest
    text = json.dumps(first.manifest)
    assert SECRET.value.hex() not in text and SECRET.key_salt().hex() not in text


def test_the_secret_changes_every_stream_not_only_the_keys() -> None:
    # ids are drawn from the root randomness: with a secret the entity ids differ, not only the hashed keys
    plain, secret = generate(known_answer(), 3), generate(known_answer(), 3, secret=SECRET)
    ids_plain = plain.partners["bank_1"].tables["entities"].column("entity_id").to_numpy()
    ids_secret = secret.partners["bank_1"].tables["entities"].column("entity_id").to_numpy()
    assert len(np.intersect1d(ids_plain, ids_secret)) < 0.05 * len(ids_plain)


def test_keys_are_a_keyed_blake2b_prf_of_the_raw_identifier() -> None:
    raw = np.array([31_612_345_678, 5, 31_612_345_678, -1], dtype=np.int64)
    got = Keys.of_secret(SECRET).phone(raw)
    # computed independently with hashlib (RFC 7693 keyed mode): one byte of domain, then the raw value
    want = [
        int.from_bytes(
            hashlib.blake2b(
                bytes([DOMAIN_PHONE]) + int(v).to_bytes(8, "little", signed=True), key=SECRET.key_salt(), digest_size=8
            ).digest(),
            "little",
        )
        & ((1 << 63) - 1)
        for v in raw
    ]
    assert got.tolist() == want and got[0] == got[2]
    assert not np.array_equal(got, keyed_hash(raw, OTHER.key_salt(), DOMAIN_PHONE))
    assert not np.array_equal(got, salted_hash(raw, 12345, DOMAIN_PHONE))


def test_write_keeps_the_key_salt_private_with_the_world_and_reads_back(tmp_path: Path) -> None:
    world = generate(known_answer(), 3, secret=SECRET)
    out = write_world(world, tmp_path / "w", secret=SECRET)
    salt = out / "secret" / "key_salt"
    assert salt.read_bytes() == SECRET.key_salt()
    assert stat.S_IMODE(os.stat(salt).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(out / "secret").st_mode) == 0o700
    back = read_world(out)
    assert back.manifest[SECRET_FIELD] == SECRET.fingerprint() and back.content_hash == world.content_hash
    check_replaceable(out)  # --overwrite may replace a world with a secret folder
    # written without its secret, or with another one: refused
    for wrong in (None, OTHER):
        with pytest.raises(WorldError, match="secret"):
            write_world(world, tmp_path / f"w-{wrong is None}", secret=wrong)
    with pytest.raises(WorldError, match="secret"):
        write_world(generate(known_answer(), 3), tmp_path / "plain", secret=SECRET)


def test_secret_files_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good, short = tmp_path / "good", tmp_path / "short"
    good.write_bytes(b"0123456789abcdef" * 4)
    short.write_bytes(b"too short")
    assert read_secret(good) == WorldSecret(b"0123456789abcdef" * 4)
    with pytest.raises(WorldError, match=">= 32 bytes"):
        read_secret(short)
    with pytest.raises(WorldError, match="cannot be read"):
        read_secret(tmp_path / "missing")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    assert secret_from(None) is None
    monkeypatch.setenv(SECRET_ENV, str(good))
    assert secret_from(None) == read_secret(good)
    assert secret_from(short.with_name("good")) == read_secret(good)
    # an explicit file wins over the environment
    other = tmp_path / "other"
    other.write_bytes(b"x" * 40)
    assert secret_from(other) == WorldSecret(b"x" * 40) != secret_from(None)
