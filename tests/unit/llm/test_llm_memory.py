from __future__ import annotations

from datetime import UTC, datetime

from agent_pipeline.llm.memory import PastCycle, ResearchMemory

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def cycle(n: int, **kw: object) -> PastCycle:
    return PastCycle(operation_id=f"op_agent_research_{n}", created_at=T0, status=kw.pop("status", "completed"), **kw)  # type: ignore[arg-type]


def test_empty_memory_says_this_is_the_first_design() -> None:
    assert "first design" in ResearchMemory().summary()


def test_summary_lists_best_and_worst_backtests_and_gate_failures_with_counts() -> None:
    memory = ResearchMemory(
        (
            cycle(1, strategy_name="good_one", backtest_result={"sharpe_ratio": 1.4, "total_return": 0.12}),
            cycle(2, strategy_name="bad_one", backtest_result={"sharpe_ratio": -0.9, "total_return": -0.05}),
            cycle(3, strategy_name="middling", backtest_result={"sharpe_ratio": 0.2}),
            *[
                cycle(
                    10 + i,
                    status="failed",
                    strategy_name=f"weak_{i}",
                    error_message="Training gate failed: accuracy_below_threshold (35% < 45%)",
                    gate_failure="accuracy_below_threshold",
                    gate_detail="35% < 45%",
                )
                for i in range(3)
            ],
            cycle(
                20,
                status="failed",
                error_message="Backtest gate failed: win_rate_too_low (30% < 45%)",
                gate_failure="win_rate_too_low",
                gate_detail="30% < 45%",
            ),  # fmt: skip
            cycle(21, assessment={"verdict": "poor", "suggestions": ["Try a longer lookahead"]}),
        )
    )
    text = memory.summary()
    best, worst = text.index("Best results"), text.index("Worst results")
    assert best < text.index("good_one") < worst < text.index("bad_one")
    assert "accuracy_below_threshold x3, e.g. weak_2 (35% < 45%)" in text
    assert "win_rate_too_low x1" in text
    assert "Try a longer lookahead" in text


def test_gate_failures_come_from_the_recorded_verdict_never_from_the_message() -> None:
    from agent_pipeline.gates import Verdict

    verdict = Verdict("training", False, "loss_too_high", "loss_too_high (0.90 > 0.80)", {"final_loss": 0.9})
    failed = cycle(1, status="failed", error_message=verdict.error_message, gate_failure=verdict.code,
                   gate_detail=verdict.detail)  # fmt: skip
    assert (failed.gate_failure, failed.gate_detail) == ("loss_too_high", "0.90 > 0.80")
    # a message that merely looks like a gate's is no gate failure: nothing parses it
    assert cycle(2, status="failed", error_message="Training gate failed: loss_too_high (1 > 0)").gate_failure is None


def test_backtested_cycles_rank_above_trained_only_ones() -> None:
    trained = cycle(1, training_result={"accuracy": 0.9})
    backtested = cycle(2, backtest_result={"sharpe_ratio": -1.0})
    assert ResearchMemory((trained, backtested)).ranked == [backtested, trained]


def test_summary_respects_max_chars() -> None:
    memory = ResearchMemory(
        tuple(cycle(i, strategy_name=f"s{i}", backtest_result={"sharpe_ratio": i}) for i in range(50))
    )
    assert len(memory.summary(max_chars=300)) <= 300
