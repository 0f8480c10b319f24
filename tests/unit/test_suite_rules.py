"""The suite's own rules: helpers live in helper modules, and each hazardous helper is written once.

A test module that imports another test module runs that module's tests' setup code at import time and ties two
files that pytest-xdist may put in different processes; a conftest imported by name is loaded a second time
under another module name. So tests and benches import helpers from modules whose names do not start with
`test_` (tests/stack.py, tests/services.py, tests/cycles.py, tests/e2e/shell.py, ...), and fixtures reach a test
through its level's conftest. One `free_port` (tests/private_servers.py) serves the suite and the benches.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SEARCHED = ("tests", "bench")


def python_files() -> list[Path]:
    return sorted(path for folder in SEARCHED for path in (REPO / folder).rglob("*.py"))


def imported_modules(tree: ast.AST) -> list[str]:
    """Every module an `import` or `from ... import` names, with `from a import b` also counted as `a.b`."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def forbidden_imports(source: str) -> list[str]:
    """The suite's modules that `source` imports although they are test modules (`test_*`) or conftests."""
    return [
        name
        for name in imported_modules(ast.parse(source))
        if name.split(".")[0] == "tests"
        and any(part.startswith("test_") or part == "conftest" for part in name.split(".")[1:])
    ]


def functions_named(name: str) -> list[str]:
    """`path:line` of every function called `name` defined under tests/ and bench/."""
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_no_module_of_the_suite_or_the_benches_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(REPO)): bad for path in python_files() if (bad := forbidden_imports(path.read_text()))
    }
    assert offenders == {}, "move the shared helper to a module whose name does not start with test_"


@pytest.mark.parametrize(
    "source",
    [
        "from tests.integration.cycle.test_cycle_stack import wait_until",
        "import tests.e2e.test_report",
        "from tests.e2e import test_report",
        "from tests.conftest import forget_store",
        "def helper():\n    from tests.integration.test_history import finished_cycle\n",
    ],
)
def test_the_import_rule_catches_a_test_module_or_conftest_import(source: str) -> None:
    assert forbidden_imports(source)


def test_the_import_rule_lets_helper_modules_and_the_package_through() -> None:
    source = "from tests.stack import start_stack\nfrom tests.private_servers import free_port\nimport agent_pipeline"
    assert forbidden_imports(source) == []


def test_free_port_is_defined_once_under_tests_and_bench() -> None:
    definitions = functions_named("free_port")
    assert [where.split(":")[0] for where in definitions] == ["tests/private_servers.py"], definitions
