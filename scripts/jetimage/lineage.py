"""Which library code each rule's output depends on, as a digest for Snakemake's params.

Snakemake's code rerun trigger sees a rule's own script, not the library modules the script
imports. :func:`code_digest` follows a script's ``jetimage`` imports through the library and
hashes the syntax tree of every module it reaches, with docstrings dropped, so that a change in
the code a stage runs reruns that stage (and what follows), while comments, docstrings, formatting
and modules the stage never imports do not.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent
#: Modules whose changes do not change any output.
IGNORED = {"logs"}


def _module_path(name: str) -> Path | None:
    """The file of ``jetimage.<name>`` (``""`` is the package's ``__init__``)."""
    path = LIBRARY / ("__init__.py" if not name else f"{name.replace('.', '/')}.py")
    return path if path.is_file() else None


def _imports(tree: ast.AST) -> set[str]:
    """``jetimage`` modules a syntax tree imports ("" for the package itself)."""
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.split(".")[0] == "jetimage"
        ):
            base = node.module[len("jetimage.") :] if node.module != "jetimage" else ""
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.add(sub if _module_path(sub) else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "jetimage":
                    found.add(alias.name[len("jetimage.") :] if "." in alias.name else "")
    return found


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


@cache
def _parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def library_modules(script: str | Path) -> list[str]:
    """The library modules a script reaches through its imports, sorted."""
    seen: set[str] = set()
    todo = list(_imports(_parse(Path(script).resolve())))
    while todo:
        name = todo.pop()
        if name in seen or _module_path(name) is None:
            continue
        seen.add(name)
        todo.extend(_imports(_parse(_module_path(name))))
    return sorted(seen - IGNORED - {""})  # the package __init__ only re-exports


@cache
def code_digest(script: str | Path) -> str:
    """SHA-256 (16 hex digits) of the syntax of every library module ``script`` reaches."""
    digest = hashlib.sha256()
    for name in library_modules(script):
        path = _module_path(name)
        assert path is not None  # library_modules lists existing modules only
        tree = _without_docstrings(ast.parse(path.read_text()))
        digest.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()[:16]
