"""locate(): paths, lists, directories, globs, URIs, detection, ordering and errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import fsspec
import pytest
from airflow.sdk import ObjectStoragePath
from fsspec.implementations.local import LocalFileSystem

from airflow_provider_aiq_braze.staging import (
    AiqBrazeInputError,
    StagedFile,
    StagingError,
    detect_format,
    locate,
    read_rows,
)

CSV = "id,name\n1,a\n"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("part-0001.csv", ("csv", None)),
        ("part-0001.CSV", ("csv", None)),
        ("part-0001.csv.gz", ("csv", "gzip")),
        ("part.jsonl", ("jsonl", None)),
        ("part.json", ("jsonl", None)),
        ("part.ndjson", ("jsonl", None)),
        ("part.jsonl.gz", ("jsonl", "gzip")),
        ("part.json.gz", ("jsonl", "gzip")),
        ("part.ndjson.gz", ("jsonl", "gzip")),
        ("part.parquet", ("parquet", None)),
        ("part.pq", ("parquet", None)),
        ("s3://bucket/a.b/part.csv.gz", ("csv", "gzip")),
    ],
)
def test_detect_format_from_name(name: str, expected: tuple[str, str | None]) -> None:
    assert detect_format(name) == expected


def test_detect_format_explicit() -> None:
    assert detect_format("part-00000", format="csv") == ("csv", None)
    assert detect_format("part-00000.gz", format="jsonl") == ("jsonl", "gzip")
    assert detect_format("data.txt", format="csv", compression="gzip") == ("csv", "gzip")
    assert detect_format("data.csv.gz", compression=None) == ("csv", None)


def test_unknown_extension_lists_supported_names() -> None:
    with pytest.raises(StagingError) as err:
        detect_format("/data/part-0001.txt")
    message = str(err.value)
    assert "/data/part-0001.txt" in message
    assert "'.txt'" in message
    assert ".csv.gz" in message and ".ndjson" in message and ".pq" in message
    assert "format=" in message
    with pytest.raises(StagingError, match="no extension"):
        detect_format("part-00000")


@pytest.mark.parametrize(("suffix", "name"), [(".zip", "zip"), (".bz2", "bzip2"), (".zst", "zstd")])
def test_unsupported_compression(suffix: str, name: str) -> None:
    with pytest.raises(StagingError, match=rf"part\.csv{suffix}: {name} compression .* not supported"):
        detect_format(f"part.csv{suffix}")


def test_compressed_parquet_and_bad_options() -> None:
    with pytest.raises(StagingError, match="Parquet files carry their own compression"):
        detect_format("part.parquet.gz")
    with pytest.raises(StagingError, match="format must be one of csv, jsonl, parquet"):
        detect_format("a.csv", format="xlsx")
    with pytest.raises(StagingError, match="compression must be"):
        detect_format("a.csv", compression="bz2")


def test_staging_error_is_an_input_error() -> None:
    assert issubclass(StagingError, AiqBrazeInputError)
    assert issubclass(AiqBrazeInputError, ValueError)


def test_single_file_plain_path(stage: Callable[..., Path]) -> None:
    path = stage("part-0001.csv.gz", CSV)
    [staged] = locate(str(path))
    assert staged == StagedFile(uri=f"file://{path}", path=staged.path, format="csv", compression="gzip")
    assert isinstance(staged.path, ObjectStoragePath)
    assert str(staged) == staged.uri
    assert [r.data for r in read_rows(staged)] == [{"id": "1", "name": "a"}]


def test_pathlike_and_file_uri(stage: Callable[..., Path]) -> None:
    path = stage("part.csv", CSV)
    assert [f.uri for f in locate(path)] == [f"file://{path}"]
    [staged] = locate(f"file://{path}")
    assert staged.uri == f"file://{path}"
    assert [r.data for r in read_rows(staged)] == [{"id": "1", "name": "a"}]


def test_relative_path(stage: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage("rel/part.csv", CSV)
    monkeypatch.chdir(tmp_path)
    [staged] = locate("rel/part.csv")
    assert staged.uri == f"file://{tmp_path}/rel/part.csv"


def test_directory_is_not_recursive_and_skips_markers(stage: Callable[..., Path], tmp_path: Path) -> None:
    for name in ["part-0002.csv", "part-0001.csv", "part-0010.csv.gz"]:
        stage(f"out/{name}", CSV)
    for name in ["_SUCCESS", "_committed_123", "_started_123", ".hidden.csv", ".part-0001.csv.crc", "x.CRC"]:
        stage(f"out/{name}", "")
    stage("out/nested/part-0003.csv", CSV)
    files = locate(str(tmp_path / "out"))
    assert [f.uri.rsplit("/", 1)[1] for f in files] == ["part-0001.csv", "part-0002.csv", "part-0010.csv.gz"]
    assert [f.compression for f in files] == [None, None, "gzip"]
    # a trailing slash and a file:// URI name the same directory
    assert locate(f"file://{tmp_path}/out/") == files


def test_relative_glob_skips_marker_directories(
    stage: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage("_out/part-1.csv", CSV)  # the root itself may start with "_"
    stage("_out/_temporary/part-2.csv", CSV)
    monkeypatch.chdir(tmp_path)
    assert [f.uri for f in locate("_out/**/*.csv")] == [f"file://{tmp_path}/_out/part-1.csv"]


def test_explicit_file_is_taken_even_with_a_marker_name(stage: Callable[..., Path]) -> None:
    path = stage("_part.csv", CSV)
    assert len(locate(str(path))) == 1


def test_glob_list_dedup_and_order(stage: Callable[..., Path], tmp_path: Path) -> None:
    for name in [
        "b/part-2.csv",
        "b/part-1.csv",
        "a/part-9.jsonl",
        "a/_SUCCESS",
        "a/sub/part-0.csv",
        "a/_temporary/0/part-7.csv",
        "a/.staging/part-8.csv",
    ]:
        stage(name, CSV if name.endswith(".csv") else '{"id": 1}\n')
    glob = locate(str(tmp_path / "b" / "part-*.csv"))
    assert [f.uri for f in glob] == [f"file://{tmp_path}/b/part-1.csv", f"file://{tmp_path}/b/part-2.csv"]
    everything = locate(
        [
            str(tmp_path / "b" / "part-2.csv"),
            str(tmp_path / "b" / "*.csv"),
            tmp_path / "a",
            str(tmp_path / "b" / "part-2.csv"),
        ]
    )
    assert [f.uri.replace(f"file://{tmp_path}/", "") for f in everything] == [
        "a/part-9.jsonl",
        "b/part-1.csv",
        "b/part-2.csv",
    ]
    assert [f.format for f in everything] == ["jsonl", "csv", "csv"]
    # the same files in another order resolve identically
    assert locate([tmp_path / "a", str(tmp_path / "b" / "*")]) == everything
    recursive = locate(str(tmp_path / "**" / "*.csv"))
    assert [f.uri.replace(f"file://{tmp_path}/", "") for f in recursive] == [
        "a/sub/part-0.csv",
        "b/part-1.csv",
        "b/part-2.csv",
    ]


def test_rendered_xcom_list_string(stage: Callable[..., Path]) -> None:
    first, second = stage("p1.csv", CSV), stage("p2.csv", CSV)
    python_repr = str([str(second), str(first)])  # what Jinja renders for a list
    assert [f.uri for f in locate(python_repr)] == [f"file://{first}", f"file://{second}"]
    assert [f.uri for f in locate(json.dumps([str(first)]))] == [f"file://{first}"]
    assert [f.uri for f in locate(p for p in [first])] == [f"file://{first}"]


def test_explicit_format_for_extensionless_files(stage: Callable[..., Path], tmp_path: Path) -> None:
    stage("out/part-00000", CSV)
    stage("out/part-00001.gz", CSV)
    with pytest.raises(StagingError, match="cannot tell the file format"):
        locate(str(tmp_path / "out"))
    files = locate(str(tmp_path / "out"), format="csv")
    assert [(f.format, f.compression) for f in files] == [("csv", None), ("csv", "gzip")]
    assert [r.data for f in files for r in read_rows(f)] == [{"id": "1", "name": "a"}] * 2


def test_glob_matching_nothing(tmp_path: Path) -> None:
    pattern = str(tmp_path / "part-*.csv")
    with pytest.raises(StagingError) as err:
        locate(pattern)
    assert pattern in str(err.value)
    assert "glob matches no file" in str(err.value)
    assert "upstream task" in str(err.value)
    assert locate(pattern, allow_empty=True) == []


def test_directory_without_data_files(stage: Callable[..., Path], tmp_path: Path) -> None:
    stage("out/_SUCCESS", "")
    with pytest.raises(StagingError, match="directory holds no data file"):
        locate(str(tmp_path / "out"))
    assert locate([str(tmp_path / "out")], allow_empty=True) == []


def test_missing_path_and_empty_source(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(StagingError, match=rf"{missing} does not exist"):
        locate(missing)
    with pytest.raises(StagingError, match="does not exist"):
        locate(missing, allow_empty=True)
    for empty in ["", "  ", [], "[]"]:
        with pytest.raises(StagingError, match="source is empty"):
            locate(empty)  # type: ignore[arg-type]
    with pytest.raises(StagingError, match="not int"):
        locate(3)  # type: ignore[arg-type]


def test_unreadable_storage_names_the_path(
    stage: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, so chmod cannot deny access: simulate the storage refusing the listing.
    stage("out/part.csv", CSV)

    def denied(self: LocalFileSystem, path: str, detail: bool = False, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(LocalFileSystem, "ls", denied)
    with pytest.raises(StagingError) as err:
        locate(str(tmp_path / "out"))
    message = str(err.value)
    assert f"cannot access {tmp_path / 'out'}" in message
    assert "PermissionError" in message
    assert "may list and read it" in message


def test_unknown_scheme_names_the_path() -> None:
    with pytest.raises(StagingError, match=r"nosuchscheme://bucket/x\.csv"):
        locate("nosuchscheme://bucket/x.csv")


def _memory_storage_supported() -> bool:
    try:
        ObjectStoragePath("memory://probe/x")
    except TypeError:
        return False
    return True


@pytest.mark.skipif(
    not _memory_storage_supported(),
    reason="this Airflow's ObjectStoragePath rejects URIs with a scheme under universal-pathlib >= 0.3 "
    "(Airflow 3.1 needs universal-pathlib < 0.3)",
)
def test_non_local_storage_through_object_storage_path() -> None:
    """fsspec's in-memory filesystem stands in for S3/GCS: listing, globbing and streaming work."""
    from airflow.sdk.io.store import attach

    memory = fsspec.filesystem("memory")
    attach(protocol="memory", fs=memory)
    memory.pipe("/bucket/out/part-2.csv", b"id,name\n2,b\n")
    memory.pipe("/bucket/out/part-1.csv.gz", __import__("gzip").compress(b"id,name\n1,a\n"))
    memory.pipe("/bucket/out/_SUCCESS", b"")
    memory.pipe("/bucket/out/part-3.parquet", b"not parquet")
    try:
        files = locate("memory://bucket/out/part-*.csv*")
        assert [f.uri for f in files] == [
            "memory:///bucket/out/part-1.csv.gz",
            "memory:///bucket/out/part-2.csv",
        ]
        assert all(f.path.protocol == "memory" for f in files)
        assert [r.data for f in files for r in read_rows(f)] == [
            {"id": "1", "name": "a"},
            {"id": "2", "name": "b"},
        ]
        listed = locate("memory://bucket/out")
        assert [f.uri.rsplit("/", 1)[1] for f in listed] == ["part-1.csv.gz", "part-2.csv", "part-3.parquet"]
        with pytest.raises(
            StagingError, match=r"memory:///bucket/out/part-3\.parquet is not a readable Parquet"
        ):
            list(read_rows(listed[2]))
    finally:
        memory.rm("/bucket", recursive=True)
