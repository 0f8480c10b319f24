"""The Claude designer: one tool call carrying a strategy document, validated and repaired."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from agent_pipeline.engine.strategy import CLOSE_INDICATORS, TIMEFRAMES, Strategy, parse_strategy, strategy_json_schema
from agent_pipeline.errors import DesignError, StrategyValidationError
from agent_pipeline.llm import claude
from agent_pipeline.llm.catalogue import (
    DataSeries,
    available_pairs,
    close_only_pairs,
    select_series,
    universe_pairs,
)
from agent_pipeline.llm.designer import Designer, DesignOutcome
from agent_pipeline.llm.memory import ResearchMemory
from agent_pipeline.llm.study import study_view

if TYPE_CHECKING:
    from agent_pipeline.config import Settings

logger = logging.getLogger(__name__)

TOOL_NAME = "submit_strategy"
# What each indicator type takes and what its values look like, for the prompt.
INDICATOR_GUIDE = {
    "rsi": "period (2-500, default 14); values 0..100",
    "stochastic": "period (default 14), smooth (1-50, default 3); values 0..100",
    "williams_r": "period (default 14); values -100..0",
    "cci": "period (default 14); values roughly -300..300",
    "adx": "period (default 14); values 0..100 (trend strength)",
    "roc": "period (default 14); percent change over the period",
    "macd": "fast (default 12) < slow (default 26), signal (default 9); price units",
    "bollinger": "period (default 20), std (0-5, default 2.0)",
    "atr": "period (default 14); price units (volatility)",
    "sma": "period (default 14); price units",
    "ema": "period (default 14); price units",
    "obv": "no parameters; cumulative volume",
}

SYSTEM_PROMPT = """You are a quantitative researcher designing trading strategies for an automated research
loop. Each strategy is trained as a small neural network on fuzzy-set memberships of technical indicators,
labelled with ZigZag BUY/HOLD/SELL labels, then backtested on a held-out period.

Rules:
- Answer only by calling the `submit_strategy` tool with one complete strategy document.
- Use only a symbol/timeframe pair listed under "Available data" (a universe is named with `universe:`).
- `name` must match [a-z0-9_-]{1,64} (lowercase, no dots or slashes).
- Every indicator gets a unique feature id (its `name`, or `<type>_<period>` by default, `<type>` when it
  has no period); every key of `fuzzy_sets` must be one of those feature ids.
- Fuzzy sets: triangular [a, b, c], trapezoidal [a, b, c, d] (ascending), gaussian [mean, sigma > 0];
  place them over the range the indicator's values really take.
