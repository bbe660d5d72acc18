#!/usr/bin/env bash
# Creates the roles and databases of the stack. The postgres image runs this once, on the
# first start of an empty data volume (it is mounted into /docker-entrypoint-initdb.d/);
# the statements are idempotent, so running it again against a live server is harmless.
#
#   airflow        owns the Airflow metadata database (and the Celery result backend)
#   liquidity      owns the liquidity database: migrations, ingest and training write as it
#   liquidity_web  may connect to the liquidity database and read it, nothing else
#                  (SELECT only, on every table the owner creates; read-only transactions)
#
# Passwords come from the environment and are never printed. psql quotes every name and
# password it substitutes (:"name" and :'value'), so no value can change the SQL.
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD must be set}"
: "${LIQUIDITY_DB_PASSWORD:?LIQUIDITY_DB_PASSWORD must be set}"
: "${LIQUIDITY_WEB_DB_PASSWORD:?LIQUIDITY_WEB_DB_PASSWORD must be set}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v airflow_db="${AIRFLOW_DB_NAME:-airflow}" \
    -v airflow_user="${AIRFLOW_DB_USER:-airflow}" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v liquidity_db="${LIQUIDITY_DB_NAME:-liquidity}" \
    -v liquidity_user="${LIQUIDITY_DB_USER:-liquidity}" \
    -v liquidity_password="$LIQUIDITY_DB_PASSWORD" \
    -v web_user="${LIQUIDITY_WEB_DB_USER:-liquidity_web}" \
    -v web_password="$LIQUIDITY_WEB_DB_PASSWORD" <<'SQL'
-- Roles: log in with a password, nothing more (no superuser, createdb or createrole).
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'airflow_user', :'airflow_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'liquidity_user', :'liquidity_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'liquidity_user') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'web_user', :'web_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'web_user') \gexec

-- One database each, owned by its writer; nobody else may connect by default.
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'airflow_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'liquidity_db', :'liquidity_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'liquidity_db') \gexec
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"liquidity_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"liquidity_db" TO :"web_user";

-- The web role: every session is read-only, whatever the client asks.
ALTER ROLE :"web_user" SET default_transaction_read_only = on;

\connect :"liquidity_db"
-- Only the owner creates objects; the web role may read what the owner creates, now or later.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"liquidity_user";
GRANT USAGE ON SCHEMA public TO :"web_user";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"web_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"liquidity_user" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"web_user";
SQL

echo "init-databases: roles and databases are ready"
