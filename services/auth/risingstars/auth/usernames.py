"""Usernames for players who do not choose one: their first name and a random number
(`ana-4821`). Never the email's local part: usernames are public (video lists, rankings),
emails are not. Accounts created before this rule keep the usernames they were given."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator

from risingstars.auth.validation import USERNAME_MAX_LENGTH

_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")
_FALLBACK = "jugador"
_SUFFIX_ROOM = 9  # "-" and up to 8 digits


def base(first_name: str) -> str:
    ascii_only = unicodedata.normalize("NFKD", first_name).encode("ascii", "ignore").decode()
    cleaned = _NOT_ALLOWED.sub("-", ascii_only.lower()).strip("-")
    return cleaned[: USERNAME_MAX_LENGTH - _SUFFIX_ROOM].rstrip("-") or _FALLBACK


def candidates(first_name: str) -> Iterator[str]:
    """The name with a random number, longer each time it keeps colliding."""
    name = base(first_name)
    for digits in (4, 4, 4, 6, 6, 8, 8):
        yield f"{name}-{secrets.randbelow(10**digits):0{digits}d}"
