"""Usernames: the rules a chosen one follows, and one for players who do not choose: their first
name and a random number (`ana-4821`). Never the email's local part: usernames are public (video
lists, rankings), emails are not. Accounts created before these rules keep their usernames.

Because they are public, a chosen username must not pass for someone else's: it is NFKC-
normalized (fullwidth and stylized letters become plain ones) and its letters may not mix
scripts beyond the combinations Unicode's "highly restrictive" profile allows (UTS #39: one
script, or Latin with Han and the Japanese or Korean scripts). `Ana` in Latin with a Cyrillic
`а` is refused; `Muñoz.张` is not."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator

USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 30

_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")
_FALLBACK = "jugador"
_SUFFIX_ROOM = 9  # "-" and up to 8 digits


_HAN = {"CJK", "IDEOGRAPHIC"}
# Script sets a name may combine (beyond a single script), from UTS #39's highly restrictive
# level; Common characters (ASCII digits, '.', '_', '-') and combining marks belong to any.
_ALLOWED_MIXES = (
    {"LATIN", *_HAN, "HIRAGANA", "KATAKANA"},
    {"LATIN", *_HAN, "BOPOMOFO"},
    {"LATIN", *_HAN, "HANGUL"},
)


def normalize(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


def _script(char: str) -> str | None:
    if char.isascii() and not char.isalpha():
        return None  # digits and punctuation: any script
    if unicodedata.category(char).startswith("M"):
        return None  # a combining mark takes the script of its base
    # The first word of a character's name is its script for letters and digits ("LATIN SMALL
    # LETTER A", "CYRILLIC SMALL LETTER A", "CJK UNIFIED IDEOGRAPH-5F20", "ARABIC-INDIC DIGIT
    # ONE"); an unnamed (unassigned) character is a script of its own.
    return unicodedata.name(char, "UNNAMED").split(" ", 1)[0]


def mixes_scripts(name: str) -> bool:
    scripts = {script for char in name if (script := _script(char)) is not None}
    if len(scripts) <= 1:
        return False
    return not any(scripts <= allowed for allowed in _ALLOWED_MIXES)


def base(first_name: str) -> str:
    ascii_only = unicodedata.normalize("NFKD", first_name).encode("ascii", "ignore").decode()
    cleaned = _NOT_ALLOWED.sub("-", ascii_only.lower()).strip("-")
    return cleaned[: USERNAME_MAX_LENGTH - _SUFFIX_ROOM].rstrip("-") or _FALLBACK


def candidates(first_name: str) -> Iterator[str]:
    """The name with a random number, longer each time it keeps colliding."""
    name = base(first_name)
    for digits in (4, 4, 4, 6, 6, 8, 8):
        yield f"{name}-{secrets.randbelow(10**digits):0{digits}d}"
