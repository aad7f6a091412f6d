"""The shape the code keeps (docs/architecture.md): thin adapters, short library functions."""

from __future__ import annotations

import ast

from conftest import REPO

SCRIPTS = REPO / "scripts"


def test_every_adapter_is_at_most_40_lines():
    long = {p.name: n for p in SCRIPTS.glob("*.py") if (n := len(p.read_text().splitlines())) > 40}
    assert not long


def test_no_library_function_is_over_80_lines_but_the_numba_kernel():
    long = {}
    for path in (SCRIPTS / "jetimage").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80 and (path.name, node.name) != ("kernel.py", "images_kernel"):
                    long[f"{path.name}:{node.name}"] = lines
    assert not long
