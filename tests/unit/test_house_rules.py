"""Issue 26's measures of the house, checked on every run: each can fail when someone breaks it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "agent_pipeline"
MAX_CLASS_LINES, MAX_FUNCTION_LINES = 200, 50
# String-key reads of an operation's metadata left: the gates' own reader, the migration, and a few loops over
# key tables (a view's gate and artifact lists, MLflow's tags).
MAX_METADATA_READS = 15


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module `path` imports, at the top, inside functions or under TYPE_CHECKING alike."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & known - {name}


def oversized(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        length = (getattr(node, "end_lineno", 0) or 0) - getattr(node, "lineno", 0) + 1
        if isinstance(node, ast.ClassDef) and length > MAX_CLASS_LINES:
            found.append(f"{path.name}: class {node.name} has {length} lines")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and length > MAX_FUNCTION_LINES:
            found.append(f"{path.name}: {node.name}() has {length} lines")
    return found


def test_no_two_modules_import_each_other_not_even_lazily_or_for_type_checking() -> None:
    known = modules()
    graph = {name: imports_of(name, path, set(known)) for name, path in known.items()}
    mutual = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph.get(b, set())})
    assert mutual == []


def test_no_class_over_200_lines_and_no_function_over_50() -> None:
    assert [problem for path in modules().values() for problem in oversized(path)] == []


def test_the_size_check_catches_a_long_function(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * 60)
    assert oversized(long) == ["long.py: f() has 61 lines"]


def test_one_atomic_write_and_few_string_key_reads_of_the_cycle_record() -> None:
    sources = {path: path.read_text() for path in modules().values()}
    replaces = [path.name for path, text in sources.items() for _ in re.finditer(r"\bos\.replace\(", text)]
    assert replaces == ["files.py"]
    reads = sum(len(re.findall(r"\b(?:metadata|meta)\.get\(", text)) for text in sources.values())
    assert reads <= MAX_METADATA_READS


def test_no_gate_message_is_parsed_outside_the_gates_and_the_migration_that_gave_old_rows_verdicts() -> None:
    # a message taken apart: `" gate failed: " in message`, `.startswith(prefix)` on it, a regex over it
    parsing = re.compile(r'gate failed: "\s*in\b|\(Training\|Backtest\) gate failed|\b_GATE\b|GATE_PREFIXES')
    offenders = [
        name
        for name, path in modules().items()
        if parsing.search(path.read_text())
        and not name.startswith(("agent_pipeline.gates", "agent_pipeline.store.migrations"))
    ]
    assert offenders == []


def test_the_spec_imports_the_gates_from_the_package_the_design_card_names() -> None:
    from agent_pipeline.gates import check_backtest_gate, check_training_gate

    assert check_training_gate({"accuracy": 0.35, "final_loss": 0.5, "initial_loss": 1.0}) == (
        False,
        "accuracy_below_threshold (35% < 45%)",
    )
    assert check_backtest_gate({"win_rate": 0.6, "max_drawdown": 0.55, "sharpe_ratio": 1.0})[1] == (
        "drawdown_too_high (55% > 40%)"
    )
    assert (PACKAGE / "tasks").is_dir() and (PACKAGE / "gates").is_dir()
