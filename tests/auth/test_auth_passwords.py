"""Password hashing: scrypt parameters, salts, constant-time checks, off the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from risingstars.auth import passwords


def test_hash_verifies_only_the_right_password() -> None:
    stored = passwords.hash_password("Vuelo-Alto-2024")
    assert passwords.verify_password("Vuelo-Alto-2024", stored)
    assert not passwords.verify_password("vuelo-alto-2024", stored)
    assert not passwords.verify_password("", stored)


def test_each_hash_has_its_own_salt_and_strong_parameters() -> None:
    a, b = passwords.hash_password("misma"), passwords.hash_password("misma")
    assert a != b
    scheme, log2_n, r, p, salt, digest = a.split("$")
    assert scheme == "scrypt" and int(log2_n) >= 14 and int(r) >= 8 and int(p) >= 1
    assert len(salt) >= 22 and len(digest) >= 43  # >= 16 and 32 bytes, base64url
    assert not passwords.needs_rehash(a)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain",
        "bcrypt$x$y",
        "scrypt$15$8$1$!!$!!",
        "scrypt$x$8$1$AA$AA",
        "scrypt$15$8$1$$",
        "scrypt$40$8$1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg",
    ],
)
def test_unusable_stored_hashes_never_verify(stored) -> None:
    assert not passwords.verify_password("anything", stored)
    assert passwords.needs_rehash(stored)


async def test_hashing_leaves_the_event_loop_free() -> None:
    hasher = passwords.Hasher(workers=1)
    hashing_done = threading.Event()
    ticked_while_hashing = False

    async def ticker() -> None:
        nonlocal ticked_while_hashing
        while not hashing_done.is_set():
            ticked_while_hashing = True
            await asyncio.sleep(0)

    async def hash_then_signal() -> str:
        try:
            return await hasher.hash("Vuelo-Alto-2024")
        finally:
            hashing_done.set()

    try:
        ticks = asyncio.ensure_future(ticker())
        stored = await hash_then_signal()
        await ticks
    finally:
        hasher.close()
    # If the hash ran on the loop thread, the ticker could not have run before it finished.
    assert ticked_while_hashing
    assert passwords.verify_password("Vuelo-Alto-2024", stored)


async def test_unknown_account_costs_a_real_verification() -> None:
    hasher = passwords.Hasher(workers=1)
    try:
        await hasher.start()
        assert await hasher.verify("cualquiera", None) is False
        stored = await hasher.hash("cualquiera")
        assert await hasher.verify("cualquiera", stored) is True
    finally:
        hasher.close()
