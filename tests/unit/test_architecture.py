"""The architecture holds: no import cycle between the package's files, and every lazy import says why it is lazy.

import-linter (`lint-imports`, run by `make test` and `make lint`) holds the layers; these tests hold what its
contracts do not say: a cycle inside one layer, and a function-level import that only dodges a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = "agent_pipeline"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_behind_a_third_module() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_the_package_files_counting_imports_inside_functions() -> None:
    built = grimp.build_graph(PACKAGE, exclude_type_checking_imports=True)
    graph = {module: built.find_modules_directly_imported_by(module) for module in built.modules}
    # A package's __init__ is not an edge target unless named: `from pkg import module` imports pkg.module.
    assert strongly_connected(graph) == []


def lazy_imports(path: Path) -> list[tuple[int, str]]:
    """Function-level imports of the package's own modules (not under TYPE_CHECKING): (line, text)."""
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.splitlines()
    top = {id(node) for node in tree.body}
    checked = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    return [
        (node.lineno, lines[node.lineno - 1])
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and id(node) not in top | checked
        and (node.module or "").startswith(PACKAGE)
        and "migrations" not in path.parts
    ]


def says_why(lines: list[str], number: int) -> bool:
    """The import's own line, or the comment just above it, says `lazy:` and why."""
    above = lines[number - 2].strip() if number >= 2 else ""
    return "# lazy:" in lines[number - 1] or (above.startswith("#") and "lazy:" in above)


def test_every_lazy_import_of_the_package_says_it_is_there_for_start_up_cost() -> None:
    silent = []
    for path in sorted(ROOT.rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, text in lazy_imports(path):
            if not says_why(lines, number):
                silent.append(f"{path.relative_to(ROOT.parent)}:{number}: {text.strip()}")
    assert silent == [], "lazy imports must say `# lazy: <start-up cost>`:\n" + "\n".join(silent)


def test_the_lazy_import_rule_catches_a_silent_one(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n    from agent_pipeline.config import get_settings\n\n"
        "def g():\n    from agent_pipeline.errors import KtrdrError  # lazy: start-up cost (none, really)\n"
    )
    lines = sample.read_text().splitlines()
    assert [says_why(lines, number) for number, _ in lazy_imports(sample)] == [False, True]
