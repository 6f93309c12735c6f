"""Request bodies: parsed and checked here, with Spanish messages that name the field.

Every text field is stripped and NFC-normalized, bounded in length, and refused when it holds
control characters or lone surrogates (PostgreSQL cannot store NUL, UTF-8 cannot encode a lone
surrogate: either would otherwise surface as a 500).
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from typing import Any

from fastapi import HTTPException, Request

PASSWORD_MAX_LENGTH = 256
EMAIL_MAX_LENGTH = 254
NAME_MAX_LENGTH = 100
USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 30
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


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


async def json_object(request: Request) -> dict[str, Any]:
    """FastAPI dependency: the request body as a JSON object, or 400."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise bad_request("El cuerpo debe ser JSON (Content-Type: application/json)")
    body = await request.body()
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and bad JSON alike
        raise bad_request("JSON inválido en el cuerpo de la petición") from None
    if not isinstance(data, dict):
        raise bad_request("El cuerpo debe ser un objeto JSON")
    return data


def _invalid(field: str, reason: str) -> HTTPException:
    return bad_request(f"Campo inválido: {field}: {reason}")


def _raw_string(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(field, "debe ser un texto")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise _invalid(field, "contiene caracteres no válidos")
    return value


def _printable(value: str) -> bool:
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc" or (category == "Cf" and char not in _ALLOWED_FORMAT):
            return False
    return True


def optional_text(
    data: dict[str, Any], field: str, *, max_length: int = NAME_MAX_LENGTH
) -> str | None:
    raw = _raw_string(data, field)
    value = unicodedata.normalize("NFC", raw).strip() if raw is not None else ""
    if not value:
        return None
    if len(value) > max_length:
        raise _invalid(field, f"máximo {max_length} caracteres")
    if not _printable(value):
        raise _invalid(field, "contiene caracteres de control")
    return value


def text(data: dict[str, Any], field: str, *, max_length: int = NAME_MAX_LENGTH) -> str:
    value = optional_text(data, field, max_length=max_length)
    if value is None:
        raise bad_request(f"Campo requerido: {field}")
    return value


def password(data: dict[str, Any], field: str) -> str:
    value = _raw_string(data, field)
    if not value:
        raise bad_request(f"Campo requerido: {field}")
    if len(value) > PASSWORD_MAX_LENGTH:
        raise _invalid(field, f"máximo {PASSWORD_MAX_LENGTH} caracteres")
    return value


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


def email(data: dict[str, Any], field: str = "email") -> str:
    value = text(data, field, max_length=EMAIL_MAX_LENGTH)
    if not is_email(value):
        raise _invalid(field, "no es una dirección de correo válida")
    return value


def username(data: dict[str, Any], field: str = "username") -> str | None:
    value = optional_text(data, field, max_length=USERNAME_MAX_LENGTH)
    if value is None:
        return None
    if len(value) < USERNAME_MIN_LENGTH or not _USERNAME.fullmatch(value):
        raise _invalid(
            field,
            f"entre {USERNAME_MIN_LENGTH} y {USERNAME_MAX_LENGTH} caracteres: letras, números, "
            "'.', '_' o '-'",
        )
    return value


def weak_password_reason(value: str, min_length: int, *, email_address: str) -> str | None:
    if len(value) < min_length:
        return f"La contraseña debe tener al menos {min_length} caracteres"
    lowered = value.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) < 3:
        return "La contraseña es demasiado común o fácil de adivinar"
    if lowered in {email_address.lower(), email_address.lower().partition("@")[0]}:
        return "La contraseña no puede ser igual a su email"
    return None


@dataclasses.dataclass(frozen=True)
class SignupForm:
    first_name: str
    last_name: str
    email: str
    password: str
    city: str
    country: str
    username: str | None


def signup_form(data: dict[str, Any], *, password_min_length: int) -> SignupForm:
    first_name = text(data, "first_name")
    last_name = text(data, "last_name")
    address = email(data)
    password1 = password(data, "password1")
    password2 = password(data, "password2")
    city = text(data, "city")
    country = text(data, "country")
    chosen = username(data)
    if password1 != password2:
        raise bad_request("Las contraseñas no coinciden")
    reason = weak_password_reason(password1, password_min_length, email_address=address)
    if reason:
        raise bad_request(reason)
    return SignupForm(first_name, last_name, address, password1, city, country, chosen)


@dataclasses.dataclass(frozen=True)
class Credentials:
    email: str
    password: str


def credentials(data: dict[str, Any]) -> Credentials:
    # No format check: a malformed email simply matches no account (same 401 as any other).
    address = text(data, "email", max_length=EMAIL_MAX_LENGTH)
    secret = password(data, "password")
    return Credentials(address, secret)


def refresh_token(data: dict[str, Any]) -> str:
    return text(data, "refresh_token", max_length=TOKEN_MAX_LENGTH)
