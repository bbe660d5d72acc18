#!/usr/bin/env bash
# One-shot initialisation, run by the `airflow-init` service before anything else starts:
# migrate the Airflow metadata database, apply the liquidity database's sql/ migrations
# (as the owner role), and check that the shared folders are writable by this user.
set -euo pipefail

: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?the Airflow metadata database URL must be set}"
: "${LIQUIDITY_DATABASE_URL:?LIQUIDITY_DATABASE_URL must be set}"

if [ "$(id -u)" = 0 ]; then
    echo "airflow-init: refusing to run as root; set AIRFLOW_UID to a non-zero uid" >&2
    exit 1
fi
echo "airflow-init: running as uid $(id -u), gid $(id -g)"
airflow db migrate
liquidity db upgrade

for dir in "${LIQUIDITY_MODEL_DIR:?}" "${LIQUIDITY_INGEST_DIR:?}" "${LIQUIDITY_VAR_DIR:?}/report" \
        "${AIRFLOW_HOME:?}/logs"; do
    if ! [ -d "$dir" ] || ! [ -w "$dir" ]; then
        echo "airflow-init: $dir is not a folder writable by uid $(id -u)." >&2
        echo "  For the ingest folder on the host: mkdir -p <dir> && chown $(id -u):0 <dir>" >&2
        exit 1
    fi
done
echo "airflow-init: done"
