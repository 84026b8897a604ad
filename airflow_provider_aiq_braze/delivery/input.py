"""The one input path of every operator: staged files → staged batches and rejects, progress per file."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import Rejected
from airflow_provider_aiq_braze.staging import StagedBatch, StagedFile, StagedRow, read_staged_batches


def read_input(
    files: Sequence[StagedFile],
    progress: Progress,
    *,
    columns: Sequence[str] | None = None,
    required_columns: Collection[str] = (),
    any_of_columns: Collection[Collection[str]] = (),
) -> Iterator[StagedBatch | Rejected]:
    """Stream every file as staged batches, in order; rows that cannot be read come as rejects.

    Every operator reads its input through here, and then applies its contract only: the same
    rows, the same row numbers (see ``docs/staging.md``), a progress note at the end of each file.
    A reject is yielded before the batch that follows it in the file.

    :param files: the located input files.
    :param progress: told the size of each file once it was read.
    :param columns: the only columns to read (``None``: all).
    :param required_columns: columns every file (CSV, Parquet) or row (JSON Lines) must have.
    :param any_of_columns: groups of columns of which each file or row must have one each.
    """
    for file in files:
        unreadable: list[StagedRow] = []
        for staged in read_staged_batches(
            file,
            on_reject=unreadable.append,
            columns=columns,
            required_columns=required_columns,
            any_of_columns=any_of_columns,
        ):
            yield from _as_rejects(unreadable)
            yield staged
        yield from _as_rejects(unreadable)
        progress.file_done(file_size(file))


def unreadable_reject(row: StagedRow) -> Rejected:
    """The reject of a row a staging reader could not read, with the reader's reason.

    :param row: the row, with ``error`` set.
    """
    return Rejected(row.file, row.row_number, row.error or "unreadable row", row.raw)


def _as_rejects(unreadable: list[StagedRow]) -> Iterator[Rejected]:
    """Rejects for the rows a reader could not read, emptying the list."""
    for row in unreadable:
        yield unreadable_reject(row)
    unreadable.clear()


def file_size(file: StagedFile) -> int:
    """A staged file's size in bytes (0 when the storage does not say).

    :param file: the file.
    """
    try:
        return int(file.path.stat().st_size)
    except (OSError, AttributeError, ValueError):
        return 0


def total_size(files: Collection[StagedFile]) -> int:
    """The size of all the files, for progress estimates.

    :param files: the files.
    """
    return sum(file_size(f) for f in files)
