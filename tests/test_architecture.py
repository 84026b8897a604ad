"""The rules of the house (docs/architecture.md): each layer imports only layers below it, and no
module takes part in an import circle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_aiq_braze"
NAME = PACKAGE.name

#: The layers, lowest first. A module may import modules of a lower layer only (or of its own room).
#: A layer is a room (a subpackage or top-level module) or, where a room's leaf is shared lower
#: down, that leaf: the identifier rule and the contract error sit below ``arguments``, which every
#: contract and the hook use to check their arguments. The sandbox imports no other room: it is the
#: independent second opinion (tests/sandbox/test_independence.py).
RANK = {
    "braze": 0,
    "scheduling": 0,
    "demo_data": 0,
    "sandbox": 0,
    "storage": 1,
    "connection_form": 1,
    "contracts.errors": 1,
    "contracts.identifiers": 1,
    "arguments": 2,
    "staging": 2,
    "get_provider_info": 2,
    "contracts": 3,
    "hooks": 3,
    "delivery": 4,
    "audiences": 5,
    "operators": 6,
    "demo": 7,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of a module except those under ``if TYPE_CHECKING:`` (imports for type hints only)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for part in node.body for child in ast.walk(part))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def _imports() -> dict[str, set[str]]:
    """Every module of the package and the package modules it imports (at any depth of the file)."""
    edges: dict[str, set[str]] = defaultdict(set)
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        source = _module_name(path)
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            edges[source].update(n for n in names if n in modules and n != source)
    return edges


def _room(module: str) -> str:
    """The room (subpackage or top-level module) of a module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(module: str) -> str:
    """The entry of :data:`RANK` a module belongs to: the longest one its name starts with."""
    name = module.removeprefix(f"{NAME}.")
    keys = [k for k in RANK if name == k or name.startswith(k + ".")]
    return max(keys, key=len) if keys else _room(module)


def test_every_room_has_a_rank() -> None:
    rooms = {_room(_module_name(p)) for p in PACKAGE.rglob("*.py")} - {NAME}
    missing = rooms - set(RANK)
    assert not missing, f"give these rooms a layer in RANK and docs/architecture.md: {missing}"


def test_rooms_import_only_lower_layers() -> None:
    upward = sorted(
        f"{src} -> {dst}"
        for src, dsts in _imports().items()
        for dst in dsts
        if NAME not in (_room(src), _room(dst))
        and _room(src) != _room(dst)
        and RANK.get(_layer(dst), 99) >= RANK.get(_layer(src), -1)
    )
    assert not upward, "imports that go sideways or up a layer:\n" + "\n".join(upward)


def test_no_import_circles() -> None:
    edges = _imports()
    circles: list[list[str]] = []

    def visit(module: str, trail: list[str], done: set[str]) -> None:
        if module in trail:
            circles.append([*trail[trail.index(module) :], module])
            return
        if module in done:
            return
        for nxt in sorted(edges.get(module, ())):
            # a package's __init__ re-exporting its own modules is not a circle of meaning
            if not (nxt.startswith(module + ".") or module.startswith(nxt + ".")):
                visit(nxt, [*trail, module], done)
        done.add(module)

    done: set[str] = set()
    for module in sorted(edges):
        visit(module, [], done)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


@pytest.mark.parametrize("layer", sorted(RANK))
def test_rank_table_names_real_modules(layer: str) -> None:
    path = PACKAGE.joinpath(*layer.split("."))
    assert path.is_dir() or path.with_suffix(".py").is_file()
