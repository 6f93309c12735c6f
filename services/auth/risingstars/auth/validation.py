"""Request bodies as Pydantic models, with Spanish messages that name the field.

Every text field is stripped and NFC-normalized, bounded in length, and refused when it holds
control characters or lone surrogates (PostgreSQL cannot store NUL, UTF-8 cannot encode a lone
surrogate: either would otherwise surface as a 500). The checks raise `PydanticCustomError`s
whose message is the reason; `messages.describe` turns the first error into the 400's detail
(`Campo requerido: email`, `Campo inválido: email: no es una dirección de correo válida`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from risingstars.auth import usernames
from risingstars.auth.usernames import USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH

PASSWORD_MAX_LENGTH = 256
EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 100
TOKEN_MAX_LENGTH = 512

# Joiners are part of some scripts and of emoji sequences; other format characters (bidi
# overrides, invisible separators) only serve to disguise text.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DOMAIN_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")
_USERNAME = re.compile(r"[\w.-]+")

COMMON_PASSWORDS = frozenset(
    {
        "password", "password1", "password123", "passw0rd", "contraseña", "contrasena",
        "contraseña1", "12345678", "123456789", "1234567890", "0123456789", "87654321",
        "11111111", "00000000", "qwertyui", "qwerty123", "qwertyuiop", "asdfghjk", "abcd1234",
        "iloveyou", "sunshine", "princess", "football", "baseball", "basketball", "welcome1",
        "admin123", "letmein1", "trustno1", "superman", "1q2w3e4r", "zaq12wsx", "abc12345",
        "q1w2e3r4", "aa123456", "password!", "changeme", "teamomucho",
    }
)  # fmt: skip


# Error types the messages module knows: a required field is absent or empty, or invalid.
MISSING = "missing"
INVALID = "invalid"


def _invalid(reason: str) -> PydanticCustomError:
    return PydanticCustomError(INVALID, reason)


def _missing() -> PydanticCustomError:
    return PydanticCustomError(MISSING, "Campo requerido")


def _raw_string(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid("debe ser un texto")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise _invalid("contiene caracteres no válidos")
    return value


def _unprintable_class() -> str:
    """A regex character class of the control and format characters refused in text (joiners
    aside), built from this Python's Unicode data so the OpenAPI pattern and the check agree."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) in ("Cc", "Cf") and char not in _ALLOWED_FORMAT:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


_UNPRINTABLE = _unprintable_class()
# What the document states for a required text field: some visible character, no control or
# format character (surrounding spaces are stripped by the service).
TEXT_PATTERN = f"^[^{_UNPRINTABLE}]*[^\\s{_UNPRINTABLE}][^{_UNPRINTABLE}]*$"
_HAS_UNPRINTABLE = re.compile(f"[{_UNPRINTABLE}]")


def _printable(value: str) -> bool:
    return _HAS_UNPRINTABLE.search(value) is None


def _optional_text(value: Any, max_length: int) -> str | None:
    raw = _raw_string(value)
    text = unicodedata.normalize("NFC", raw).strip() if raw is not None else ""
    if not text:
        return None
    if len(text) > max_length:
        raise _invalid(f"máximo {max_length} caracteres")
    if not _printable(text):
        raise _invalid("contiene caracteres de control")
    return text


def _text(max_length: int):
    def check(value: Any) -> str:
        text = _optional_text(value, max_length)
        if text is None:
            raise _missing()
        return text

    return check


def _password(value: Any) -> str:
    raw = _raw_string(value)
    if not raw:
        raise _missing()
    if len(raw) > PASSWORD_MAX_LENGTH:
        raise _invalid(f"máximo {PASSWORD_MAX_LENGTH} caracteres")
    return raw


def is_email(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    if not at or len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        return False
    labels = domain.split(".")
    return (
        len(labels) >= 2
        and all(_DOMAIN_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _email(value: Any) -> str:
    address = _text(EMAIL_MAX_LENGTH)(value)
    if not is_email(address):
        raise _invalid("no es una dirección de correo válida")
    return address


def _username(value: Any) -> str | None:
    name = _optional_text(value, USERNAME_MAX_LENGTH)
    if name is None:
        return None
    name = usernames.normalize(name)
    if not (USERNAME_MIN_LENGTH <= len(name) <= USERNAME_MAX_LENGTH) or not _USERNAME.fullmatch(
        name
    ):
        raise _invalid(
            f"entre {USERNAME_MIN_LENGTH} y {USERNAME_MAX_LENGTH} caracteres: letras, números, "
            "'.', '_' o '-'"
        )
    if usernames.mixes_scripts(name):
        raise _invalid("no puede mezclar alfabetos distintos (por ejemplo latino y cirílico)")
    return name


def _text_field(max_length: int, **extra: Any) -> Any:
    # The pattern is stated, not enforced by pydantic: `_text` is the check, of the same class.
    return Field(
        min_length=1, max_length=max_length, json_schema_extra={"pattern": TEXT_PATTERN}, **extra
    )


Name = Annotated[str, BeforeValidator(_text(NAME_MAX_LENGTH)), _text_field(NAME_MAX_LENGTH)]
Password = Annotated[
    str, BeforeValidator(_password), Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)
]
Email = Annotated[
    str,
    BeforeValidator(_email),
    _text_field(EMAIL_MAX_LENGTH, examples=["ana@example.com"]),
]
# Login takes any text: a malformed email simply matches no account (the same 401 as any other).
LoginEmail = Annotated[str, BeforeValidator(_text(EMAIL_MAX_LENGTH)), _text_field(EMAIL_MAX_LENGTH)]
Username = Annotated[
    str | None,
    BeforeValidator(_username),
    Field(
        description=f"{USERNAME_MIN_LENGTH} to {USERNAME_MAX_LENGTH} letters, digits, '.', '_' "
        "or '-', NFKC-normalized, letters of one script (or Latin with Han, Kana or Hangul). "
        "Optional: when absent, one is made from the first name and a number.",
    ),
]
RefreshToken = Annotated[
    str, BeforeValidator(_text(TOKEN_MAX_LENGTH)), _text_field(TOKEN_MAX_LENGTH)
]


def weak_password_reason(value: str, min_length: int, *, email_address: str) -> str | None:
    if len(value) < min_length:
        return f"La contraseña debe tener al menos {min_length} caracteres"
    lowered = value.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 3:
        return "La contraseña es demasiado común o fácil de adivinar"
    if lowered in {email_address.lower(), email_address.lower().partition("@")[0]}:
        return "La contraseña no puede ser igual a su email"
    return None


class SignupForm(BaseModel):
    # Fields are checked in this order; the first problem is the one reported.
    first_name: Name
    last_name: Name
    email: Email
    password1: Password
    password2: Password
    city: Name
    country: Name
    username: Username = None

    @model_validator(mode="after")
    def _passwords_match(self) -> SignupForm:
        if self.password1 != self.password2:
            raise PydanticCustomError(INVALID, "Las contraseñas no coinciden")
        return self

    @property
    def password(self) -> str:
        return self.password1


class Credentials(BaseModel):
    email: LoginEmail
    password: Password


class RefreshRequest(BaseModel):
    refresh_token: RefreshToken
