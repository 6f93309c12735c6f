"""What each service reads from its environment: docs/conventions.md (the contract) and the
services' own settings dataclasses (field name = upper-cased variable name)."""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from pathlib import Path

CONVENTIONS = Path(__file__).resolve().parents[2] / "docs" / "conventions.md"
SERVICES = ("auth", "upload", "processor", "operator", "web")
HTTP_SERVICES = ("auth", "upload", "processor", "web")
_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
_OPTIONAL = re.compile(r"`([A-Z][A-Z0-9_]+)`\s*\(optional")


@dataclasses.dataclass(frozen=True)
class Contract:
    variables: frozenset[str]
    optional: frozenset[str]


def _section(text: str, label: str) -> str:
    match = re.search(rf"^{label}:(.*?)(?=^\S+:|^\||\Z)", text, re.M | re.S)
    assert match, f"docs/conventions.md has no '{label}:' paragraph"
    return match.group(1)


def conventions() -> dict[str, Contract]:
    """Variables per service: its table row plus the common, AWS and token paragraphs where the
    service's settings class reads them."""
    text = CONVENTIONS.read_text()
    env = text[text.index("## Environment") :]
    env = env[: env.index("\n## ", 1)]
    common = _section(env, "Common")
    aws = _section(env, "AWS")
    tokens = _section(env, "Tokens")
    contracts = {}
    for service in SERVICES:
        # A service may have several rows (one per concern); together they are its contract.
        rows = " ".join(re.findall(rf"^\| {service} \|(.*)\|\s*$", env, re.M))
        assert rows, f"docs/conventions.md has no row for {service}"
        names = set(_NAME.findall(rows))
        optional = set(_OPTIONAL.findall(rows))
        fields = settings_fields(service)
        if service in HTTP_SERVICES:
            names |= set(_NAME.findall(common))
        if "AWS_REGION" in fields:
            names |= set(_NAME.findall(aws))
            optional |= set(_OPTIONAL.findall(aws))
        if "JWT_ISSUER" in fields:
            names |= set(_NAME.findall(tokens))
        contracts[service] = Contract(frozenset(names), frozenset(optional))
    return contracts


def _dataclasses(service: str) -> list[type]:
    module = importlib.import_module(f"risingstars.{service}.settings")
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == module.__name__
    ]


def _optional(hint: typing.Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(hint)


def settings_fields(service: str) -> set[str]:
    """Every variable any settings class of the service reads."""
    return {f.name.upper() for cls in _dataclasses(service) for f in dataclasses.fields(cls)}


def required_fields(service: str) -> set[str]:
    """Variables without a default, for the service."""
    return _required(_dataclasses(service))


def migrate_required_fields() -> set[str]:
    """Variables without a default for `migrate` (the kit's, the same for every service)."""
    from risingstars.kit.db import MigrateSettings

    return _required([MigrateSettings])


def _required(chosen: list[type]) -> set[str]:
    required = set()
    for cls in chosen:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            if not has_default and not _optional(hints[f.name]):
                required.add(f.name.upper())
    return required
