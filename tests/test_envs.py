"""Per-rule conda environments, checked statically (conda channels are out of reach here):
every rule names an env, every env parses and is pinned, and every third-party module that a
rule's script imports, directly or through the jetimage library, is in that rule's env."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

#: import name → package name, where they differ
PACKAGES = {
    "torch": "pytorch",
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "pythia8mc": "pythia8mc",
    "zarr": "zarr",
    "XRootD": "xrootd",
}


def rules() -> dict[str, dict]:
    """Rule name → {'conda': env path, 'script': script path}, read from the .smk files."""
    found = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", block)
            script = re.search(r"script:\s*\n\s*\"([^\"]+)\"", block)
            found[name] = {
                "conda": conda and (smk.parent / conda.group(1)).resolve(),
                "script": script and (smk.parent / script.group(1)).resolve(),
            }
    return found


def third_party_imports(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Top-level modules imported by a file and, recursively, by the jetimage modules it uses."""
    seen = set() if seen is None else seen
    if path in seen:
        return set()
    seen.add(path)
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            top = name.split(".")[0]
            if top == "jetimage":
                parts = name.split(".")[1:2]
                target = (
                    REPO / "scripts" / "jetimage" / (f"{parts[0]}.py" if parts else "__init__.py")
                )
                if target.exists():
                    modules |= third_party_imports(target, seen)
                modules |= third_party_imports(REPO / "scripts" / "jetimage" / "__init__.py", seen)
            elif top not in sys.stdlib_module_names and top != "__future__":
                modules.add(top)
    return modules


def env_packages(path: Path) -> set[str]:
    env = yaml.safe_load(path.read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {re.split(r"[=<>]", p)[0].strip() for p in dep["pip"]}
        else:
            names.add(re.split(r"[=<>]", dep)[0].strip())
    return names


RULES = {name: r for name, r in rules().items() if r["script"]}


def test_every_scripted_rule_has_an_env():
    assert set(RULES) >= {"generate", "images", "dataset", "train", "evaluate", "report", "predict"}
    for name, rule in RULES.items():
        assert rule["conda"] is not None, f"rule {name}: no env file"
        assert rule["conda"].exists(), f"rule {name}: no env file"


@pytest.mark.parametrize("path", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_envs_parse_and_are_pinned(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    for dep in env["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            assert spec == "pip" or re.search(r"==?\d", spec), f"{path.name}: {spec} unpinned"


@pytest.mark.parametrize("name", sorted(RULES))
def test_env_provides_every_module_the_rule_imports(name):
    rule = RULES[name]
    needed = {PACKAGES.get(m, m) for m in third_party_imports(rule["script"])}
    missing = needed - env_packages(rule["conda"])
    assert not missing, f"rule {name}: {rule['conda'].name} lacks {sorted(missing)}"
