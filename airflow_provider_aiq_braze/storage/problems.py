"""What went wrong with a storage location, said once: which argument, which location, what to do.

Every failure to reach a location given as an argument (``source``, ``state_path``,
``rejects_path``) is turned into a message here: a scheme no installed provider serves (with the
pip package of the Airflow provider that does), a path under a regular file, a location that is
not writable, credentials that do not reach it. :func:`check_writable` looks at a location before
a run writes anything, so a run that cannot keep its ledger or rejects never starts sending.
"""

from __future__ import annotations

import errno
import os
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage.paths import Location, StorageError, is_local, storage_path

#: The Airflow provider (its pip package) that registers each storage scheme with ObjectStoragePath.
SCHEME_PROVIDERS: dict[str, str] = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "s3a": "apache-airflow-providers-amazon[s3fs]",
    "s3n": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
    "sftp": "apache-airflow-providers-sftp",
}

#: The connection argument that goes with each location argument.
CONNECTION_ARGUMENTS = {
    "source": "source_conn_id",
    "state_path": "state_conn_id",
    "rejects_path": "state_conn_id",
}

_KNOWN_SCHEMES = "file://, s3:// (Amazon), gs:// (Google), abfs:// or az:// (Microsoft Azure), sftp://"
_CREDENTIAL_WORDS = ("credential", "auth", "accessdenied", "forbidden", "signature", "token")


def scheme_of(location: object) -> str:
    """The scheme of a location (``""`` for a plain path).

    :param location: a path, URI or ``ObjectStoragePath``.
    """
    if isinstance(location, ObjectStoragePath):
        return str(getattr(location, "protocol", "") or "")
    text = str(location)
    return urlsplit(text).scheme.lower() if "://" in text else ""


def explain(
    exc: BaseException, location: object, *, argument: str, conn_id: str | None = None
) -> StorageError:
    """The one message for a failure to reach a location given as an argument.

    :param exc: what was raised while reaching it.
    :param location: the location, as given.
    :param argument: the argument that gave it (``source``, ``state_path``, ``rejects_path``).
    :param conn_id: the connection used, if any.
    :return: a :class:`StorageError` naming the argument, the location and the fix.
    """
    message = known_problem(exc, location, argument=argument, conn_id=conn_id)
    if message is None:
        message = (
            f"{argument} {str(location)!r} cannot be used: {type(exc).__name__}: {exc}. Check the location "
            f"and {CONNECTION_ARGUMENTS.get(argument, 'its connection')}."
        )
    return StorageError(message)


def known_problem(
    exc: BaseException, location: object, *, argument: str, conn_id: str | None = None
) -> str | None:
    """The message for a failure whose cause is known (a missing provider, a path under a file,
    credentials), or ``None``.

    :param exc: what was raised while reaching the location.
    :param location: the location, as given.
    :param argument: the argument that gave it.
    :param conn_id: the connection used, if any.
    """
    scheme = scheme_of(location)
    start = f"{argument} {str(location)!r} cannot be used: "
    if _is_missing_filesystem(exc):
        package = SCHEME_PROVIDERS.get(scheme)
        if package is None:
            return (
                f"{start}no installed Airflow provider serves {scheme}:// ({type(exc).__name__}: {exc}). "
                f"Use a local path or a scheme an Airflow provider serves: {_KNOWN_SCHEMES}."
            )
        return (
            f"{start}no filesystem for {scheme}:// is installed ({exc}). Install the Airflow provider on the "
            f"workers: pip install '{package}'."
        )
    if isinstance(exc, NotADirectoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOTDIR):
        return f"{start}a part of it is a regular file, not a folder. Point {argument} elsewhere."
    if _is_credentials(exc):
        who = f"connection {conn_id!r}" if conn_id else "the worker's default credentials"
        connection = CONNECTION_ARGUMENTS.get(argument, "the connection argument")
        return (
            f"{start}{who} cannot reach it ({type(exc).__name__}: {exc}). Set {connection} to an Airflow "
            "connection that may read and write there."
        )
    return None


def check_writable(
    location: Location, *, argument: str, conn_id: str | None = None, is_file: bool = False
) -> ObjectStoragePath:
    """Look at a location a run will write to, before it writes anything.

    Locally: the nearest existing folder must be a folder and writable (nothing is created). On
    object storage: the filesystem must be installed and the credentials must reach the location.

    :param location: the location, as given.
    :param argument: the argument that gave it.
    :param conn_id: the connection for remote storage.
    :param is_file: whether the location is a file to write (``rejects_path``) or a folder.
    :return: the location as an ``ObjectStoragePath``.
    :raises StorageError: naming the argument, the location and the fix.
    """
    try:
        path = storage_path(location, conn_id)
        if not is_local(path):
            path.fs.exists(str(path.path))  # the filesystem is installed, the credentials reach it
    except StorageError as exc:  # the location cannot even be represented
        raise explain(exc.__cause__ or exc, location, argument=argument, conn_id=conn_id) from exc
    except Exception as exc:
        raise explain(exc, location, argument=argument, conn_id=conn_id) from exc
    problem = unwritable(path, is_file=is_file)
    if problem:
        raise StorageError(
            f"{argument} {str(location)!r} cannot be used: {problem}. Point {argument} elsewhere. Nothing "
            "was sent."
        )
    return path


def unwritable(path: ObjectStoragePath, *, is_file: bool = True) -> str | None:
    """Why a local file (or folder) cannot be written, or ``None`` (always ``None`` for remote storage).

    :param path: the file or folder.
    :param is_file: whether it is a file (else a folder).
    """
    if not is_local(path):
        return None
    target = str(path.path)
    if os.path.isdir(target):
        if is_file:
            return "it is a directory"
        return None if os.access(target, os.W_OK | os.X_OK) else "it is not writable"
    if os.path.exists(target):
        if not is_file:
            return "it is a file, not a folder"
        return None if os.access(target, os.W_OK) else "it is not writable"
    folder = os.path.dirname(target) or "."
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"{folder} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"the folder {folder} is not writable"
    return None


def _is_missing_filesystem(exc: BaseException) -> bool:
    text = str(exc)
    return (
        isinstance(exc, ImportError)
        or "No filesystem registered" in text
        or "Unsupported filesystem" in text
        or "Protocol not known" in text
    )


def _is_credentials(exc: BaseException) -> bool:
    name = type(exc).__name__.lower()
    return any(word in name for word in _CREDENTIAL_WORDS) or any(
        code in str(exc) for code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId")
    )
