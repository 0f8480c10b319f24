"""The Claude assessor: one tool call carrying an assessment, validated with pydantic and repaired."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from agent_pipeline.engine.strategy import Strategy, dump_strategy
from agent_pipeline.errors import AssessmentError
from agent_pipeline.gates import DISCOVERY_DSR, GATES
from agent_pipeline.llm import claude
from agent_pipeline.llm.assessor import Assessment, AssessmentOutcome, Assessor
from agent_pipeline.llm.assessors.offline import chance_of, class_count, fold_count

if TYPE_CHECKING:
    from agent_pipeline.config import Settings

logger = logging.getLogger(__name__)

TOOL_NAME = "submit_assessment"
SYSTEM_PROMPT = """You assess trading strategies produced by an automated research loop.
You receive the strategy, its training metrics and its backtest, both walk-forward: each fold's bars are
predicted and traded by a model trained only on earlier bars, and the folds are stitched together
(fractions: 0.05 = 5%). The prompt says how many folds and how many label classes the cycle had.
Judge whether the strategy has a real edge: compare with buy-and-hold, weigh Sharpe, drawdown, win rate,
the number of trades and signs of overfitting (validation accuracy vs out-of-sample accuracy).
Judge the model's skill against chance for its own classes: balanced accuracy scores `chance`
(1 / n_classes: 50% with two classes, 33.3% with three) with no skill, and `skill_pvalue` is the one-sided
p-value that it beats chance (0.05 or less is skill). Compare accuracy with `baseline_accuracy` (always
predicting the majority class) and `log_loss` with `prior_log_loss` (predicting the class frequencies).
A gate that did not pass, or was bypassed, is a failure: say what it said; such a cycle is not a discovery.
Answer only by calling the `submit_assessment` tool: a verdict (promising, mediocre or poor) and 2-4
specific strengths, weaknesses and actionable suggestions for the next design, each citing numbers.
"""


class AnthropicAssessor(Assessor):
    """Assesses with Claude through the real `anthropic` SDK."""

    name = "anthropic"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.model = claude.resolve_model(settings.model)
        self.max_repairs = settings.design_max_repairs
        self.client = client or claude.make_client(settings)

    def assess(
        self,
        *,
        strategy: Strategy,
        training_result: dict[str, Any],
        backtest_result: dict[str, Any],
        gates: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> AssessmentOutcome:
        conversation = claude.Conversation(self.client, model=self.model, system=SYSTEM_PROMPT, tool=assessment_tool())
        prompt = build_prompt(strategy, training_result, backtest_result, gates)
        try:
            reply = conversation.run(prompt, _validate, max_repairs=self.max_repairs)
        except claude.RepairsExhausted as exc:
            error = AssessmentError(
                f"assessment invalid after {self.max_repairs} repair attempts: {'; '.join(exc.errors)[:1000]}"
            )
            # The caller still records the spend of a failed design/assessment.
            error.usage = exc.usage  # type: ignore[attr-defined]
            raise error from None
        assessment = reply.value
        logger.info("strategy assessed", extra={"strategy": strategy.name, "verdict": assessment.verdict})
        return AssessmentOutcome(
            verdict=assessment.verdict,
            strengths=list(assessment.strengths),
            weaknesses=list(assessment.weaknesses),
            suggestions=list(assessment.suggestions),
            usage=reply.usage,
            assessor=self.name,
            notes=f"anthropic assessor ({self.model}), {reply.attempts} turn(s)",
        )


def assessment_tool() -> dict[str, Any]:
    return {
        "name": TOOL_NAME,
        "description": "Submit the assessment of the strategy's results.",
        "input_schema": Assessment.model_json_schema(),
    }


def build_prompt(
    strategy: Strategy,
    training_result: dict[str, Any],
    backtest_result: dict[str, Any],
    gates: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> str:
    n_classes = class_count(strategy, training_result)
    folds = fold_count(strategy, training_result, backtest_result)
    over = f"{folds} walk-forward folds" if folds else "the walk-forward folds"
    return "\n".join(
        [
            "## Strategy (YAML)",
            dump_strategy(strategy),
            f"## Training result (out-of-sample over {over}; {n_classes} label classes, chance "
            f"{chance_of(strategy, training_result):.1%})",
            json.dumps(training_result, indent=1, default=str),
            f"## Backtest result (walk-forward out-of-sample, stitched over {over})",
            json.dumps(backtest_result, indent=1, default=str),
            "## Gates",
            _gates_line(gates),
            "## Evidence across trials",
            _evidence_line(backtest_result),
        ]
    )


def _gates_line(gates: Mapping[str, Mapping[str, Any] | None] | None) -> str:
    """Each gate as it was: passed, failed, or bypassed with what it would have said."""
    lines = []
    for key, label in GATES:
        gate = (gates or {}).get(key)
        if not gate:
            lines.append(f"{label} gate: not recorded")
        elif gate.get("bypassed"):
            lines.append(f"{label} gate: bypassed (--bypass-gates); it would have failed: {gate.get('reason')}")
        else:
            lines.append(f"{label} gate: {'passed' if gate.get('passed') else 'failed: ' + str(gate.get('reason'))}")
    return "\n".join(lines)


def _evidence_line(backtest_result: dict[str, Any]) -> str:
    """Trials and deflated Sharpe, spelled out: a verdict must not ignore how many strategies were tried."""
    trials, dsr = backtest_result.get("trials"), backtest_result.get("deflated_sharpe")
    psr = backtest_result.get("psr")
    return (
        f"trials: {trials} strategies tried on this series; deflated_sharpe: {dsr} (probability that the true "
        f"Sharpe exceeds the best that {trials} zero-skill trials reach by luck; {DISCOVERY_DSR} or more, with "
        "every gate passed, makes a candidate, which becomes a discovery only if the series' probability of "
        "backtest overfitting and its purged combinatorial paths hold up); "
        f"psr: {psr}. Do not call a strategy promising with fewer than 10 trades or with a return no better "
        "than buy-and-hold on the same bars."
    )


def _validate(document: Any) -> Assessment:
    try:
        return Assessment.model_validate(document)
    except ValidationError as exc:
        errors = [
            f"{'.'.join(str(p) for p in e['loc']) or 'assessment'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise claude.OutputRejected(errors) from None
