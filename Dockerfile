# syntax=docker/dockerfile:1
# One image for every service of docker-compose.yml: the Airflow components (scheduler,
# dag-processor, api-server, triggerer, Celery worker) and the web app (gunicorn).
#
#   docker build -t crypto-liquidity .
#
# The Python packages are the repository's runtime lock (requirements.txt, compiled from
# pyproject.toml by `make lock`: no pytest, selenium or schemathesis; those are in
# requirements-dev.txt), installed exactly;
# the project itself is installed in editable mode from /opt/liquidity so that its dags/,
# plugins/ and sql/ folders stay where liquidity_core expects them.
FROM python:3.11-slim

ARG AIRFLOW_UID=50000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/liquidity/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/liquidity/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    LIQUIDITY_VAR_DIR=/opt/liquidity/var \
    LIQUIDITY_INGEST_DIR=/opt/liquidity/ingest \
    LIQUIDITY_MODEL_DIR=/opt/liquidity/models \
    MPLCONFIGDIR=/tmp/matplotlib

# curl for the health checks, tini to reap children and forward signals. (setpriv, with
# which airflow-init drops from root to AIRFLOW_UID, is in util-linux, part of the base.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl tini \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first (cached while only the code changes): exactly the lock.
RUN python -m venv "$VIRTUAL_ENV"
COPY requirements.txt /opt/liquidity/requirements.txt
RUN pip install --no-deps -r /opt/liquidity/requirements.txt && pip check

COPY pyproject.toml README.md /opt/liquidity/
COPY liquidity_core/ /opt/liquidity/liquidity_core/
COPY webapp/ /opt/liquidity/webapp/
COPY plugins/ /opt/liquidity/plugins/
COPY dags/ /opt/liquidity/dags/
COPY sql/ /opt/liquidity/sql/
COPY deploy/ /opt/liquidity/deploy/
# pip check again: every dependency pyproject.toml declares is in the lock just installed.
RUN pip install --no-deps -e /opt/liquidity && pip check \
    && python -m compileall -q /opt/liquidity/liquidity_core /opt/liquidity/webapp

# A non-root user in group 0 (as in the official Airflow image): the writable folders are
# group-writable, so compose may run the containers as any uid in group 0 (AIRFLOW_UID).
# Named volumes mounted on these folders start with this ownership.
RUN useradd --uid "${AIRFLOW_UID}" --gid 0 --home-dir /opt/airflow --no-create-home \
        --shell /usr/sbin/nologin airflow \
    && mkdir -p /opt/airflow/logs /opt/liquidity/var/report /opt/liquidity/ingest \
        /opt/liquidity/models \
    && chown -R "${AIRFLOW_UID}:0" /opt/airflow /opt/liquidity/var /opt/liquidity/ingest \
        /opt/liquidity/models \
    && chmod -R g+rwX,o-rwx /opt/airflow /opt/liquidity/var /opt/liquidity/ingest \
        /opt/liquidity/models

USER ${AIRFLOW_UID}:0
WORKDIR /opt/airflow
EXPOSE 8080 8000

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["airflow", "version"]
