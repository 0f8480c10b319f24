"""A cycle's summary as (label, value) rows: the HTML report and the terminal's final report print the same rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_pipeline.errors import KtrdrError
from agent_pipeline.gates import DISCOVERY_DSR, GATES, Verdict, bypassed_gates, format_p
from agent_pipeline.store.history import GATE_OUTCOMES, outcome_of
from agent_pipeline.store.operations import Operation
from agent_pipeline.store.record import CycleRecord

if TYPE_CHECKING:
    from agent_pipeline.engine.strategy import Strategy


def pct(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "-"


def plural(count: Any, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count if count is not None else '-'} {noun}s"


def num(value: Any, digits: int = 3) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, int | float) else "-"


# A backtest gate whose default blocks a kind of real edge, and the setting that opens it (issue 14).
GATE_SETTINGS = {
    "win_rate_too_low": (
        "BACKTEST_GATE_MIN_WIN_RATE",
        "trend-following wins rarely and big: on planted trend edges the default 45% stopped every cycle that traded",
    ),
    "drawdown_too_high": ("BACKTEST_GATE_MAX_DRAWDOWN", "an always-invested strategy can pass through deep drawdowns"),
}


def blocked_edge_rows(meta: CycleRecord) -> list[tuple[str, str]]:
    """When a backtest gate stopped a strategy whose walk-forward evidence makes a candidate, say which setting
    would have let it through: the gate's default is the user's contract, but it should not hide an edge."""
    verdict, backtest = (
        Verdict.from_record("backtest_gate", meta.backtest_gate),
        meta.backtest_result or {},
    )
    dsr = backtest.get("deflated_sharpe")
    if verdict is None or verdict.passed or verdict.code not in GATE_SETTINGS:
        return []
    if not isinstance(dsr, int | float) or dsr < DISCOVERY_DSR:
        return []
    family, reason = verdict.code, verdict.message
    setting, why = GATE_SETTINGS[family]
    text = (
        f"the backtest gate ({reason}) stopped a strategy whose deflated Sharpe is {dsr:.2f} (a candidate at "
        f"{DISCOVERY_DSR}); {why}. {setting} sets this gate"
    )
    return [("Gate note", text)]


def gate_row(meta: CycleRecord, key: str, label: str) -> list[tuple[str, str]]:
    """`passed`, `failed: <reason>` or `bypassed: <what it would have said>` for one gate, if it ran.

    A bypassed gate is never shown as passed: `--bypass-gates` let the cycle go on, not its figures pass (issue 23).
    """
    gate = meta.get(key)
    if not gate:
        return []
    if gate.get("bypassed"):
        return [(label, f"bypassed: {gate.get('reason')}")]
    if gate.get("passed"):
        return [(label, "passed")]
    return [(label, f"failed: {gate.get('reason')}")]


def fold_line(fold: dict[str, Any]) -> str:
    return (
        f"{fold.get('start', '-')} to {fold.get('end', '-')}: return {pct(fold.get('total_return'))} vs "
        f"{pct(fold.get('buy_and_hold_return'))}, Sharpe {num(fold.get('sharpe_ratio'), 2)}, "
        f"{plural(fold.get('num_trades'), 'trade')}"
    )


def lockbox_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The lockbox line: shown to people, never fed to the loop."""
    if "lockbox" not in summary:
        return []
    box = summary["lockbox"] or {}
    if "error" in box:
        return [("Lockbox", str(box["error"]))]
    text = (
        f"lockbox (never seen by the loop) {box.get('start', '-')} to {box.get('end', '-')}: return "
        f"{pct(box.get('total_return'))} vs buy-and-hold {pct(box.get('buy_and_hold_return'))}, Sharpe "
        f"{num(box.get('sharpe_ratio'), 2)}, {plural(box.get('num_trades'), 'trade')}"
    )
    return [("Lockbox", text)]


def discovery_rows(meta: CycleRecord, summary: dict[str, Any]) -> list[tuple[str, str]]:
    """`yes`, or `no` and why not, for a cycle that finished or that a gate stopped."""
    stopped = [key for key, _ in GATES if _stopped(meta.get(key))]
    if not stopped and "lockbox" not in summary and "discovery" not in summary:
        return []
    return [("Discovery", discovery_text(meta, summary))]


