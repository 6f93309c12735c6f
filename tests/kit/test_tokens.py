"""kit.tokens.TokenVerifier: JWKS caching and rate-limited refetch, the algorithm allow-list,
claim checks with leeway, and the FastAPI dependency."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI

from risingstars.dev.tokens import AUDIENCE, ISSUER, TokenFactory
from risingstars.kit import errors
from risingstars.kit.tokens import (
    INVALID_TOKEN,
    Claims,
    TokenError,
    TokenVerifier,
    current_claims,
    jwks_lifetime,
)

JWKS_URL = "http://auth.test/.well-known/jwks.json"


class JWKSServer:
    """A JWKS endpoint behind httpx.MockTransport that counts its fetches."""

    def __init__(self, *factories: TokenFactory) -> None:
        self.keys: list[dict] = [k for f in factories for k in f.jwks["keys"]]
        self.fetches = 0
        self.status = 200
        self.cache_control = "public, max-age=300"

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        headers = {"Cache-Control": self.cache_control}
        return httpx.Response(self.status, json={"keys": self.keys}, headers=headers)

    def verifier(self, **kw) -> TokenVerifier:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=JWKS_URL, http=http, **kw)


async def test_valid_token_gives_its_claims() -> None:
    factory = TokenFactory()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=factory.jwks)
    claims = await verifier.verify(factory.token("user-1", username="ana", city="Cali"))
    assert isinstance(claims, Claims)
    assert (claims.sub, claims.username, claims.city) == ("user-1", "ana", "Cali")
    assert claims.raw["aud"] == AUDIENCE


async def test_keys_are_fetched_once_and_cached() -> None:
    factory = TokenFactory()
    server = JWKSServer(factory)
    verifier = server.verifier()
    await verifier.ensure_keys()
    for _ in range(5):
        await verifier.verify(factory.token())
    assert server.fetches == 1


async def test_unknown_kid_refetches_and_picks_up_a_rotated_key() -> None:
    old, new = TokenFactory(), TokenFactory()
    server = JWKSServer(old)
    verifier = server.verifier(min_refetch_seconds=0)
    await verifier.ensure_keys()
    server.keys += new.jwks["keys"]  # the auth service rotated in a new key
    await verifier.verify(new.token())
    await verifier.verify(old.token())
    assert server.fetches == 2


async def test_unknown_kid_refetch_is_rate_limited() -> None:
    known = TokenFactory()
    server = JWKSServer(known)
    verifier = server.verifier(min_refetch_seconds=30)
    await verifier.ensure_keys()
    for _ in range(20):  # a flood of forged kids
        with pytest.raises(TokenError, match="unknown key id"):
            await verifier.verify(TokenFactory().token())
    assert server.fetches == 1  # the start-up fetch was less than 30 s ago


async def test_concurrent_unknown_kids_cause_a_single_fetch() -> None:
    server = JWKSServer(TokenFactory())
    verifier = server.verifier(min_refetch_seconds=30)
    results = await asyncio.gather(
        *(verifier.verify(TokenFactory().token()) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, TokenError) for r in results)
    assert server.fetches == 1


async def test_refetch_is_allowed_again_after_the_interval() -> None:
    server = JWKSServer(TokenFactory())
    verifier = server.verifier(min_refetch_seconds=0.2)
    await verifier.ensure_keys()
    stranger = TokenFactory()
    with pytest.raises(TokenError):
        await verifier.verify(stranger.token())
    fetched = server.fetches
    deadline = time.monotonic() + 10
    while server.fetches == fetched and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling interval
        with pytest.raises(TokenError):
            await verifier.verify(stranger.token())
    assert server.fetches == fetched + 1


async def test_jwks_outage_rejects_unknown_kids_and_keeps_known_keys() -> None:
    factory = TokenFactory()
    server = JWKSServer(factory)
    verifier = server.verifier(min_refetch_seconds=0)
    await verifier.ensure_keys()
    server.status = 503
    with pytest.raises(TokenError, match="unknown key id"):
        await verifier.verify(TokenFactory().token())
    assert (await verifier.verify(factory.token("still-ok"))).sub == "still-ok"


async def test_no_keys_at_all_fails_readiness() -> None:
    server = JWKSServer()
    with pytest.raises(TokenError):
        await server.verifier().ensure_keys()
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISSUER, audience=AUDIENCE)


def _other_algorithm_tokens(factory: TokenFactory) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    headers = {"kid": factory.kid}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public_raw = factory.key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "HS256-with-public-key": jwt.encode(claims, public_raw, "HS256", headers=headers),
        "RS256": jwt.encode(claims, rsa_key, "RS256", headers=headers),
        "ES256": jwt.encode(claims, ec_key, "ES256", headers=headers),
        "none": jwt.encode(claims, None, "none", headers=headers),
    }


async def test_only_allow_listed_algorithms_are_accepted() -> None:
    factory = TokenFactory()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=factory.jwks)
    for name, token in _other_algorithm_tokens(factory).items():
        with pytest.raises(TokenError):
            await verifier.verify(token)
        assert name


async def test_jwks_entries_for_other_algorithms_or_uses_are_ignored() -> None:
    factory = TokenFactory()
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        as_dict=True,
    )
    enc = {**factory.jwks["keys"][0], "kid": "enc", "use": "enc"}
    no_kid = {k: v for k, v in factory.jwks["keys"][0].items() if k != "kid"}
    document = {"keys": [{**rsa_jwk, "kid": "rsa", "alg": "RS256"}, enc, no_kid]}
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=document)
    assert not verifier.has_keys


@pytest.mark.parametrize(
    ("offsets", "accepted"),
    [
        ({"exp": -10}, True),  # expired, but within the 30 s leeway
        ({"exp": -120}, False),
        ({"nbf": 10}, True),
        ({"nbf": 120}, False),
        ({"iat": 10}, True),
        ({"iat": 120}, False),  # issued in the future
    ],
)
async def test_time_claims_are_checked_with_a_small_leeway(offsets, accepted) -> None:
    factory = TokenFactory()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=factory.jwks, leeway_seconds=30)
    now = int(time.time())
    claims = {name: now + offset for name, offset in offsets.items()}
    token = factory.token(**claims)
    if accepted:
        await verifier.verify(token)
    else:
        with pytest.raises(TokenError):
            await verifier.verify(token)


@pytest.mark.parametrize(
    "overrides",
    [{"aud": "other"}, {"iss": "other"}, {"aud": [AUDIENCE + "x"]}],
)
async def test_audience_and_issuer_must_match(overrides) -> None:
    factory = TokenFactory()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=factory.jwks)
    with pytest.raises(TokenError):
        await verifier.verify(factory.token(**overrides))


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub"])
async def test_required_claims(missing) -> None:
    factory = TokenFactory()
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=factory.jwks)
    now = int(time.time())
    claims = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 60}
    del claims[missing]
    token = jwt.encode(claims, factory.key, "EdDSA", headers={"kid": factory.kid})
    with pytest.raises(TokenError):
        await verifier.verify(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "e30.e30.", "....."])
async def test_garbage_is_a_token_error(token) -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=TokenFactory().jwks)
    with pytest.raises(TokenError):
        await verifier.verify(token)


async def test_current_claims_dependency_gives_401_with_www_authenticate() -> None:
    factory = TokenFactory()
    app = FastAPI()
    app.state.verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=factory.jwks)

    @app.get("/who")
    async def who(claims: Claims = Depends(current_claims)) -> dict[str, str]:
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/who", headers=factory.headers("me"))).json() == {"sub": "me"}
        for header in ({}, {"Authorization": "Basic x"}, {"Authorization": "Bearer bad"}):
            response = await client.get("/who", headers=header)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"


def _nested_header_token(depth: int = 100_000) -> str:
    segment = base64.urlsafe_b64encode(b"[" * depth + b"]" * depth).rstrip(b"=").decode()
    return f"{segment}.e30.c2ln"


async def test_finding_9_deeply_nested_header_is_a_token_error_not_a_crash() -> None:
    verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=TokenFactory().jwks)
    with pytest.raises(TokenError, match="malformed"):
        await verifier.verify(_nested_header_token())


async def test_finding_9_deeply_nested_header_is_401_over_http() -> None:
    app = FastAPI()
    errors.install(app)
    app.state.verifier = TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=TokenFactory().jwks)

    @app.get("/who")
    async def who(claims: Claims = Depends(current_claims)) -> dict[str, str]:
        return {"sub": claims.sub}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(
            "/who", headers={"Authorization": f"Bearer {_nested_header_token()}"}
        )
    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_TOKEN, "code": "unauthorized"}


async def test_finding_12_a_removed_key_stops_verifying_once_the_jwks_max_age_passes() -> None:
    kept, removed = TokenFactory(), TokenFactory()
    server = JWKSServer(kept, removed)
    server.cache_control = "public, max-age=1"
    verifier = server.verifier(min_refetch_seconds=0)
    await verifier.ensure_keys()
    await verifier.verify(removed.token())
    server.keys = kept.jwks["keys"]  # the auth service dropped the key
    deadline = time.monotonic() + 10
    rejected = False
    while not rejected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # polling interval
        try:
            await verifier.verify(removed.token())
        except TokenError:
            rejected = True
    assert rejected
    await verifier.verify(kept.token())


@pytest.mark.parametrize(
    ("cache_control", "expected"),
    [
        ("public, max-age=300", 300),
        ("max-age=5", 30),  # never below the refetch interval
        ("max-age=999999", 3600),  # nor above an hour
        (None, 300),
        ("no-cache", 30),
        ("max-age=nonsense", 300),
    ],
)
def test_finding_12_the_jwks_lifetime_follows_max_age_within_bounds(cache_control, expected):
    assert jwks_lifetime(cache_control, floor=30, ceiling=3600, default=300) == expected


async def test_finding_12_the_jwks_is_not_refetched_before_its_max_age() -> None:
    factory = TokenFactory()
    server = JWKSServer(factory)
    verifier = server.verifier(min_refetch_seconds=0)
    for _ in range(5):
        await verifier.verify(factory.token())
    assert server.fetches == 1
