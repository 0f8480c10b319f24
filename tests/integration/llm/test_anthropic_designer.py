"""The Claude designer through the real `anthropic` SDK against a scripted HTTP server on loopback."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from agent_pipeline.config import Settings, reset_settings
from agent_pipeline.errors import DesignError, LLMError
from agent_pipeline.llm import DataSeries, PastCycle, ResearchMemory, get_designer
from agent_pipeline.llm.cost import estimate_cost
from agent_pipeline.store.operations import get_store
from tests.fake_anthropic import FakeAnthropic, Scripted
from tests.gate_records import gate_stop

PLANTED_KEY = "sk-ant-test-PLANTED-0123456789abcdef"
CATALOGUE = [
    DataSeries("EURUSD", "1h", "2023-01-02", "2023-12-29", 6123),
    DataSeries("SP500", "1d", "2000-01-03", "2024-01-02", 6036),
]
STRATEGY = {
    "name": "rsi_swing",
    "description": "RSI regimes",
    "symbol": "EURUSD",
    "timeframe": "1h",
    "indicators": [{"type": "rsi", "period": 14}],
    "fuzzy_sets": {"rsi_14": {"low": {"type": "triangular", "parameters": [0, 20, 40]}}},
    "training": {"epochs": 25},
}
MEMORY = ResearchMemory(
    (
        PastCycle(
            "op_agent_research_1",
            datetime(2026, 1, 1, tzinfo=UTC),
            "failed",
            "weak_macd",
            error_message="Training gate failed: accuracy_below_threshold (35% < 45%)",
            gate_failure="accuracy_below_threshold",
            gate_detail="35% < 45%",
        ),
    )
)


def designer(**overrides: object):
    options = {"anthropic_api_key": PLANTED_KEY, "llm_timeout": 0.5, "llm_max_retries": 2, **overrides}
    settings = Settings(**options)
    return get_designer(settings)


def design(**kw: object):
    return designer(**kw).design(memory=MEMORY, catalogue=CATALOGUE)


def test_a_valid_tool_call_becomes_a_design_outcome_with_usage_and_cost(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY, input_tokens=3000, output_tokens=500)
    outcome = design()
    assert outcome.strategy.name == "rsi_swing" and outcome.document == STRATEGY
    assert (outcome.designer, outcome.attempts) == ("anthropic", 1)
    assert outcome.usage is not None
    assert (outcome.usage.model, outcome.usage.input_tokens, outcome.usage.output_tokens) == (
        "claude-sonnet-5-5",
        3000,
        500,
    )
    assert outcome.usage.cost_usd == pytest.approx(3000 * 2.0 / 1e6 + 500 * 10.0 / 1e6)
    assert outcome.usage.cost_usd == estimate_cost("claude-sonnet-5-5", outcome.usage)
    body = fake_anthropic.bodies[0]
    assert body["model"] == "claude-sonnet-5-5"
    assert body["tools"][0]["name"] == "submit_strategy"
    assert body["tools"][0]["input_schema"]["title"] == "Strategy"
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}


def test_older_models_are_forced_to_call_the_tool(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    design(model="claude-haiku-4-5")
    assert fake_anthropic.bodies[0]["tool_choice"] == {"type": "tool", "name": "submit_strategy"}


def test_the_prompt_holds_the_data_catalogue_memory_and_schema(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    designer().design(memory=MEMORY, catalogue=CATALOGUE, symbol="EURUSD", timeframe="1h")
    prompt = fake_anthropic.bodies[0]["messages"][0]["content"]
    assert "EURUSD 1h: 6123 bars, 2023-01-02 .. 2023-12-29" in prompt
    assert "accuracy_below_threshold x1" in prompt and "weak_macd" in prompt
    assert "williams_r" in prompt and '"fuzzy_sets"' in prompt
    assert "Use symbol EURUSD and timeframe 1h" in prompt


def test_an_invalid_strategy_is_sent_back_with_the_exact_errors(fake_anthropic: FakeAnthropic) -> None:
    # Given a first reply whose name would escape the strategies folder, then a valid one
    fake_anthropic.reply_tool_use("submit_strategy", {**STRATEGY, "name": "../../etc/passwd"})
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    outcome = design()
    assert outcome.attempts == 2
    repair = fake_anthropic.bodies[1]["messages"]
    first_tool_use = fake_anthropic.replies[0].body["content"][1]
    assert repair[1] == {"role": "assistant", "content": fake_anthropic.replies[0].body["content"]}
    result = repair[2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == first_tool_use["id"]
    assert "- name: '../../etc/passwd' must match ^[a-z0-9_-]{1,64}$" in result["content"]
    assert outcome.usage is not None and outcome.usage.input_tokens == 2 * 1200


def test_data_that_does_not_exist_is_rejected_by_the_validator(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_tool_use("submit_strategy", {**STRATEGY, "symbol": "BTCUSD"})
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    design()
    result = fake_anthropic.bodies[1]["messages"][2]["content"][0]["content"]
    assert "symbol/timeframe: no data for BTCUSD 1h (available: EURUSD 1h, SP500 1d)" in result


def test_repeatedly_invalid_output_is_a_design_error_after_the_repair_budget(
    fake_anthropic: FakeAnthropic,
) -> None:
    for _ in range(4):
        fake_anthropic.reply_tool_use("submit_strategy", {**STRATEGY, "indicators": [{"type": "rsi", "period": 1}]})
    with pytest.raises(DesignError) as caught:
        design(design_max_repairs=3)
    message = str(caught.value)
    assert message.startswith("strategy invalid after 3 repair attempts: ")
    assert "indicators[0].period: must be >= 2" in message
    assert len(fake_anthropic.requests) == 4
    assert caught.value.usage.input_tokens == 4 * 1200  # type: ignore[attr-defined]


def test_a_reply_without_the_tool_call_is_asked_again(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_text("Here is my idea: buy low, sell high.")
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    assert design().attempts == 2
    assert "calling the `submit_strategy` tool" in fake_anthropic.bodies[1]["messages"][2]["content"]


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error")])
def test_retryable_api_errors_are_retried_by_the_sdk_then_raise_llm_error(
    fake_anthropic: FakeAnthropic, status: int, kind: str
) -> None:
    fake_anthropic.reply_error(status, kind, times=3)
    with pytest.raises(LLMError) as caught:
        design(llm_max_retries=2)
    assert len(fake_anthropic.requests) == 3  # 1 + max_retries
    assert str(caught.value) == f"Anthropic API error {status} ({kind}) after 2 retries: fake {kind}"


def test_a_transient_error_recovers_within_the_retries(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_error(529, "overloaded_error")
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    assert design().strategy.name == "rsi_swing"
    assert len(fake_anthropic.requests) == 2


def test_a_slow_api_times_out_after_the_retries(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply(200, {}, times=2, delay=2.0)
    with pytest.raises(LLMError, match=r"timed out \(0.5s per request\) after 1 retries"):
        design(llm_timeout=0.5, llm_max_retries=1)
    assert len(fake_anthropic.requests) == 2


def test_a_rejected_key_is_one_clear_line(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.reply_error(401, "authentication_error")
    with pytest.raises(LLMError) as caught:
        design()
    assert str(caught.value) == "Anthropic rejected the API key (401)"
    assert len(fake_anthropic.requests) == 1


def test_the_api_key_is_sent_but_never_logged_raised_or_recorded(
    fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_anthropic.reply_tool_use("submit_strategy", {**STRATEGY, "name": "Bad Name"})
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    outcome = design()
    fake_anthropic.reply_error(401, "authentication_error")
    with pytest.raises(LLMError) as auth:
        design()
    fake_anthropic.reply_error(529, "overloaded_error", times=3)
    with pytest.raises(LLMError) as overloaded:
        design()
    headers = fake_anthropic.requests[0].headers
    assert PLANTED_KEY in headers.get("x-api-key", "") + headers.get("authorization", "")
    logged = caplog.text + " ".join(json.dumps(getattr(r, "__dict__", {}), default=str) for r in caplog.records)
    for text in (
        logged,
        str(auth.value),
        repr(auth.value),
        str(overloaded.value),
        json.dumps(outcome.to_dict()),
    ):
        assert PLANTED_KEY not in text
    assert auth.value.__cause__ is None and auth.value.__suppress_context__


def test_model_aliases_resolve_and_other_ids_pass_through(fake_anthropic: FakeAnthropic) -> None:
    for _ in range(2):
        fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    design(model="opus")
    design(model="claude-some-future-model")
    assert [b["model"] for b in fake_anthropic.bodies] == ["claude-opus-5-5", "claude-some-future-model"]


def test_a_scripted_callable_can_answer_from_the_request(fake_anthropic: FakeAnthropic) -> None:
    from tests.fake_anthropic import message

    def echo_model(request) -> Scripted:
        tool = {"type": "tool_use", "id": "toolu_x", "name": "submit_strategy", "input": STRATEGY}
        return Scripted(200, message([tool], model=request.body["model"]))

    fake_anthropic.reply_with(echo_model)
    assert design().strategy.name == "rsi_swing"


def test_the_prompt_shows_the_optimiser_study_and_the_design_is_told_to_it(
    fake_anthropic: FakeAnthropic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an offline trial already told on EURUSD 1h (a near miss at the training gate)
    from agent_pipeline.llm.study import load_study, tell_cycle

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ktrdr.db'}")
    reset_settings()
    settings = Settings(anthropic_api_key=PLANTED_KEY)
    offline = get_designer(settings, "offline").design(memory=MEMORY, catalogue=CATALOGUE, symbol="EURUSD")
    store = get_store(settings.database_url)
    meta = {"designer": "offline", "symbol": "EURUSD", "timeframe": "1h", "study_trial": offline.study_trial}
    stop = "Training gate failed: no_skill (balanced accuracy 35.0% vs chance 33.3%, p = 0.4)"
    first = store.create_cycle(max_active=5, metadata=meta | gate_stop(stop))
    store.start(first.operation_id)
    store.fail(first.operation_id, error_message=stop)
    tell_cycle(store.get(first.operation_id))
    # When Claude designs
    fake_anthropic.reply_tool_use("submit_strategy", STRATEGY)
    outcome = get_designer(settings).design(memory=MEMORY, catalogue=CATALOGUE)
    # Then its prompt holds the study's view
    prompt = json.dumps(fake_anthropic.bodies[0]["messages"])
    assert "Optimiser study" in prompt and "EURUSD 1h: 1 trials" in prompt
    assert "training gate: no_skill x1" in prompt
    # And when its cycle completes, the study holds Claude's proposal with the parameters that map
    path = tmp_path / "claude.yaml"
    path.write_text(yaml.safe_dump(outcome.document), encoding="utf-8")
    meta = {"designer": "anthropic", "symbol": "EURUSD", "timeframe": "1h", "strategy_path": str(path)}
    second = store.create_cycle(max_active=5, metadata=meta | {"backtest_result": {"sharpe_ratio": 0.4}})
    store.start(second.operation_id)
    store.complete(second.operation_id)
    tell_cycle(store.get(second.operation_id))
    trial = load_study("EURUSD", "1h", url=settings.database_url).get_trials()[-1]
    assert trial.user_attrs["designer"] == "anthropic" and trial.params["rsi_period"] == 14
