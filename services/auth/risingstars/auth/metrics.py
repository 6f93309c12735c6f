"""The auth service's own Prometheus metrics (HTTP metrics come from the kit)."""

from __future__ import annotations

from prometheus_client import Counter

SIGNUPS = Counter("auth_signups_total", "Accounts created")
SIGNUPS_THROTTLED = Counter(
    "auth_signups_throttled_total", "Signups refused because their address signed up too often"
)
LOGINS = Counter("auth_logins_total", "Login attempts by outcome", ["outcome"])
TOKENS_ISSUED = Counter(
    "auth_tokens_issued_total", "Access tokens issued, by grant (password or refresh)", ["grant"]
)
REFRESHES = Counter("auth_token_refreshes_total", "Refresh attempts by outcome", ["outcome"])

LOGIN_OUTCOMES = ("success", "invalid_credentials", "throttled")
REFRESH_OUTCOMES = ("rotated", "repeated", "unknown", "expired", "revoked", "reused")

# Every series exists from the start, so rates and alerts see zeros instead of gaps.
for _outcome in LOGIN_OUTCOMES:
    LOGINS.labels(_outcome)
for _outcome in REFRESH_OUTCOMES:
    REFRESHES.labels(_outcome)
for _grant in ("password", "refresh"):
    TOKENS_ISSUED.labels(_grant)
