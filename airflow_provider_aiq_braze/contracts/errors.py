"""The error a row contract raises about its configuration (defined here so the contracts depend on
nothing above them; :mod:`airflow_provider_aiq_braze.arguments` builds on it)."""

from __future__ import annotations


class ContractError(ValueError):
    """An argument makes the operator's row contract or run unusable (raised before any row is read)."""
