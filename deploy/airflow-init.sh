#!/usr/bin/env bash
# One-shot initialisation, run by the `airflow-init` service before anything else starts.
#
# Started as root (compose's `user: "0:0"`, as in Airflow's official file), it creates the
# shared folders and chowns them to AIRFLOW_UID:0: named volumes and the ingest bind mount
# (which Docker creates root-owned when the host folder is missing). Then it runs itself
# again as AIRFLOW_UID:0, never as root, to check that those folders are writable, migrate
# the Airflow metadata database, apply the liquidity database's migrations (as the owner
# role) and, when _AIRFLOW_WWW_USER_CREATE=true, create the Airflow login (FAB auth
# manager) from _AIRFLOW_WWW_USER_USERNAME / _AIRFLOW_WWW_USER_PASSWORD, or set that
# password again if the user exists, so the password in .env is always the one that works.
set -euo pipefail

: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?the Airflow metadata database URL must be set}"
: "${LIQUIDITY_DATABASE_URL:?LIQUIDITY_DATABASE_URL must be set}"

shared_dirs=(
    "${LIQUIDITY_MODEL_DIR:?}"
    "${LIQUIDITY_INGEST_DIR:?}"
    "${LIQUIDITY_VAR_DIR:?}/report"
    "${AIRFLOW_HOME:?}/logs"
)

if [ "$(id -u)" = 0 ]; then
    uid="${AIRFLOW_UID:-}"
    if ! [[ "$uid" =~ ^[0-9]+$ ]] || [ "$uid" = 0 ]; then
        echo "airflow-init: refusing to run as root; set AIRFLOW_UID to a non-zero uid" >&2
        exit 1
    fi
    echo "airflow-init: preparing the shared folders for uid $uid, group 0"
    mkdir -p "${shared_dirs[@]}"
    chown -R "$uid:0" "${shared_dirs[@]}"
    chmod g+rwX "${shared_dirs[@]}"
    export HOME="${AIRFLOW_HOME}"
    exec setpriv --reuid="$uid" --regid=0 --clear-groups bash "${BASH_SOURCE[0]}" "$@"
fi

echo "airflow-init: running as uid $(id -u), gid $(id -g)"
for dir in "${shared_dirs[@]}"; do
    if ! [ -d "$dir" ] || ! [ -w "$dir" ]; then
        echo "airflow-init: $dir is not a folder writable by uid $(id -u)." >&2
        echo "  For the ingest folder on the host: mkdir -p <dir> && chown $(id -u):0 <dir>" >&2
        exit 1
    fi
done

airflow db migrate
liquidity db upgrade

if [ "${_AIRFLOW_WWW_USER_CREATE:-false}" = true ]; then
    user="${_AIRFLOW_WWW_USER_USERNAME:?_AIRFLOW_WWW_USER_USERNAME must be set}"
    : "${_AIRFLOW_WWW_USER_PASSWORD:?_AIRFLOW_WWW_USER_PASSWORD must be set}"
    role="${_AIRFLOW_WWW_USER_ROLE:-Admin}"
    if ! created=$(airflow users create \
        --username "$user" \
        --password "$_AIRFLOW_WWW_USER_PASSWORD" \
        --role "$role" \
        --firstname "${_AIRFLOW_WWW_USER_FIRSTNAME:-Airflow}" \
        --lastname "${_AIRFLOW_WWW_USER_LASTNAME:-Admin}" \
        --email "${_AIRFLOW_WWW_USER_EMAIL:-airflowadmin@example.com}" 2>&1); then
        printf '%s\n' "$created" >&2
        exit 1
    fi
    if grep -q "already exist" <<<"$created"; then
        airflow users reset-password --username "$user" --password "$_AIRFLOW_WWW_USER_PASSWORD" \
            >/dev/null
        echo "airflow-init: user $user exists; its password is the one in .env"
    else
        echo "airflow-init: created the $role user $user"
    fi
fi
echo "airflow-init: done"
