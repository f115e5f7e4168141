"""The package's layout holds: each layer imports only from the layers below it, and the
pure rules import no I/O (see trioproxy/__init__.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import trioproxy

ROOT = Path(trioproxy.__file__).parent
#: Rank of each part, lowest first; a module may import its own part and lower ranks only.
RANKS = {
    "errors": -1,
    "rules": 0,
    "settings": 1, "metrics": 1, "shutdown": 1, "_version": 1, "compat": 1, "websocket_port": 1,
    "child": 2, "hub": 2, "server": 2,
    "auth": 3,
    "proxy": 4,
    "front": 5, "ops": 5,
    "run": 6,
    "cli": 7,
    "__init__": 8, "__main__": 8, "main": 8, "demo": 8,
}
#: What the pure rules may not import.
IO_MODULES = {"trio", "socket", "select", "subprocess", "asyncio", "threading", "httpx", "hypercorn", "quart",
              "quart_trio", "trio_websocket", "h11", "wsproto", "os", "shutil"}


def _modules() -> list[tuple[tuple[str, ...], ast.Module]]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append((parts, ast.parse(path.read_text(), str(path))))
    return out


def _imports(parts: tuple[str, ...], tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(absolute module under trioproxy, names) for every import of trioproxy's own modules."""
    package = list(parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("trioproxy"):
                module = node.module.removeprefix("trioproxy").lstrip(".")
            else:
                continue
            found.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("trioproxy."):
                    found.append((alias.name.removeprefix("trioproxy."), []))
    return found


def _part(dotted: str) -> str:
    return dotted.split(".")[0] if dotted else ""


def test_layers_only_import_downwards() -> None:
    wrong = []
    for parts, tree in _modules():
        here = parts[0]
        assert here in RANKS, f"{'/'.join(parts)}.py is in no layer: add it to RANKS and the layout docstring"
        for module, names in _imports(parts, tree):
            targets = [module] if module else names  # `from . import x` at the top: x is the module
            for target in targets:
                there = _part(target)
                if there == here or there not in RANKS:
                    continue
                if RANKS[there] >= RANKS[here]:
                    wrong.append(f"{'.'.join(parts)} imports {target}")
    assert wrong == []


def test_the_rules_do_no_io() -> None:
    wrong = []
    for parts, tree in _modules():
        if parts[0] != "rules":
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            wrong += [f"{'.'.join(parts)} imports {n}" for n in names if n.split(".")[0] in IO_MODULES]
    assert wrong == []
