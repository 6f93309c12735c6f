"""Password hashing with argon2id (memory-hard, salted; OWASP's first choice), off the event loop.

New hashes are argon2id PHC strings (`$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>`) with the
first configuration of OWASP's Password Storage Cheat Sheet: 19 MiB, 2 passes, 1 lane. Hashes of
the service's earlier scheme, `scrypt$<log2 n>$<r>$<p>$<salt>$<hash>` (base64url), still verify
and are replaced at the next successful login, as is any argon2 hash with other parameters.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger("risingstars.auth.passwords")

MEMORY_KIB = 19_456
TIME_COST = 2
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32
_ARGON2 = argon2.PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_BYTES,
    salt_len=SALT_BYTES,
    type=argon2.Type.ID,
)
_SCRYPT = "scrypt"


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _normalize(password: str) -> bytes:
    # The same password typed on different keyboards (composed or decomposed accents) matches.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def hash_password(password: str) -> str:
    return _ARGON2.hash(_normalize(password))


def _argon2_parameters(stored: str) -> argon2.Parameters:
    params = argon2.extract_parameters(stored)  # InvalidHashError when malformed
    # Bounds keep a corrupted row from asking for gigabytes of memory or minutes of CPU.
    if not (params.memory_cost <= 262_144 and params.time_cost <= 16 and params.parallelism <= 16):
        raise InvalidHashError(f"argon2 parameters out of range: {params}")
    return params


def _scrypt_parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, log2_n, r, p, salt, digest = stored.split("$")
    if scheme != _SCRYPT:
        raise ValueError(f"unknown scheme {scheme!r}")
    params = int(log2_n), int(r), int(p)
    if not (1 <= params[0] <= 20 and 1 <= params[1] <= 32 and 1 <= params[2] <= 16):
        raise ValueError(f"scrypt parameters out of range: {params}")
    salt_bytes, digest_bytes = _unb64(salt), _unb64(digest)
    if len(salt_bytes) < 8 or len(digest_bytes) < 16:
        raise ValueError("salt or digest too short")
    return *params, salt_bytes, digest_bytes


def _scrypt_verify(password: bytes, stored: str) -> bool:
    log2_n, r, p, salt, expected = _scrypt_parse(stored)
    n = 1 << log2_n
    actual = hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=256 * r * (n + p + 2)
    )
    return hmac.compare_digest(actual, expected)


def verify_password(password: str, stored: str) -> bool:
    try:
        if stored.startswith("$argon2"):
            _argon2_parameters(stored)
            try:
                return _ARGON2.verify(stored, _normalize(password))
            except VerificationError:  # a mismatch (VerifyMismatchError is one)
                return False
        return _scrypt_verify(_normalize(password), stored)
    except (ValueError, InvalidHashError) as exc:
        log.error("unusable password hash", extra={"error": str(exc)})
        return False


def needs_rehash(stored: str) -> bool:
    """True for anything but an argon2id hash with today's parameters."""
    try:
        return not stored.startswith("$argon2id$") or _ARGON2.check_needs_rehash(stored)
    except (ValueError, InvalidHashError):
        return True


class Hasher:
    """Runs the KDF on a small dedicated thread pool: the event loop stays free, and at most
    `workers` hashes (19 MiB each) are in memory at once."""

    def __init__(self, workers: int | None = None) -> None:
        workers = workers or max(2, min(8, os.cpu_count() or 2))
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kdf")
        self._dummy: str | None = None

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        # Unknown emails are checked against this hash, so they cost as much as a real account.
        self._dummy = await self._run(hash_password, secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password: str, stored: str | None) -> bool:
        """Check `password`; with no stored hash (unknown account) spend the same time and
        return False."""
        if stored is None:
            if self._dummy is None:
                await self.start()
            await self._run(verify_password, password, self._dummy)
            return False
        return await self._run(verify_password, password, stored)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
