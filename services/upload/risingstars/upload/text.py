"""Text rules: the city key that makes "bogota" find "Bogotá", and titles."""

from __future__ import annotations

import unicodedata

TITLE_MAX = 200
CITY_MAX = 100


def _printable(text: str) -> str:
    # Control characters (NUL above all, which PostgreSQL text refuses) are nobody's city or
    # title: dropped, whitespace ones kept for split() to fold into spaces.
    return "".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc")


def city_key(city: str) -> str:
    """Case- and accent-insensitive form of a city name, with spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", _printable(city))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def clean_title(raw: str) -> str | None:
    """The title to store, or None when it is empty or too long."""
    title = " ".join(_printable(raw).split())
    if not 1 <= len(title) <= TITLE_MAX:
        return None
    return title
