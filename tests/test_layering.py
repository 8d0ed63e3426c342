"""Layers point one way (DESIGN.md): schemas <- rpc <- services <- routers <- transports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_only_the_transport_imports_aiohttp() -> None:
    transport = ROOT / "rpc" / "transport_aiohttp"
    offenders = [
        str(p.relative_to(ROOT))
        for p in files("rpc")
        if transport not in p.parents and "aiohttp" in imports_of(p)
    ]
    assert offenders == []
    assert any("aiohttp" in imports_of(p) for p in transport.rglob("*.py"))


def test_only_the_jsonrpc_module_imports_jsonrpcserver() -> None:
    importers = {
        str(p.relative_to(ROOT))
        for package in ("rpc", "routers", "schemas", "services", "server", "client_gen")
        for p in files(package)
        if "jsonrpcserver" in imports_of(p)
    }
    assert importers == {"rpc/jsonrpc.py"}


def test_schemas_import_only_pydantic() -> None:
    allowed = {
        "pydantic",
        "schemas",
        "__future__",
        "typing",
        "typing_extensions",  # pydantic's own typing backport (TypeAliasType before 3.12)
        "datetime",
        "enum",
        "collections",
        "annotated_types",
        "re",  # schemas.base names which characters a text was refused for
    }
    for path in files("schemas"):
        assert imports_of(path) <= allowed, path


def test_layers_point_one_way() -> None:
    forbidden = {
        "schemas": {"rpc", "services", "routers", "server", "aiohttp"},
        "rpc": {"services", "routers", "server"},
        "services": {"routers", "server", "aiohttp"},
        "routers": {"server", "aiohttp"},
    }
    for package, banned in forbidden.items():
        for path in files(package):
            assert not imports_of(path) & banned, f"{path} imports {imports_of(path) & banned}"