def discovery_text(meta: CycleRecord, summary: dict[str, Any]) -> str:
    """A candidate completed with both gates passed, not bypassed, and a deflated Sharpe of DISCOVERY_DSR or more
    over the series' current trials (issue 23); a discovery is a candidate the promotion step promoted (issue 25).
    An older row's `discovery` flag is not trusted past its gates."""
    stopped = [label.lower() for key, label in GATES if _stopped(meta.get(key))]
    if stopped:
        return f"no (the {stopped[0]} gate stopped it)"
    bypassed = [label.lower() for label, _ in bypassed_gates(meta)]
    if bypassed:
        gates = " and the ".join(bypassed)
        return f"no (gates bypassed: the {gates} gate{'s' if len(bypassed) > 1 else ''} would have stopped it)"
    dsr = (meta.backtest_result or {}).get("deflated_sharpe")
    current = f"deflated Sharpe over the series' current trials {{}} {DISCOVERY_DSR}"
    promotion = summary.get("promotion") or {}
    if summary.get("discovery"):
        if promotion:  # promoted (issue 25); an older row was flagged on its deflated Sharpe alone
            return "yes (a candidate promoted: its series' PBO and its paths hold up; see Promotion)"
        return f"yes (both gates passed, {current.format('at least')}; {num(dsr, 2)} when it ran)"
    if promotion.get("status") == "candidate":
        return "no, a candidate (not promoted yet; see Promotion)"
    if promotion.get("status") == "rejected":
        return "no, a candidate rejected by the promotion step (see Promotion)"
    if summary.get("discovery_at_run"):
        return f"no (flagged when it ran, then withdrawn: {current.format('below')})"
    if isinstance(dsr, int | float) and dsr < DISCOVERY_DSR:
        return f"no (deflated Sharpe {num(dsr, 2)} below {DISCOVERY_DSR})"
    return f"no ({current.format('below')})"


def promotion_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The promotion step of a candidate (issue 25): its status and reason, the series' PBO against its limit, and
    the Sharpe ratio of each purged combinatorial path."""
    promotion = summary.get("promotion")
    if not promotion:
        return []
    pbo = promotion.get("pbo")
    limit = f"at most {num(promotion.get('max_pbo'), 2)}"
    rows = [
        ("Promotion", f"{promotion.get('status')}: {promotion.get('reason')}"),
        ("  PBO", f"{num(pbo, 2)} ({limit})" if pbo is not None else f"- ({promotion.get('pbo_reason')}; {limit})"),
    ]
    paths = promotion.get("paths") or {}
    if not paths.get("sharpes"):
        return [*rows, ("  paths", f"- ({promotion.get('paths_reason')})")]
    sharpes = ", ".join(num(s, 2) for s in paths["sharpes"])
    return [*rows, (
        "  paths",
        f"Sharpe {sharpes} over {plural(len(paths['sharpes']), 'path')} ({paths.get('groups')} groups, "
        f"{paths.get('test_groups')} held out): median {num(paths.get('median'), 2)}, "
        f"{pct(paths.get('positive_share'))} positive (at least {pct(promotion.get('min_paths_positive'))})",
    )]  # fmt: skip


def _stopped(gate: dict[str, Any] | None) -> bool:
    """A gate that failed and was not bypassed: it ended the cycle."""
    if not gate:
        return False
    return not gate.get("passed") and not gate.get("bypassed")


def training_text(meta: CycleRecord, training: dict[str, Any]) -> str:
    """Walk-forward accuracy against the majority class, balanced accuracy against chance for the cycle's
    classes with the skill p-value, log loss against the prior's, and the final model's training."""
    folds = fold_count(meta)
    over = f" over {plural(folds, 'walk-forward fold')}" if folds else ""
    return (
        f"walk-forward accuracy {pct(training.get('accuracy'))} (majority class "
        f"{pct(training.get('baseline_accuracy'))}){over}, balanced accuracy {pct(training.get('balanced_accuracy'))}"
        f"{chance_text(meta, training)}, macro F1 {num(training.get('macro_f1'), 2)}, log loss "
        f"{num(training.get('log_loss'))} vs the prior's {num(training.get('prior_log_loss'))}; final model loss "
        f"{num(training.get('initial_loss'))} -> {num(training.get('final_loss'))}, "
        f"{training.get('epochs_run', '-')} epochs on {training.get('device', '-')}"
    )


def chance_text(meta: CycleRecord, training: dict[str, Any]) -> str:
    """` (chance 50.0% for 2 classes, p = 0.41)`; empty when the cycle's classes cannot be known."""
    classes = class_count(meta, training)
    chance = training.get("chance")
    if not isinstance(chance, int | float):
        if classes is None:
            return ""
        chance = 1.0 / classes
    pvalue = training.get("skill_pvalue")
    skill = f", p = {format_p(float(pvalue))}" if isinstance(pvalue, int | float) else ""
    return f" (chance {pct(chance)}{f' for {classes} classes' if classes else ''}{skill})"


def class_count(meta: CycleRecord, training: dict[str, Any]) -> int | None:
    """The label classes of the cycle's out-of-sample rows: recorded since issue 23; for older rows, two when
    the strategy's labels have no HOLD class and three otherwise; None when its strategy file is gone."""
    recorded = training.get("n_classes")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1:
        return recorded
    strategy = _strategy(meta)
    if strategy is None:
        return None
    return 3 if strategy.labels.hold else 2


