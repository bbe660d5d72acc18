#!/usr/bin/env bash
# Starts the Airflow api-server under Airflow's simple auth manager, with a login taken from
# the environment. docker-compose.yml does not use it (compose runs the FAB auth manager,
# whose users airflow-init creates); tests/test_distributed.py starts its api-server with it.
#
# The simple auth manager reads user passwords from a JSON file; this writes that file
# (mode 600) from AIRFLOW_ADMIN_USERNAME / AIRFLOW_ADMIN_PASSWORD before every start, so a
# changed password takes effect on restart and no password is ever generated,
# defaulted or printed. Arguments are passed on to `airflow api-server`.
set -euo pipefail

: "${AIRFLOW_ADMIN_USERNAME:?AIRFLOW_ADMIN_USERNAME must be set}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD must be set}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE must be set}"

umask 077
python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
users = {os.environ["AIRFLOW_ADMIN_USERNAME"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}
tmp = f"{path}.tmp"
with open(tmp, "w") as fh:
    json.dump(users, fh)
os.chmod(tmp, 0o600)
os.replace(tmp, path)
PY
# The password stays in this file only; the api-server does not need it in its environment.
unset AIRFLOW_ADMIN_PASSWORD
exec airflow api-server "$@"
