"""The quality gates: pure checks that decide whether a research cycle goes on, and their verdicts as data.

`from agent_pipeline.gates import check_training_gate, check_backtest_gate` is the spec's own import
(`ktrdr.agents.gates`). The package sits below the store and above the engine, and imports nothing of Celery,
the database, the LLM SDK or the faces (pyproject.toml's import-linter contracts).
"""

from agent_pipeline.gates.checks import (
    BacktestThresholds,
    TrainingThresholds,
    backtest_closeness,
    backtest_verdict,
    check_backtest_gate,
    check_training_gate,
    format_p,
    format_percent,
    training_verdict,
)
from agent_pipeline.gates.promotion import (
    Paths,
    Promotion,
    PromotionStatus,
    PromotionThresholds,
    judge_promotion,
)
from agent_pipeline.gates.verdict import (
    DISCOVERY_DSR,
    GATES,
    PASSED,
    Verdict,
    bypassed_gates,
    gates_passed,
    is_candidate,
    stopping_verdict,
    verdicts,
)

__all__ = [
    "DISCOVERY_DSR", "GATES", "PASSED", "BacktestThresholds", "Paths", "Promotion", "PromotionStatus",
    "PromotionThresholds", "TrainingThresholds", "Verdict", "backtest_closeness", "backtest_verdict", "bypassed_gates",
    "check_backtest_gate", "check_training_gate", "format_p", "format_percent", "gates_passed", "is_candidate",
    "judge_promotion", "stopping_verdict", "training_verdict", "verdicts",
]  # fmt: skip
