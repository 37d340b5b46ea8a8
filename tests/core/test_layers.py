"""The house's layers point one way (docs/architecture.md): every import in the add-on and the
backend is checked against the layer order, the pure package imports only the standard library
and numpy, and it imports in a Python where bpy and torch cannot be imported."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lower imports nothing higher; packages of one rank do not import each other.
LAYERS: dict[str, int] = {
    "t2i_core": 0,
    "compositor": 1,
    "blender_t2i.scene": 2,
    "blender_t2i.results": 3,
    "blender_t2i.generation": 4,
    "blender_t2i.batch": 5,
    "blender_t2i.ui": 5,
    "operators": 6,
    "": 7,  # the extension's root __init__: registration only
}
BACKEND = "backend"  # its own process: of the add-on, only t2i_core
BRIDGE = "comfy_bridge"  # the ComfyUI bridge process: only t2i_core and the standard library
PROCESSES = (BACKEND, BRIDGE)
PURE_THIRD_PARTY = {"numpy"}


def _package_of(module: str) -> str:
    """The layer package a dotted module (repository-relative) belongs to."""
    for package in sorted(LAYERS, key=len, reverse=True):
        if package and (module == package or module.startswith(package + ".")):
            return package
    for process in PROCESSES:
        if module == process or module.startswith(process + "."):
            return process
    if module in ("", "__init__", "blender_t2i"):
        return ""
    raise AssertionError(f"{module} is in no layer: add it to docs/architecture.md and LAYERS")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the file, lazy ones included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                # `from . import x` may name submodules: check each of them
                names = [f"{target}.{a.name}" if target else a.name for a in node.names]
                found += [(node.lineno, n if (ROOT / n.replace(".", "/")).with_suffix(".py")
                           .exists() or (ROOT / n.replace(".", "/")).is_dir() else target)
                          for n in names]
            else:
                found.append((node.lineno, node.module or ""))
    return found


def _internal(module: str) -> bool:
    return module.split(".")[0] in ("t2i_core", "blender_t2i", "compositor", "operators",
                                    *PROCESSES)


def _source_files() -> list[Path]:
    files = [ROOT / "__init__.py"]
    for folder in ("t2i_core", "blender_t2i", "compositor", "operators", *PROCESSES):
        files += sorted((ROOT / folder).rglob("*.py"))
    return files


def test_every_import_points_down_the_layers():
    wrong = []
    for path in _source_files():
        source = _package_of(_module_name(path))
        for line, module in _imports(path):
            if not _internal(module):
                continue
            target = _package_of(module)
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if source in PROCESSES:
                if target not in (source, "t2i_core"):
                    wrong.append(f"{where} ({source} may use only t2i_core)")
            elif target in PROCESSES:
                wrong.append(f"{where} (the add-on never imports {target}: another process)")
            elif target != source and LAYERS[target] >= LAYERS[source]:
                wrong.append(f"{where} ({target} is not below {source or 'the root'})")
    assert not wrong, "\n".join(wrong)


def test_the_pure_package_imports_only_the_standard_library_and_numpy():
    wrong = []
    for path in sorted((ROOT / "t2i_core").rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if _internal(module) or top in sys.stdlib_module_names or top in PURE_THIRD_PARTY:
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_bridge_imports_only_the_standard_library():
    """It runs in Blender's own Python with nothing installed (a remote ComfyUI needs no
    backend environment): no requests, no websocket package, no PIL."""
    wrong = []
    for path in sorted((ROOT / BRIDGE).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if _internal(module) or top in sys.stdlib_module_names:
                continue
            wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_there_is_no_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for path in _source_files():
        source = _package_of(_module_name(path))
        for _line, module in _imports(path):
            if _internal(module) and _package_of(module) != source:
                edges.setdefault(source, set()).add(_package_of(module))

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("package cycle: " + " -> ".join([*trail, node]))
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*trail, node])

    for start in sorted(edges):
        visit(start, [])


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: a core module importing the scene layer is caught."""
    bad = ROOT / "t2i_core" / "_layer_probe.py"
    bad.write_text("from ..blender_t2i.scene import settings\n", encoding="utf-8")
    try:
        with pytest.raises(AssertionError, match=r"_layer_probe\.py:1 imports "
                                                 r"blender_t2i\.scene\.settings"):
            test_every_import_points_down_the_layers()
    finally:
        bad.unlink()


BLOCKER = """
import importlib, importlib.abc, pkgutil, sys, types
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"bpy", "torch", "diffusers", "PIL", "transformers"}:
            raise ImportError(f"{name} is not available here")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, sys.argv[1])
import t2i_core as core
names = [m.name for m in pkgutil.iter_modules(core.__path__)]
for name in names:
    importlib.import_module(f"t2i_core.{name}")
print(len(names))
"""


BRIDGE_BLOCKER = BLOCKER.replace('"transformers"}', '"transformers", "requests", '
                                 '"websocket", "websockets", "aiohttp"}').replace(
    "import t2i_core as core", "import comfy_bridge as core").replace(
    'f"t2i_core.{name}"', 'f"comfy_bridge.{name}"')


@pytest.mark.skipif(not (ROOT / BRIDGE).is_dir(), reason="no comfy_bridge package yet")
def test_the_bridge_imports_where_torch_and_http_packages_cannot():
    proc = subprocess.run([sys.executable, "-c", BRIDGE_BLOCKER, str(ROOT)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 1


def test_the_pure_package_imports_where_bpy_and_torch_cannot():
    proc = subprocess.run([sys.executable, "-c", BLOCKER, str(ROOT)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) >= 10
