"""The auth service's configuration, read once from the environment at start-up."""

from __future__ import annotations

import dataclasses

from risingstars.kit import settings as kit_settings
from risingstars.kit.settings import HTTPSettings, TokenSettings


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings(HTTPSettings, TokenSettings):
    database_url: str
    auth_signing_keys_dir: str
    access_token_ttl_seconds: int = 3600
    refresh_token_ttl_seconds: int = 2_592_000
    # A spent refresh token presented again this soon yields the same successor (two requests
    # of one client refreshing at once); later it revokes its family. 0 turns the grace off.
    refresh_token_grace_seconds: int = 5
    login_max_failures: int = 5
    login_max_failures_per_ip: int = 50
    login_window_seconds: int = 900
    password_min_length: int = 8
    # Signups (each costs a slow password hash) per client address and window; `make run` and
    # load tests, whose clients all share one address, raise it.
    signup_max_per_ip: int = 10
    signup_window_seconds: int = 3600
    db_pool_size: int = 10

    def validate(self) -> None:
        at_least_one = (
            "access_token_ttl_seconds",
            "refresh_token_ttl_seconds",
            "login_max_failures",
            "login_max_failures_per_ip",
            "login_window_seconds",
            "password_min_length",
            "signup_max_per_ip",
            "signup_window_seconds",
            "db_pool_size",
        )
        bad = [name.upper() for name in at_least_one if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"{', '.join(bad)} must be at least 1")
        if not 0 <= self.refresh_token_grace_seconds <= 60:
            raise ValueError("REFRESH_TOKEN_GRACE_SECONDS must be between 0 and 60")


def load() -> Settings:
    return kit_settings.load(Settings)
