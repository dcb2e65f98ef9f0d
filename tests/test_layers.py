"""The package's layers: imports point down only. A module may import from a layer below
its own, never from its own layer's upper modules or from above (README, "How it works")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "host"

#: Each module's layer, bottom (0) to top; a module imports only from lower numbers.
LAYERS: dict[str, int] = {
    "errors": 0,
    "runtime.limits": 1,
    "runtime.abi": 1,
    "runtime.cache": 1,
    "runtime.wasmbin": 1,
    "runtime.wire": 2,
    "runtime.engine": 2,
    "runtime.traps": 2,
    "runtime.stdio": 2,
    "runtime.fastcall": 2,
    "runtime.isolate": 3,
    "runtime.pool": 4,
    "runtime.snapshot": 4,
    "runtime.rewrite": 4,
    "runtime.maps": 4,
    "runtime.options": 4,
    "runtime.providers": 4,
    "runtime.session": 5,
    "tools.bench": 6,
    "tools.differential": 7,
    "tools.fuzz": 8,
    "tools.backend": 6,
    "registry.names": 6,
    "registry.records": 2,
    "registry.schema": 6,
    "registry.blobs": 6,
    "registry.settings": 6,
    "registry.catalog": 7,
    "registry.migrations": 7,
    "registry.runtimes": 7,
    "registry.validate": 7,
    "registry.database": 8,
    "registry.registry": 9,
    "client": 10,
    "serve.tensors": 6,
    "serve.metrics": 10,
    "serve.auth": 10,
    "serve.images": 10,
    "serve.stats": 10,
    "serve.backend": 10,
    "serve.ray_replica": 10,
    "serve.deployments": 11,
    "serve.ray_backend": 11,
    "serve.web": 12,
    "serve.oip": 13,
    "serve.management": 13,
    "serve.dashboard": 13,
    "serve.app": 14,
    "serve.server": 15,
    "cli.registry": 16,
    "cli.serve": 17,
    "cli.main": 18,
    "cli.__main__": 19,
}
#: Packages' `__init__`s re-export what is below them; they are not layers.
INITS = {
    "__init__",
    "runtime.__init__",
    "tools.__init__",
    "registry.__init__",
    "cli.__init__",
    "serve.__init__",
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """The wasmhost modules `path` imports (relative imports resolved), by layer name."""
    package = name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "wasmhost":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                candidate = ".".join([*target, alias.name])
                found.add(candidate if candidate in LAYERS else ".".join(target))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "wasmhost":
                    found.add(".".join(alias.name.split(".")[1:]))
    return {m for m in found if m}


def test_every_module_has_a_layer():
    assert set(modules()) - INITS == set(LAYERS), "add new modules to LAYERS"


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_imports_point_down(name):
    path = modules()[name]
    for imported in imports_of(name, path):
        if imported in ("runtime", "tools", "registry", "cli", "serve", ""):
            pytest.fail(f"{name} imports a package's __init__ ({imported!r}): import the module")
        assert imported in LAYERS, f"{name} imports unknown module {imported}"
        assert LAYERS[imported] < LAYERS[name], (
            f"{name} (layer {LAYERS[name]}) imports {imported} (layer {LAYERS[imported]}): "
            "imports must point down"
        )


def test_the_check_catches_an_upward_import(tmp_path):
    path = tmp_path / "wire.py"
    path.write_text("from .session import InferenceSession\nfrom ..errors import X\n")
    found = imports_of("runtime.wire", path)
    assert found == {"runtime.session", "errors"}
    assert LAYERS["runtime.session"] > LAYERS["runtime.wire"]
