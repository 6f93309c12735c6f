"""Configuration read once, from the environment, validated at start-up.

A service declares its settings as a frozen dataclass; each field is read from the environment
variable of the same name in upper case (`database_url` from `DATABASE_URL`). `load` reads,
converts and validates them, and fails with one error that names every missing or bad variable.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping


class SettingsError(Exception):
    """One or more environment variables are missing or invalid."""


def _convert(raw: str, kind: typing.Any) -> typing.Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError("expected true/false")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind is str:
        return raw
    if typing.get_origin(kind) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    raise TypeError(f"unsupported settings type {kind!r}")


def _unwrap_optional(kind: typing.Any) -> tuple[typing.Any, bool]:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return kind, False


T = typing.TypeVar("T")


def load(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
    """Build `cls` (a dataclass) from the environment; raise SettingsError naming every problem."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, typing.Any] = {}
    problems: list[str] = []
    for field in dataclasses.fields(cls):
        name = field.name.upper()
        kind, optional = _unwrap_optional(hints[field.name])
        raw = env.get(name)
        if raw is None or (raw == "" and optional):
            has_default = (
                field.default is not dataclasses.MISSING
                or field.default_factory is not dataclasses.MISSING
            )
            if not has_default and not optional:
                problems.append(f"{name} is required")
            elif not has_default:
                values[field.name] = None
            continue
        try:
            values[field.name] = _convert(raw, kind)
        except (TypeError, ValueError) as exc:
            problems.append(f"{name}={raw!r} is invalid: {exc}")
    if not problems:
        try:
            settings = cls(**values)
            check = getattr(settings, "validate", None)
            if check is not None:
                check()
            return settings
        except ValueError as exc:
            problems.append(str(exc))
    raise SettingsError("invalid configuration: " + "; ".join(problems))


@dataclasses.dataclass(frozen=True)
class HTTPSettings:
    """What every HTTP service reads: port, logs, and the shutdown timings."""

    port: int = 8080
    log_level: str = "info"
    # Readiness fails for this long before the server stops accepting: endpoint removal
    # (kube-proxy, the ALB target group) races SIGTERM.
    drain_seconds: float = 5.0
    shutdown_timeout_seconds: float = 20.0
    # Above the ALB's 60 s idle timeout, or the ALB reuses connections we already closed (502s).
    keepalive_seconds: int = 75
    # Proxies whose X-Forwarded-For is believed (the ingress); everyone else's is ignored, so a
    # client cannot choose the address that login throttling counts.
    forwarded_allow_ips: str = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class TokenSettings:
    jwt_issuer: str = "rising-stars-auth"
    jwt_audience: str = "rising-stars-api"


@dataclasses.dataclass(frozen=True)
class AWSSettings:
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
