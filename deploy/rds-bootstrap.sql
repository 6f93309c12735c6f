-- Rising Stars: the database, one login and one schema per service, on a fresh RDS PostgreSQL
-- (15+). Run once, with psql, as the instance's master user, which on RDS is NOT a superuser
-- (it has CREATEROLE and CREATEDB):
--
--   psql "host=HOST port=5432 dbname=postgres user=MASTER sslmode=require" \
--     -v ON_ERROR_STOP=1 -v auth_password="$AUTH_PASSWORD" -v upload_password="$UPLOAD_PASSWORD" \
--     -f deploy/rds-bootstrap.sql
--
-- The passwords come in as psql variables so they are never written into this file or a
-- shell history line of SQL. tests/deploy runs this file verbatim as such a master.

CREATE ROLE rs_auth LOGIN PASSWORD :'auth_password';
CREATE ROLE rs_upload LOGIN PASSWORD :'upload_password';

-- `CREATE SCHEMA ... AUTHORIZATION role` needs the creator to be able to SET ROLE to that
-- role. A superuser always can; RDS's master cannot until it is a member of the role
-- ("must be able to SET ROLE", or "must be member of role" before PostgreSQL 16).
GRANT rs_auth TO CURRENT_USER;
GRANT rs_upload TO CURRENT_USER;

CREATE DATABASE risingstars;
-- Only the services connect; the master keeps its owner's rights.
REVOKE ALL ON DATABASE risingstars FROM PUBLIC;
GRANT CONNECT ON DATABASE risingstars TO rs_auth, rs_upload;

\connect risingstars

CREATE SCHEMA auth AUTHORIZATION rs_auth;
CREATE SCHEMA upload AUTHORIZATION rs_upload;
ALTER ROLE rs_auth IN DATABASE risingstars SET search_path = auth;
ALTER ROLE rs_upload IN DATABASE risingstars SET search_path = upload;

-- auth's first migration runs `CREATE SCHEMA IF NOT EXISTS auth`, and PostgreSQL checks CREATE
-- on the database before it notices the schema exists ("permission denied for database
-- risingstars"). upload's migrations create no schema, so only auth gets it.
GRANT CREATE ON DATABASE risingstars TO rs_auth;
