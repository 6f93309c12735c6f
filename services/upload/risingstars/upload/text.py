"""Text rules: the city key that makes "bogota" find "Bogotá", and titles."""

from __future__ import annotations

import unicodedata

TITLE_MAX = 200
CITY_MAX = 100


def _printable(text: str) -> str:
    # Control characters (NUL above all, which PostgreSQL text refuses) are nobody's city or
    # title: dropped, whitespace ones kept for split() to fold into spaces.
    return "".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc")


# What a city or a title must hold: a character that is neither whitespace nor a control
# (stated in the API document as a pattern; the controls are spelled out because not every
# regex engine counts \x1c-\x1f and \x85 as whitespace, as str.split() does).
VISIBLE_PATTERN = r"[^\s\x00-\x1f\x7f-\x9f]"


def city_key(city: str) -> str:
    """Case- and accent-insensitive, spaces collapsed; marks alone are kept."""
    decomposed = unicodedata.normalize("NFKD", _printable(city))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)) or decomposed
    return " ".join(bare.casefold().split())


# Bidirectional controls reorder how a title displays ("gpj.exe" shown as "exe.jpg"); other
# format characters (the zero-width joiner inside emoji) are fine.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _allowed(char: str) -> bool:
    return char not in _BIDI_CONTROLS and unicodedata.category(char) not in ("Cc", "Cs")


def clean_title(raw: str) -> str | None:
    """The title to store (whitespace collapsed), or None: empty, too long, or with controls."""
    title = " ".join(raw.split())
    if not 1 <= len(title) <= TITLE_MAX or not all(map(_allowed, title)):
        return None
    return title
