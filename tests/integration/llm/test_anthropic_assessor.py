"""The Claude assessor through the real `anthropic` SDK against a scripted HTTP server on loopback."""

from __future__ import annotations

import json

import pytest

from agent_pipeline.config import Settings
from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.errors import AssessmentError, LLMError
from agent_pipeline.llm import get_assessor
from tests.fake_anthropic import FakeAnthropic

STRATEGY = parse_strategy(
    {
        "name": "rsi_probe",
        "symbol": "EURUSD",
        "timeframe": "1h",
        "indicators": [{"type": "rsi", "period": 14}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 20, 40]}}},
    }
)
TRAINING = {"accuracy": 0.52, "final_loss": 0.7, "initial_loss": 1.1}
BACKTEST = {"total_return": 0.04, "buy_and_hold_return": 0.06, "sharpe_ratio": 0.3, "num_trades": 17}
ASSESSMENT = {
    "verdict": "mediocre",
    "strengths": ["Positive Sharpe of 0.3", "17 trades on held-out data"],
    "weaknesses": ["Return 4% trails buy-and-hold 6%", "Accuracy 52% is modest"],
    "suggestions": ["Add a trend filter such as ADX", "Try a longer ZigZag lookahead"],
}


def assess(**overrides: object):
    options = {
        "anthropic_api_key": "sk-ant-test-PLANTED-x",
        "llm_timeout": 0.5,
        "llm_max_retries": 1,
        **overrides,
    }
    assessor = get_assessor(Settings(**options))
    return assessor.assess(strategy=STRATEGY, training_result=TRAINING, backtest_result=BACKTEST)


def test_a_valid_assessment_tool_call_becomes_an_outcome(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_tool_use("submit_assessment", ASSESSMENT, input_tokens=900, output_tokens=200)
    outcome = assess()
    assert (outcome.verdict, outcome.assessor) == ("mediocre", "anthropic")
    assert outcome.suggestions == ASSESSMENT["suggestions"]
    assert outcome.usage is not None and outcome.usage.cost_usd > 0
    prompt = fake_anthropic.bodies[0]["messages"][0]["content"]
    assert "name: rsi_probe" in prompt and '"buy_and_hold_return": 0.06' in prompt
    assert fake_anthropic.bodies[0]["tools"][0]["input_schema"]["title"] == "Assessment"


def test_an_invalid_assessment_is_repaired_with_the_exact_errors(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_tool_use("submit_assessment", {**ASSESSMENT, "verdict": "great", "strengths": ["only"]})
    fake_anthropic.reply_tool_use("submit_assessment", ASSESSMENT)
    assert assess().verdict == "mediocre"
    result = fake_anthropic.bodies[1]["messages"][2]["content"][0]
    assert result["is_error"] is True
    assert "- verdict: Input should be 'promising', 'mediocre' or 'poor'" in result["content"]
    assert "- strengths: List should have at least 2 items after validation, not 1" in result["content"]


def test_repeatedly_invalid_assessments_raise_assessment_error(fake_anthropic: FakeAnthropic) -> None:
    for _ in range(2):
        fake_anthropic.reply_tool_use("submit_assessment", {"verdict": "poor"})
    with pytest.raises(
        AssessmentError, match=r"^assessment invalid after 1 repair attempts: strengths: Field required"
    ):
        assess(design_max_repairs=1)


def test_overloaded_api_raises_llm_error_after_retries(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_error(529, "overloaded_error", times=2)
    with pytest.raises(LLMError, match=r"^Anthropic API error 529 \(overloaded_error\) after 1 retries"):
        assess()
    assert len(fake_anthropic.requests) == 2


def test_the_prompt_spells_out_trials_and_the_deflated_sharpe(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_tool_use("submit_assessment", ASSESSMENT, input_tokens=900, output_tokens=200)
    evidence = {**BACKTEST, "trials": 37, "deflated_sharpe": 0.4123, "psr": 0.88}
    get_assessor(Settings(anthropic_api_key="sk-ant-test-x", llm_timeout=0.5, llm_max_retries=1)).assess(
        strategy=STRATEGY, training_result=TRAINING, backtest_result=evidence
    )
    prompt = json.dumps(fake_anthropic.bodies[0])
    assert "trials: 37 strategies tried on this series" in prompt
    assert "deflated_sharpe: 0.4123" in prompt and "walk-forward out-of-sample" in prompt