- Keep training affordable: epochs 20-60.
- Learn from the research memory: build on what worked, avoid configurations that failed a gate.
"""


class AnthropicDesigner(Designer):
    """Designs with Claude through the real `anthropic` SDK."""

    name = "anthropic"

    def __init__(self, settings: Settings, client: Any = None) -> None:
        self.model = claude.resolve_model(settings.model)
        self.max_repairs = settings.design_max_repairs
        self.database_url = settings.database_url
        self.client = client or claude.make_client(settings)

    def design(
        self,
        *,
        memory: ResearchMemory,
        catalogue: list[DataSeries],
        symbol: str | None = None,
        timeframe: str | None = None,
        portfolio: str | None = None,
    ) -> DesignOutcome:
        candidates = select_series(catalogue, symbol, timeframe)
        conversation = claude.Conversation(self.client, model=self.model, system=SYSTEM_PROMPT, tool=strategy_tool())

        study = study_view(self.database_url, available_pairs(candidates) | universe_pairs(candidates))
        prompt = build_prompt(
            memory=memory, catalogue=candidates, symbol=symbol, timeframe=timeframe, study=study, portfolio=portfolio
        )
        try:
            reply = conversation.run(
                prompt, lambda doc: _validate(doc, candidates, portfolio), max_repairs=self.max_repairs
            )
        except claude.RepairsExhausted as exc:
            error = DesignError(
                f"strategy invalid after {self.max_repairs} repair attempts: {'; '.join(exc.errors)[:1000]}"
            )
            # The caller still records the spend of a failed design/assessment.
            error.usage = exc.usage  # type: ignore[attr-defined]
            raise error from None
        strategy, document = reply.value
        logger.info(
            "strategy designed",
            extra={"strategy": strategy.name, "attempts": reply.attempts, "cost_usd": reply.usage.cost_usd},
        )
        return DesignOutcome(
            strategy=strategy,
            document=document,
            usage=reply.usage,
            designer=self.name,
            attempts=reply.attempts,
            notes=f"anthropic designer ({self.model}), {reply.attempts} turn(s)",
        )


def strategy_tool() -> dict[str, Any]:
    """The tool whose input is a strategy document."""
    return {
        "name": TOOL_NAME,
        "description": "Submit one complete trading strategy document for validation, training and backtest.",
        "input_schema": strategy_json_schema(),
    }


def build_prompt(
    *,
    memory: ResearchMemory,
    catalogue: list[DataSeries],
    symbol: str | None,
    timeframe: str | None,
    study: str = "",
    portfolio: str | None = None,
) -> str:
    """The user turn: available data, indicator catalogue, schema, research memory, the optimiser's study
    (`study.study_view`) and the request."""
    request = "Choose the symbol and timeframe yourself from the available data."
    if symbol or timeframe:
        request = f"Use symbol {symbol or '(any available)'} and timeframe {timeframe or '(any available)'}."
    universe = next((series for series in catalogue if series.is_universe and series.symbol == symbol), None)
    if universe is not None:
        request = universe_request(universe, portfolio or "timing")
    sections = [
        "## Available data (symbol timeframe: bars, first .. last bar)",
        *[f"- {series.describe()}" for series in catalogue],
        "## Indicator catalogue (type: parameters; value range)",
        *[f"- {kind}: {guide}" for kind, guide in INDICATOR_GUIDE.items()],
        f"Timeframes: {', '.join(TIMEFRAMES)}.",
        "## Strategy JSON schema",
        json.dumps(strategy_json_schema(), separators=(",", ":")),
        "## Research memory",
        memory.summary(),
        *(
            ["## Optimiser study (walk-forward figures; objective = OOS Sharpe less a too-few-trades penalty)", study]
            if study
            else []
        ),
        "## Request",
        request,
        "Design one new strategy that tests a clear hypothesis, and submit it with the tool.",
    ]
    return "\n".join(sections)


def universe_request(universe: DataSeries, mode: str) -> str:
    """The request for a universe: one model across its symbols, and how the portfolio trades (issue 24)."""
    trades = {
        "timing": "each symbol trades its own signal; the portfolio is their equal-weight average",
        "rank": "each bar, long the top fraction of symbols by predicted up-probability, short the bottom fraction",
    }[mode]
    return (
        f"Research the universe {universe.symbol} ({universe.timeframe}, {len(universe.symbols)} symbols): one model "
        f"is trained on every symbol's rows pooled, with features and labels computed per symbol, so use "
        f"scale-free indicators only. Name `universe: {universe.symbol}` instead of `symbol:` and set "
        f"`portfolio: {{mode: {mode}}}` ({trades})."
        + (f" Its series are close-only: use {', '.join(CLOSE_INDICATORS)} only." if universe.close_only else "")
    )


def _validate(
    document: Any, catalogue: list[DataSeries], portfolio: str | None = None
) -> tuple[Strategy, dict[str, Any]]:
    """The strategy, checked against the catalogue and, on a universe, against the portfolio mode asked for."""
    try:
        strategy = parse_strategy(
            document,
            available=available_pairs(catalogue),
            close_only=close_only_pairs(catalogue),
            universes=universe_pairs(catalogue),
        )
    except StrategyValidationError as exc:
        raise claude.OutputRejected(exc.errors) from None
    mode = strategy.portfolio.mode if strategy.portfolio is not None else "timing"
    if strategy.universe is not None and mode != (portfolio or "timing"):
        raise claude.OutputRejected([f"portfolio.mode: the request is {portfolio or 'timing'}, not {mode}"])
    return strategy, document
