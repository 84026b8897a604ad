"""Kept for imports that still name it: everything lives in :mod:`airflow_provider_aiq_braze.storage`."""

from airflow_provider_aiq_braze.storage import JsonlWriter, dumps, is_local, read_jsonl, storage_path

__all__ = ["JsonlWriter", "dumps", "is_local", "read_jsonl", "storage_path"]
