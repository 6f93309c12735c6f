"""Password hashing: argon2id with OWASP's parameters, salts, old scrypt hashes still verifying
(and due for an upgrade), off the event loop."""

from __future__ import annotations

import asyncio
import threading

import argon2
import pytest

from risingstars.auth import passwords


def test_hash_verifies_only_the_right_password() -> None:
    stored = passwords.hash_password("Vuelo-Alto-2024")
    assert passwords.verify_password("Vuelo-Alto-2024", stored)
    assert not passwords.verify_password("vuelo-alto-2024", stored)
    assert not passwords.verify_password("", stored)


def test_new_hashes_are_argon2id_with_owasp_parameters() -> None:
    a, b = passwords.hash_password("misma"), passwords.hash_password("misma")
    assert a != b  # each has its own salt
    params = argon2.extract_parameters(a)
    assert params.type is argon2.Type.ID
    # OWASP Password Storage Cheat Sheet, first argon2id configuration: 19 MiB, 2 passes, 1 lane.
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19_456, 2, 1)
    assert params.salt_len >= 16 and params.hash_len >= 32
    assert not passwords.needs_rehash(a)


def test_old_scrypt_hashes_verify_and_need_a_rehash(scrypt_hash) -> None:
    old = scrypt_hash("Vuelo-Alto-2024", log2_n=15)
    assert passwords.verify_password("Vuelo-Alto-2024", old)
    assert not passwords.verify_password("vuelo-alto-2024", old)
    assert passwords.needs_rehash(old)


def test_weaker_argon2_parameters_need_a_rehash() -> None:
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x")
    assert passwords.verify_password("x", weak)
    assert passwords.needs_rehash(weak)


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
        "$argon2id$v=19$m=19456,t=2,p=1$bm90LWJhc2U2NA$!!",
        "$argon2id$v=19$m=99999999,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg",
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
