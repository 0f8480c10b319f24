"""A cycle's summary as (label, value) rows: the HTML report and the terminal's final report print the same rows."""

from __future__ import annotations

from typing import Any

from agent_pipeline.engine.gates import DISCOVERY_DSR
from agent_pipeline.store.operations import Operation


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


def blocked_edge_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """When a backtest gate stopped a strategy whose walk-forward evidence is a discovery, say which setting
    would have let it through: the gate's default is the user's contract, but it should not hide an edge."""
    gate, backtest = meta.get("backtest_gate") or {}, meta.get("backtest_result") or {}
    reason = str(gate.get("reason") or "")
    family = reason.split(" ", 1)[0]
    dsr = backtest.get("deflated_sharpe")
    if gate.get("passed") or family not in GATE_SETTINGS or not isinstance(dsr, int | float) or dsr < DISCOVERY_DSR:
        return []
    setting, why = GATE_SETTINGS[family]
    text = (
        f"the backtest gate ({reason}) stopped a strategy whose deflated Sharpe is {dsr:.2f} (a discovery at "
        f"{DISCOVERY_DSR}); {why}. {setting} sets this gate"
    )
    return [("Gate note", text)]


def gate_row(meta: dict[str, Any], key: str, label: str) -> list[tuple[str, str]]:
    """`passed`, `failed: <reason>` or `bypassed: <reason>` for one gate, if it ran."""
    gate = meta.get(key)
    if not gate:
        return []
    if gate.get("passed"):
        return [(label, "passed")]
    return [(label, f"{'bypassed' if gate.get('bypassed') else 'failed'}: {gate.get('reason')}")]


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
    rows = [("Discovery", "yes" if summary.get("discovery") else f"no (deflated Sharpe below {DISCOVERY_DSR})")]
    box = summary["lockbox"] or {}
    if "error" in box:
        return [*rows, ("Lockbox", str(box["error"]))]
    text = (
        f"lockbox (never seen by the loop) {box.get('start', '-')} to {box.get('end', '-')}: return "
        f"{pct(box.get('total_return'))} vs buy-and-hold {pct(box.get('buy_and_hold_return'))}, Sharpe "
        f"{num(box.get('sharpe_ratio'), 2)}, {plural(box.get('num_trades'), 'trade')}"
    )
    return [*rows, ("Lockbox", text)]


def report_rows(operation: Operation) -> list[tuple[str, str]]:
    """Strategy, training, gates, backtest against buy-and-hold, evidence, assessment, lockbox and artifacts."""
    meta = operation.metadata
    rows = [("Strategy", f"{meta.get('strategy_name') or '-'}  (designer: {meta.get('designer') or '-'})")]
    training = meta.get("training_result")
    if training:
        rows.append((
            "Training",
            f"walk-forward accuracy {pct(training.get('accuracy'))} (majority class "
            f"{pct(training.get('baseline_accuracy'))}), balanced accuracy {pct(training.get('balanced_accuracy'))} "
            f"(chance 33.3%), macro F1 {num(training.get('macro_f1'), 2)}, log-loss {num(training.get('log_loss'))} "
            f"vs prior {num(training.get('prior_log_loss'))}; final model loss {num(training.get('initial_loss'))} "
            f"-> {num(training.get('final_loss'))}, {training.get('epochs_run', '-')} epochs on "
            f"{training.get('device', '-')}",
        ))  # fmt: skip
    rows += gate_row(meta, "training_gate", "Training gate")
    backtest = meta.get("backtest_result")
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
        rows += [(f"  fold {f.get('fold')}", fold_line(f)) for f in folds]
        if backtest.get("deflated_sharpe") is not None:
            rows.append((
                "Evidence",
                f"PSR {num(backtest.get('psr'), 2)}, deflated Sharpe {num(backtest.get('deflated_sharpe'), 2)} over "
                f"{plural(backtest.get('trials'), 'trial')} on this series (discovery at {DISCOVERY_DSR})",
            ))  # fmt: skip
    rows += gate_row(meta, "backtest_gate", "Backtest gate")
    rows += blocked_edge_rows(meta)
    assessment = meta.get("assessment")
    if assessment:
        rows.append(("Assessment", str(assessment.get("verdict"))))
        for key in ("strengths", "weaknesses", "suggestions"):
            rows.append((f"  {key}", "\n".join(f"- {item}" for item in assessment.get(key) or [])))
    rows += lockbox_rows(operation.result_summary or {})
    if operation.error_message:
        rows.append(("Error", operation.error_message))
        if " gate failed: " in operation.error_message:
            rows.append(("Next", "run again: the designer reads this failure; --bypass-gates shows every phase"))
    for key, label in (
        ("strategy_path", "Strategy file"), ("model_path", "Model"), ("backtest_dir", "Backtest files"),
        ("assessment_path", "Assessment file"),
    ):  # fmt: skip
        if meta.get(key):
            rows.append((label, str(meta[key])))
    if meta.get("cost_usd"):
        rows.append(("LLM cost", f"${float(meta['cost_usd']):.4f}"))
    return rows
