"""The sandbox is a second opinion: it imports nothing of the client's package.

If it used the client's Braze rules, whatever the client believes about Braze the sandbox would
confirm, and no test could catch a wrong belief (issue 12, item 6).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import airflow_provider_aiq_braze.sandbox as sandbox_package

PACKAGE = "airflow_provider_aiq_braze"
SANDBOX = f"{PACKAGE}.sandbox"
SANDBOX_DIR = Path(sandbox_package.__file__).parent


def _imported_modules(path: Path) -> list[str]:
    """Every module a sandbox source file imports, relative imports resolved."""
    package = f"{SANDBOX}.{path.stem}" if path.stem != "__init__" else SANDBOX
    parts = package.split(".")
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = (
                    parts[: len(parts) - node.level]
                    if path.stem != "__init__"
                    else parts[: len(parts) - node.level + 1]
                )
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import name" may import the submodule pkg.name
            found.extend(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_sandbox_sources_import_nothing_of_the_package_outside_the_sandbox():
    sources = sorted(SANDBOX_DIR.glob("*.py"))
    assert len(sources) >= 10
    offending = {
        f"{path.name}: {module}"
        for path in sources
        for module in _imported_modules(path)
        if (module == PACKAGE or module.startswith(f"{PACKAGE}.")) and not module.startswith(f"{SANDBOX}.")
    }
    assert offending == set()


def test_the_scan_would_catch_a_client_import(tmp_path):
    fake = tmp_path / "validation.py"
    fake.write_text(
        "from airflow_provider_aiq_braze.braze import rules\n"
        "from airflow_provider_aiq_braze.braze.limits import ObjectCountRule\n"
        "from .. import braze\n"
        "import airflow_provider_aiq_braze.braze.instances\n"
        "from airflow_provider_aiq_braze.sandbox import facts\n"
    )
    modules = _imported_modules(fake)
    outside = [m for m in modules if not m.startswith(f"{SANDBOX}.")]
    assert outside == [
        f"{PACKAGE}.braze.rules",
        f"{PACKAGE}.braze.limits.ObjectCountRule",
        f"{PACKAGE}.braze",
        f"{PACKAGE}.braze.instances",
    ]


def test_importing_the_whole_sandbox_loads_no_client_module():
    modules = sorted(f"{SANDBOX}.{path.stem}" for path in SANDBOX_DIR.glob("*.py") if path.stem != "__init__")
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"ours = [m for m in sys.modules if m.split('.')[0] == {PACKAGE!r}]\n"
        "print(json.dumps(sorted(ours)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout)
    assert f"{SANDBOX}.server" in loaded and f"{SANDBOX}.pytest_plugin" in loaded
    assert [m for m in loaded if m != PACKAGE and not m.startswith(f"{SANDBOX}")] == []
    assert not any(m.startswith(f"{PACKAGE}.braze") for m in loaded)
