-- One row per signup that reached the password hash; throttling counts them per address over a
-- window (every signup costs a deliberately slow hash: an unauthenticated CPU sink otherwise).
CREATE TABLE auth.signup_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ip text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX signup_attempts_ip ON auth.signup_attempts (ip, at);
CREATE INDEX signup_attempts_at ON auth.signup_attempts (at);