def fold_count(meta: CycleRecord) -> int | None:
    """How many walk-forward folds the cycle was evaluated on: as its training or backtest recorded them, else
    its strategy's `evaluation.folds`, else the cycle's evaluation settings (which a strategy may override)."""
    training, backtest = meta.training_result or {}, meta.backtest_result or {}
    recorded = (training.get("walk_forward") or {}).get("folds")
    if isinstance(recorded, int):
        return recorded
    if isinstance(backtest.get("folds"), list) and backtest["folds"]:
        return len(backtest["folds"])
    strategy = _strategy(meta)
    if strategy is not None and strategy.evaluation.folds:
        return strategy.evaluation.folds
    folds = (meta.evaluation or {}).get("folds")
    return folds if isinstance(folds, int) else None


def _strategy(meta: CycleRecord) -> Strategy | None:
    """The cycle's strategy from its file on this host, for rows that predate a figure; None if it is gone."""
    path = Path(str(meta.strategy_path or ""))
    if not path.is_file():
        return None
    from agent_pipeline.engine.strategy import load_strategy  # lazy: start-up cost (pydantic models, YAML)

    try:
        return load_strategy(path)
    except (KtrdrError, OSError, ValueError):
        return None


def portfolio_rows(backtest: dict[str, Any]) -> list[tuple[str, str]]:
    """A universe's portfolio (issue 24): how it trades and, ranked, the figures Qlib and RD-Agent(Q) publish."""
    mode = backtest.get("portfolio_mode")
    if mode is None:
        return []
    if mode != "rank":
        return [("  portfolio", "timing: each symbol trades its own signal, equal-weight; trades counted over all")]
    return [(
        "  portfolio",
        f"rank: long the top, short the bottom by predicted up-probability; daily rank IC "
        f"{num(backtest.get('rank_ic'), 4)}, ICIR {num(backtest.get('icir'), 2)} over "
        f"{plural(backtest.get('ic_days'), 'day')}, annualised return {pct(backtest.get('annualised_return'))}",
    )]  # fmt: skip


def report_rows(operation: Operation) -> list[tuple[str, str]]:
    """Strategy, training, gates, backtest against buy-and-hold, evidence, assessment, lockbox and artifacts."""
    meta = operation.record
    rows = [("Strategy", f"{meta.strategy_name or '-'}  (designer: {meta.designer or '-'})")]
    training = meta.training_result
    if training:
        rows.append(("Training", training_text(meta, training)))
    rows += gate_row(meta, "training_gate", "Training gate")
    backtest = meta.backtest_result
    if backtest:
        folds = backtest.get("folds") or []
        span = f"{len(folds)} walk-forward folds, {backtest.get('start', '-')} to {backtest.get('end', '-')}: "
        rows.append((
            "Backtest",
            f"{span if folds else ''}return {pct(backtest.get('total_return'))} vs buy-and-hold "
            f"{pct(backtest.get('buy_and_hold_return'))} (excess {pct(backtest.get('excess_return'))}), "
            f"Sharpe {num(backtest.get('sharpe_ratio'), 2)}, max drawdown {pct(backtest.get('max_drawdown'))}, "
            f"win rate {pct(backtest.get('win_rate'))}, {plural(backtest.get('num_trades'), 'trade')}, "
            f"exposure {pct(backtest.get('exposure'))}",
        ))  # fmt: skip
        rows += portfolio_rows(backtest)
        rows += [(f"  fold {f.get('fold')}", fold_line(f)) for f in folds]
        if backtest.get("deflated_sharpe") is not None:
            rows.append((
                "Evidence",
                f"PSR {num(backtest.get('psr'), 2)}, deflated Sharpe {num(backtest.get('deflated_sharpe'), 2)} over "
                f"{plural(backtest.get('trials'), 'trial')} on this series (a candidate at {DISCOVERY_DSR})",
            ))  # fmt: skip
    rows += gate_row(meta, "backtest_gate", "Backtest gate")
    rows += blocked_edge_rows(meta)
    assessment = meta.assessment
    if assessment:
        rows.append(("Assessment", str(assessment.get("verdict"))))
        for key in ("strengths", "weaknesses", "suggestions"):
            rows.append((f"  {key}", "\n".join(f"- {item}" for item in assessment.get(key) or [])))
    rows += discovery_rows(meta, operation.result_summary or {}) + promotion_rows(operation.result_summary or {})
    rows += lockbox_rows(operation.result_summary or {})
    if operation.error_message:
        rows.append(("Error", operation.error_message))
        if outcome_of(operation)[0] in GATE_OUTCOMES.values():
            rows.append(("Next", "run again: the designer reads this failure; --bypass-gates shows every phase"))
    for key, label in (
        ("strategy_path", "Strategy file"), ("model_path", "Model"), ("backtest_dir", "Backtest files"),
        ("assessment_path", "Assessment file"),
    ):  # fmt: skip
        if value := meta.get(key):
            rows.append((label, str(value)))
    if meta.cost_usd:
        rows.append(("LLM cost", f"${meta.cost_usd:.4f}"))
    return rows
