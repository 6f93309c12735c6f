"""Ed25519 signing keys: loaded from a directory of PEM files, published as a JWK Set, and
used to sign access tokens. The `kid` is the key's RFC 7638 thumbprint.

Every `*.pem` file is published; the one whose name sorts last signs. Rotation without a moment
where a replica signs with a key another replica does not publish yet:
1. add the new key under a name that sorts *first* (published, not signing); roll out;
2. rename it to sort last (`genkey` names keys by UTC time); roll out: it signs from now on;
3. delete the old key once the access-token TTL has passed.
Verifiers in other services refetch the JWKS when they meet an unknown `kid` and when its
`max-age` (routes/jwks.py) has passed, so a deleted key stops verifying within that time.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ALGORITHM = "EdDSA"

# RFC 7638 §3.2: the members a thumbprint hashes, per key type.
_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}


class SigningKeyError(Exception):
    """The key directory or one of its files is unusable; the message names it."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a `kid` every party can recompute."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(private: Ed25519PrivateKey) -> dict[str, str]:
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    return {**jwk, "kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


@dataclasses.dataclass(frozen=True)
class SigningKey:
    name: str
    private: Ed25519PrivateKey
    jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.jwk["kid"]


class KeyRing:
    """Every loaded key is published; the one whose file name sorts last signs."""

    def __init__(self, keys: list[SigningKey]) -> None:
        if not keys:
            raise SigningKeyError("no signing keys")
        self.keys = keys
        self.current = keys[-1]
        self._jwks = {"keys": [k.jwk for k in keys]}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(k) for k in self._jwks["keys"]]}

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(
            dict(claims),
            self.current.private,
            algorithm=ALGORITHM,
            headers={"kid": self.current.kid, "typ": "JWT"},
        )


def load_key(path: Path) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise SigningKeyError(
            f"{path}: not a readable unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 private key")
    return SigningKey(path.name, private, public_jwk(private))


def key_files(directory: Path) -> list[Path]:
    # Names starting with "." are Kubernetes secret-volume internals (..data and friends).
    return sorted(p for p in directory.glob("*.pem") if not p.name.startswith(".") and p.is_file())


def load(directory: Path) -> KeyRing:
    if not directory.is_dir():
        raise SigningKeyError(f"AUTH_SIGNING_KEYS_DIR={str(directory)!r} is not a directory")
    files = key_files(directory)
    if not files:
        raise SigningKeyError(
            f"AUTH_SIGNING_KEYS_DIR={str(directory)!r} holds no *.pem key "
            "(create one with `python -m risingstars.auth genkey DIR`)"
        )
    return KeyRing([load_key(f) for f in files])


def generate(directory: Path) -> SigningKey:
    """Write a new key into `directory`, named so that it sorts after every existing one."""
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    jwk = public_jwk(private)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{stamp}-{jwk['kid'][:8]}.pem"
    if key_files(directory) and name <= key_files(directory)[-1].name:
        raise SigningKeyError(f"{directory}: an existing key sorts after {name}; rename it first")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return SigningKey(name, private, jwk)
