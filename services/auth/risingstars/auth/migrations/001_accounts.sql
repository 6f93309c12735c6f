-- Accounts, refresh-token families and login failures, in their own schema so the auth
-- service's tables never collide with another service sharing the database.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    username text NOT NULL,
    first_name text NOT NULL,
    last_name text NOT NULL,
    city text NOT NULL,
    country text NOT NULL,
    password_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- Case-insensitive uniqueness; lookups use the same lower() so they hit these indexes.
CREATE UNIQUE INDEX users_email_key ON auth.users (lower(email));
CREATE UNIQUE INDEX users_username_key ON auth.users (lower(username));

-- Opaque refresh tokens, stored as SHA-256. Each login starts a family; every refresh spends
-- one token and adds the next. Presenting a spent token again revokes the whole family.
CREATE TABLE auth.refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id uuid NOT NULL,
    user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON auth.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires ON auth.refresh_tokens (expires_at);

-- One row per failed login; throttling counts them per email and per address over a window,
-- so the limit holds across replicas.
CREATE TABLE auth.login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_key text NOT NULL,
    ip text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_failures_email ON auth.login_failures (email_key, at);
CREATE INDEX login_failures_ip ON auth.login_failures (ip, at);
CREATE INDEX login_failures_at ON auth.login_failures (at);
