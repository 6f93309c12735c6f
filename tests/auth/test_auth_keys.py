"""Signing keys: RFC 7638 thumbprint kids, the key directory, rotation order."""

from __future__ import annotations

import base64
import stat

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from risingstars.auth import keys

# RFC 8037, appendix A.1 and A.3: an Ed25519 key and its JWK thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_thumbprint_matches_the_rfc_8037_example() -> None:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "ignored", "use": "sig"}
    assert keys.thumbprint(jwk) == RFC8037_THUMBPRINT


def test_public_jwk_of_the_rfc_8037_private_key() -> None:
    raw = base64.urlsafe_b64decode(RFC8037_D + "=")
    jwk = keys.public_jwk(Ed25519PrivateKey.from_private_bytes(raw))
    assert jwk == {
        "kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": RFC8037_THUMBPRINT,
        "use": "sig", "alg": "EdDSA",
    }  # fmt: skip


def test_generated_keys_are_private_files_that_sort_newest_last(tmp_path) -> None:
    first = keys.generate(tmp_path)
    second = keys.generate(tmp_path)
    for key in (first, second):
        mode = (tmp_path / key.name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    ring = keys.load(tmp_path)
    assert [k.kid for k in ring.keys] == [first.kid, second.kid]
    assert ring.current.kid == second.kid
    assert [k["kid"] for k in ring.jwks()["keys"]] == [first.kid, second.kid]


def test_the_name_sorting_last_signs_whatever_its_age(tmp_path) -> None:
    generated = keys.generate(tmp_path)
    rotated_in = Ed25519PrivateKey.generate()
    (tmp_path / "zz-rotated.pem").write_bytes(
        rotated_in.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ring = keys.load(tmp_path)
    assert ring.current.name == "zz-rotated.pem"
    token = ring.sign({"sub": "x"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": ring.current.kid, "typ": "JWT"}
    assert jwt.decode(token, rotated_in.public_key(), algorithms=["EdDSA"]) == {"sub": "x"}
    assert generated.kid in {k["kid"] for k in ring.jwks()["keys"]}


def test_generate_refuses_to_write_a_key_that_would_not_sign(tmp_path) -> None:
    keys.generate(tmp_path)
    (tmp_path / "zzz.pem").write_bytes((tmp_path / keys.key_files(tmp_path)[0].name).read_bytes())
    with pytest.raises(keys.SigningKeyError, match="sorts after"):
        keys.generate(tmp_path)


def test_hidden_and_non_pem_files_are_ignored(tmp_path) -> None:
    key = keys.generate(tmp_path)
    (tmp_path / "README.txt").write_text("not a key")
    (tmp_path / "..data").mkdir()  # what a Kubernetes secret volume looks like
    (tmp_path / ".hidden.pem").write_text("garbage")
    assert [k.kid for k in keys.load(tmp_path).keys] == [key.kid]


def test_missing_or_empty_directories_are_clear_errors(tmp_path) -> None:
    with pytest.raises(keys.SigningKeyError, match="not a directory"):
        keys.load(tmp_path / "missing")
    with pytest.raises(keys.SigningKeyError, match="genkey"):
        keys.load(tmp_path)


def test_unusable_key_files_are_named_in_the_error(tmp_path) -> None:
    (tmp_path / "a.pem").write_text("-----BEGIN PRIVATE KEY-----\ngarbage\n")
    with pytest.raises(keys.SigningKeyError, match=r"a\.pem"):
        keys.load(tmp_path)
    (tmp_path / "a.pem").unlink()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "b.pem").write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(keys.SigningKeyError, match=r"b\.pem: not an Ed25519"):
        keys.load(tmp_path)
    (tmp_path / "b.pem").unlink()
    (tmp_path / "c.pem").write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(keys.SigningKeyError, match=r"c\.pem"):
        keys.load(tmp_path)
