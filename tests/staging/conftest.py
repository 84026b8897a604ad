"""Helpers for staging tests: real files in ``tmp_path``."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def stage(tmp_path: Path) -> Callable[..., Path]:
    """Write ``content`` (str → UTF-8, or bytes) to ``tmp_path / name``; gzip it when asked."""

    def write(name: str, content: str | bytes, *, gzipped: bool | None = None) -> Path:
        data = content.encode("utf-8") if isinstance(content, str) else content
        if gzipped if gzipped is not None else name.endswith(".gz"):
            data = gzip.compress(data)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return write
