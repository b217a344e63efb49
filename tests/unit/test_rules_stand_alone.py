"""push/rules/ is plain code: it imports the standard library and push/model only, so its
rules run (and are tested) with no gevent, no Redis client and no server."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "push" / "rules"


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def allowed(name: str) -> bool:
    top = name.split(".")[0]
    return (
        top in sys.stdlib_module_names
        or top == "__future__"
        or name.startswith(("push.model", "push.rules"))
        or name == "push"
    )


@pytest.mark.parametrize("path", sorted(RULES.glob("*.py")), ids=lambda path: path.name)
def test_a_rules_module_imports_only_the_standard_library_and_the_model(path):
    assert sorted(name for name in imported(path) if not allowed(name)) == []


@pytest.mark.parametrize("path", sorted(RULES.glob("*.py")), ids=lambda path: path.name)
def test_a_rules_module_says_its_rule_in_words_at_the_top(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring is not None and len(docstring) > 80
