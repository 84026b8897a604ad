"""Airflow-free Braze REST API layer: instances, limits, payload rules, responses, errors."""
