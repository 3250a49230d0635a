"""Seeds, id pools and salted hashing — the small pieces every generator step shares.

Randomness: one ``np.random.SeedSequence(seed)`` per world; each component gets a child keyed by a
stable name (``rng_for(seed, "population")``), so adding a component never shifts another's
stream and results do not depend on how work is split over processes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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


DOMAIN_PHONE, DOMAIN_IBAN, DOMAIN_EMAIL, DOMAIN_DEVICE, DOMAIN_HANDSET = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Keys:
    """The join keys of one world: every partner hashes a raw identifier with the world's salt and its domain."""

    salt: int

    def phone(self, raw: np.ndarray) -> np.ndarray:
        return salted_hash(raw, self.salt, DOMAIN_PHONE)

    def iban(self, raw: np.ndarray) -> np.ndarray:
        return salted_hash(raw, self.salt, DOMAIN_IBAN)

    def email(self, raw: np.ndarray) -> np.ndarray:
        return salted_hash(raw, self.salt, DOMAIN_EMAIL)

    def device(self, raw: np.ndarray) -> np.ndarray:
        return salted_hash(raw, self.salt, DOMAIN_DEVICE)

    def handset(self, raw: np.ndarray) -> np.ndarray:
        return salted_hash(raw, self.salt, DOMAIN_HANDSET)
