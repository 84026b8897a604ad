# The Airflow image docker-compose.yaml runs: the official image plus this provider, installed from the
# working tree with the project's pinned constraints (the environment the test suite runs on).
#   docker compose build     (docker compose up builds it on first use)
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ARG AIRFLOW_VERSION=3.3.2
ARG CONSTRAINTS=constraints/airflow-3.3.2.txt

COPY --chown=airflow:root . /opt/airflow-provider-aiq-braze

# As the image's airflow user; pinning apache-airflow keeps pip from changing the image's Airflow.
RUN pip install --no-cache-dir \
        --constraint "/opt/airflow-provider-aiq-braze/${CONSTRAINTS}" \
        "apache-airflow==${AIRFLOW_VERSION}" \
        /opt/airflow-provider-aiq-braze \
    && python -c "import airflow_provider_aiq_braze.sandbox, airflow_provider_aiq_braze.operators.audience"
