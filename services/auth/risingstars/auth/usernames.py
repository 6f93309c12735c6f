"""Usernames derived from an email when the player does not choose one."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator

from risingstars.auth.validation import USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH

_NOT_ALLOWED = re.compile(r"[^a-z0-9._-]+")
_SUFFIX_ROOM = 9  # "-" and up to 8 characters


def base(email: str) -> str:
    local = email.rpartition("@")[0]
    ascii_only = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
    cleaned = _NOT_ALLOWED.sub("", ascii_only.lower()).strip("._-")
    cleaned = cleaned[: USERNAME_MAX_LENGTH - _SUFFIX_ROOM].rstrip("._-")
    if len(cleaned) < USERNAME_MIN_LENGTH:
        cleaned = f"{cleaned}jugador" if cleaned else "jugador"
    return cleaned


def candidates(email: str) -> Iterator[str]:
    """The plain name first, then with random suffixes that grow if they keep colliding."""
    name = base(email)
    yield name
    for digits in (4, 4, 6, 6, 8, 8):
        yield f"{name}-{secrets.randbelow(10**digits):0{digits}d}"
