"""One place for storage: building paths, the local check, JSON Lines files, conditional writes.

* :mod:`.paths` - :func:`storage_path` (a path or URI + connection → ``ObjectStoragePath``, with
  the Airflow 3.1 workaround) and :func:`is_local`;
* :mod:`.jsonl` - :class:`JsonlWriter` and :func:`read_jsonl` (append-only parts on object stores);
* :mod:`.problems` - :func:`explain` (the one message for a location that cannot be used, naming
  its argument and the fix, e.g. the provider's pip package) and :func:`check_writable`;
* :mod:`.conditional` - :func:`create_exclusive`, :func:`read_versioned`, :func:`replace_if`,
  :func:`delete_if` (local files and S3).
"""

from airflow_provider_aiq_braze.storage.conditional import (
    ConditionalWritesUnsupported,
    create_exclusive,
    delete_if,
    read_versioned,
    replace_if,
    supports_conditional_writes,
    verify_conditional_writes,
)
from airflow_provider_aiq_braze.storage.jsonl import JsonlWriter, dumps, parts_dir, read_jsonl
from airflow_provider_aiq_braze.storage.paths import (
    LOCAL_PROTOCOLS,
    Location,
    StorageError,
    conn_id_of,
    is_local,
    protocol,
    storage_path,
)
from airflow_provider_aiq_braze.storage.problems import (
    SCHEME_PROVIDERS,
    check_writable,
    explain,
    known_problem,
    scheme_of,
    unwritable,
)

__all__ = [
    "LOCAL_PROTOCOLS",
    "SCHEME_PROVIDERS",
    "ConditionalWritesUnsupported",
    "JsonlWriter",
    "Location",
    "StorageError",
    "check_writable",
    "conn_id_of",
    "create_exclusive",
    "delete_if",
    "dumps",
    "explain",
    "is_local",
    "known_problem",
    "parts_dir",
    "protocol",
    "read_jsonl",
    "read_versioned",
    "replace_if",
    "scheme_of",
    "storage_path",
    "supports_conditional_writes",
    "unwritable",
    "verify_conditional_writes",
]
