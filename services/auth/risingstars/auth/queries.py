"""The auth service's SQL. Every value travels as a bind parameter, never inside the text."""

# Names like *_TOKEN and *_PASSWORD_* hold SQL, not secrets.
# ruff: noqa: S105

from __future__ import annotations

USER_COLUMNS = "id, email, username, first_name, last_name, city, country, created_at"

EMAIL_TAKEN = "SELECT EXISTS (SELECT 1 FROM auth.users WHERE lower(email) = lower($1))"

INSERT_USER = f"""
INSERT INTO auth.users
    (id, email, username, first_name, last_name, city, country, password_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {USER_COLUMNS}
"""  # noqa: S608 (a constant column list)

USER_BY_EMAIL = f"""
SELECT {USER_COLUMNS}, password_hash FROM auth.users WHERE lower(email) = lower($1)
"""  # noqa: S608

USER_BY_ID = f"SELECT {USER_COLUMNS} FROM auth.users WHERE id = $1"  # noqa: S608

UPDATE_PASSWORD_HASH = "UPDATE auth.users SET password_hash = $2 WHERE id = $1"

# Seconds until the address or the email may try again: the window must slide past the
# failure that keeps the count at the limit (the limit-th most recent one). NULL: not throttled.
THROTTLE_WAIT = """
WITH email_limit AS (
    SELECT at FROM auth.login_failures
    WHERE email_key = $1 AND ip = $2 AND at > now() - make_interval(secs => $3)
    ORDER BY at DESC OFFSET $4 - 1 LIMIT 1
), ip_limit AS (
    SELECT at FROM auth.login_failures
    WHERE ip = $2 AND at > now() - make_interval(secs => $3)
    ORDER BY at DESC OFFSET $5 - 1 LIMIT 1
)
SELECT extract(epoch FROM greatest((SELECT at FROM email_limit), (SELECT at FROM ip_limit))
               + make_interval(secs => $3) - clock_timestamp())::float8
"""

RECORD_FAILURE = "INSERT INTO auth.login_failures (email_key, ip) VALUES ($1, $2)"

# Seconds until the address may sign up again (NULL: now), as THROTTLE_WAIT for one key.
SIGNUP_WAIT = """
SELECT extract(epoch FROM at + make_interval(secs => $2) - clock_timestamp())::float8
FROM auth.signup_attempts
WHERE ip = $1 AND at > now() - make_interval(secs => $2)
ORDER BY at DESC OFFSET $3 - 1 LIMIT 1
"""

RECORD_SIGNUP = "INSERT INTO auth.signup_attempts (ip) VALUES ($1)"

# Serializes the transactions that name the same key (released at commit or rollback).
ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"

# A correct password clears the email's count from that address only: an attacker's failures
# elsewhere keep holding the attacker back, and the address's failures against other emails
# stay (an attacker could otherwise reset them by logging in to an account of their own).
CLEAR_EMAIL_FAILURES = "DELETE FROM auth.login_failures WHERE email_key = $1 AND ip = $2"

INSERT_REFRESH_TOKEN = """
INSERT INTO auth.refresh_tokens (token_hash, family_id, user_id, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
"""

# FOR UPDATE serializes two refreshes of the same token: the second sees it spent (and, within
# the grace window of $2 seconds, finds the successor the first one sealed).
LOCK_REFRESH_TOKEN = """
SELECT t.family_id, t.user_id, t.used_at IS NOT NULL AS spent,
       t.revoked_at IS NOT NULL AS revoked, t.expires_at <= now() AS expired,
       t.used_at > now() - make_interval(secs => $2) AS in_grace, t.successor_sealed,
       u.username, u.city
FROM auth.refresh_tokens t JOIN auth.users u ON u.id = t.user_id
WHERE t.token_hash = $1
FOR UPDATE OF t
"""

SPEND_REFRESH_TOKEN = """
UPDATE auth.refresh_tokens SET used_at = now(), successor_sealed = $2 WHERE token_hash = $1
"""

REFRESH_TOKEN_LIVE = """
SELECT EXISTS (SELECT 1 FROM auth.refresh_tokens
               WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL)
"""

FAMILY_OF = "SELECT family_id FROM auth.refresh_tokens WHERE token_hash = $1"

REVOKE_FAMILY = """
UPDATE auth.refresh_tokens SET revoked_at = now()
WHERE family_id = $1 AND revoked_at IS NULL
"""

# Housekeeping: failures older than the window count for nothing; a family's tokens are kept
# until all of them expired, so reuse of a spent token is still recognized until then.
SWEEP_FAILURES = """
DELETE FROM auth.login_failures WHERE at < now() - make_interval(secs => $1)
"""

SWEEP_SIGNUPS = """
DELETE FROM auth.signup_attempts WHERE at < now() - make_interval(secs => $1)
"""

# A sealed successor is only needed within the grace window (at most a minute).
SWEEP_SEALED_SUCCESSORS = """
UPDATE auth.refresh_tokens SET successor_sealed = NULL
WHERE successor_sealed IS NOT NULL AND used_at < now() - interval '1 minute'
"""

SWEEP_REFRESH_TOKENS = """
DELETE FROM auth.refresh_tokens t
WHERE t.expires_at < now()
  AND NOT EXISTS (SELECT 1 FROM auth.refresh_tokens o
                  WHERE o.family_id = t.family_id AND o.expires_at >= now())
"""
