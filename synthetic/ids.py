"""Seeds, id pools and salted hashing — the small pieces every generator step shares.

Randomness: one ``np.random.SeedSequence(seed)`` per world; each component gets a child keyed by a
stable name (``rng_for(seed, "population")``), so adding a component never shifts another's
stream and results do not depend on how work is split over processes.

A world may have a **secret** (:class:`WorldSecret`, >= 32 random bytes). Without one, the root of every
stream is the public seed, as before. With one, the root is a keyed BLAKE2b (RFC 7693) of the seed under the
secret (:meth:`WorldSecret.root`), so ids, behaviour and keys depend on the secret, and the join keys are a
keyed PRF of the raw identifiers (:func:`keyed_hash`) under a key derived from the secret: neither can be
rebuilt, nor inverted, from the seed and the public config.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

import numpy as np

_MASK63 = np.uint64((1 << 63) - 1)


def rng_for(seed: int, *names: str | int) -> np.random.Generator:
    """A generator for one named component (and shard) of a world; stable under refactoring."""
    words = [int.from_bytes(hashlib.sha256(str(n).encode()).digest()[:4], "little") for n in names]
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=tuple(words)))


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mixer."""
    z = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def salted_hash(raw: np.ndarray, salt: int, domain: int) -> np.ndarray:
    """Keyed hash of raw identifiers → non-negative int64 join keys.

    ``domain`` separates key spaces (phone, IBAN, e-mail, device) so equal raw numbers in different
    spaces never collide. Not cryptographic: the world is synthetic; the real-world analogue is a
    keyed HMAC agreed between partners. Two rounds of SplitMix64 over (raw xor salt xor domain).
    """
    mixed = np.asarray(raw, dtype=np.int64).astype(np.uint64) ^ np.uint64(salt & ((1 << 64) - 1))
    mixed = splitmix64(splitmix64(mixed ^ np.uint64(domain * 0x100000001B3)))
    return (mixed & _MASK63).astype(np.int64)


def id_pool(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct pseudonymous ids from one shuffled pool (no order, no meaning)."""
    base = rng.permutation(np.arange(1, n + 1, dtype=np.int64))
    return (base * 7_919 + rng.integers(0, 7_919)) % (1 << 62)  # spread, still distinct


def keyed_hash(raw: np.ndarray, key: bytes, domain: int) -> np.ndarray:
    """Keyed PRF of raw identifiers → non-negative int64 join keys: BLAKE2b in keyed mode (RFC 7693 §2.5).

    Unlike :func:`salted_hash` it cannot be inverted or recomputed without ``key``. Each distinct raw value is
    hashed once (identifier columns repeat the same values many times) and mapped back to its rows.
    """
    values = np.asarray(raw, dtype=np.int64)
    unique, inverse = np.unique(values, return_inverse=True)
    prefix = domain.to_bytes(1, "little")
    digests = b"".join(
        hashlib.blake2b(prefix + int(v).to_bytes(8, "little", signed=True), key=key, digest_size=8).digest()
        for v in unique.tolist()
    )
    hashed = np.frombuffer(digests, dtype="<u8") & _MASK63
    return hashed.astype(np.int64)[inverse.reshape(values.shape)]


DOMAIN_PHONE, DOMAIN_IBAN, DOMAIN_EMAIL, DOMAIN_DEVICE, DOMAIN_HANDSET = 1, 2, 3, 4, 5

SECRET_MIN_BYTES = 32
"""A world secret has at least 256 bits: as many as the BLAKE2b keys derived from it."""


@dataclass(frozen=True)
class WorldSecret:
    """A world's secret: the root of its randomness and of its key salt, kept by the evaluator.

    Every value derived from it is a keyed BLAKE2b (RFC 7693) of a fixed label (``person``) under the secret, so
    the derivations are independent of each other and none reveals the secret or another derivation.
    """

    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.value) < SECRET_MIN_BYTES:
            raise ValueError(f"a world secret needs >= {SECRET_MIN_BYTES} bytes; got {len(self.value)}")

    def _derive(self, label: bytes, data: bytes = b"", size: int = 32) -> bytes:
        # BLAKE2b keys are at most 64 bytes: a longer secret is first compressed to its own 64-byte digest.
        key = self.value if len(self.value) <= 64 else hashlib.blake2b(self.value).digest()
        return hashlib.blake2b(data, key=key, person=label, digest_size=size).digest()

    def root(self, seed: int) -> int:
        """The root entropy of the world's streams for ``seed``: 256 bits no one can compute without the secret."""
        return int.from_bytes(self._derive(b"fedsim-root", seed.to_bytes(16, "little")), "little")

    def key_salt(self) -> bytes:
        """The key of the join-key PRF (:func:`keyed_hash`): what partners that share keys would be given."""
        return self._derive(b"fedsim-key-salt")

    def fingerprint(self) -> str:
        """A public name of the secret (hex): equal for equal secrets, useless for recovering it."""
        return self._derive(b"fedsim-fprint", size=16).hex()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorldSecret) and hmac.compare_digest(self.value, other.value)

    def __hash__(self) -> int:
        return hash(self.fingerprint())


@dataclass(frozen=True)
class Keys:
    """The join keys of one world: every partner hashes a raw identifier with the world's salt and its domain.

    ``prf_key`` (a world with a secret): the keyed PRF :func:`keyed_hash` instead of :func:`salted_hash`.
    """

    salt: int
    prf_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def of_secret(cls, secret: WorldSecret) -> Keys:
        return cls(salt=0, prf_key=secret.key_salt())

    def _hash(self, raw: np.ndarray, domain: int) -> np.ndarray:
        if self.prf_key is not None:
            return keyed_hash(raw, self.prf_key, domain)
        return salted_hash(raw, self.salt, domain)

    def phone(self, raw: np.ndarray) -> np.ndarray:
        return self._hash(raw, DOMAIN_PHONE)

    def iban(self, raw: np.ndarray) -> np.ndarray:
        return self._hash(raw, DOMAIN_IBAN)

    def email(self, raw: np.ndarray) -> np.ndarray:
        return self._hash(raw, DOMAIN_EMAIL)

    def device(self, raw: np.ndarray) -> np.ndarray:
        return self._hash(raw, DOMAIN_DEVICE)

    def handset(self, raw: np.ndarray) -> np.ndarray:
        return self._hash(raw, DOMAIN_HANDSET)
