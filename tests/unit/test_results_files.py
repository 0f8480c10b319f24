"""Every figure is reproducible (issue 23): each results file says what made it, from which commit, when, and with
which settings.

A JSON file in `bench/results/` carries `command`, `commit`, `date` and `settings` (`gates`, a mapping of both gates'
thresholds; `folds`; `lockbox_fraction`; `cycles`, null only with a `cycles_note` saying why). A `.log` or `.jsonl`
file has such a JSON beside it (`X.json` or `X.log.json`). Every `bench/results/...` path that README.md or a page
of docs/ names exists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PROVENANCE_KEYS = ("command", "commit", "date", "settings")
SETTINGS_KEYS = ("gates", "folds", "lockbox_fraction", "cycles")
GATES = ("training", "backtest")
# A results path as the pages write it, possibly a glob (`probe_min_hold_*.jsonl`).
CITED = re.compile(r"bench/results/[\w.*-]*[\w*]")


def cited(readme: str) -> list[str]:
    """The results paths (relative to the repository) a page names, in order, once each."""
    return list(dict.fromkeys(CITED.findall(readme)))


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose figures must name their results files: README.md and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def pages_text(root: Path = ROOT) -> str:
    return "\n".join(page.read_text() for page in pages(root))


def provenance_file(path: Path) -> Path | None:
    """The JSON that carries `path`'s provenance: itself, or for a log, `X.json` or `X.log.json` beside it."""
    if path.suffix == ".json":
        return path
    for beside in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if beside.is_file():
            return beside
    return None


def missing_provenance(record: object) -> list[str]:
    """What a results record lacks of its provenance; empty when it is complete."""
    if not isinstance(record, dict):
        return ["not a JSON object"]
    missing = [key for key in PROVENANCE_KEYS if key not in record]
    settings = record.get("settings")
    if not isinstance(settings, dict):
        return missing + ([] if "settings" in missing else ["settings is not a mapping"])
    missing += [f"settings.{key}" for key in SETTINGS_KEYS if key not in settings]
    gates = settings.get("gates")
    if not isinstance(gates, dict) or any(gate not in gates for gate in GATES):
        missing.append("settings.gates: a mapping of the training and backtest gates' thresholds")
    if "cycles" in settings and settings["cycles"] is None and not settings.get("cycles_note"):
        missing.append("settings.cycles_note: why cycles is null")
    return missing


def problems(path: Path) -> list[str]:
    """What is wrong with one results file (a JSON, or a log with its JSON beside it)."""
    if not path.is_file():
        return [f"{path.name}: no such file"]
    carrier = provenance_file(path)
    if carrier is None:
        return [f"{path.name}: no {path.stem}.json or {path.name}.json beside it"]
    try:
        record = json.loads(carrier.read_text())
    except json.JSONDecodeError as error:
        return [f"{carrier.name}: not JSON ({error})"]
    return [f"{carrier.name}: lacks {item}" for item in missing_provenance(record)]


def cited_problems(readme: str, root: Path) -> list[str]:
    """Each cited results path that is missing (a glob matching nothing) or lacks its provenance."""
    found: list[str] = []
    for name in cited(readme):
        matches = sorted(root.glob(name)) if "*" in name else [root / name]
        found += [f"{name}: matches no file"] if not matches else [p for m in matches for p in problems(m)]
    return found


def results_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in {".json", ".log", ".jsonl"})


def test_the_pages_cite_results_files() -> None:
    # Guards the pattern and the page list: pages that name none would make the next test pass on nothing.
    names = cited(pages_text())
    assert ROOT / "docs" / "research.md" in pages()
    assert {"bench/results/research.json", "bench/results/skill_gate.json", "bench/results/scaling.json"} <= set(names)
    assert len(names) >= 5, names


def test_every_results_file_the_readme_or_docs_cite_exists_and_carries_its_provenance() -> None:
    problems_by_page = {page.name: cited_problems(page.read_text(), ROOT) for page in pages()}
    assert {page: found for page, found in problems_by_page.items() if found} == {}


def test_every_results_file_in_bench_results_carries_its_provenance() -> None:
    files = results_files(RESULTS)
    assert files, "bench/results/ holds no results file"
    assert [problem for path in files for problem in problems(path)] == []


def test_the_check_catches_a_missing_file_a_missing_key_and_a_bare_log(tmp_path: Path) -> None:
    # Given: a complete JSON, one without a commit, a log with no JSON beside it, a jsonl with one
    folder = tmp_path / "bench" / "results"
    folder.mkdir(parents=True)
    gates = {"training": {"max_p": 0.05}, "backtest": {"min_trades": 10}}
    settings = {"gates": gates, "folds": 4, "lockbox_fraction": 0.2, "cycles": 3}
    whole = {"command": "python bench/x.py", "commit": "abc", "date": "2026-12-06", "settings": settings}
    (folder / "good.json").write_text(json.dumps(whole))
    (folder / "nocommit.json").write_text(json.dumps({k: v for k, v in whole.items() if k != "commit"}))
    (folder / "bare.log").write_text("a figure\n")
    (folder / "rows.jsonl").write_text("{}\n")
    (folder / "rows.json").write_text(json.dumps(whole | {"settings": settings | {"cycles": None}}))
    readme = "see `bench/results/good.json`, `bench/results/gone.json` and bench/results/probe_*.jsonl."

    # When / Then
    assert problems(folder / "good.json") == []
    assert problems(folder / "nocommit.json") == ["nocommit.json: lacks commit"]
    assert problems(folder / "bare.log") == ["bare.log: no bare.json or bare.log.json beside it"]
    assert problems(folder / "rows.jsonl") == ["rows.json: lacks settings.cycles_note: why cycles is null"]
    assert cited_problems(readme, tmp_path) == [
        "gone.json: no such file",
        "bench/results/probe_*.jsonl: matches no file",
    ]
