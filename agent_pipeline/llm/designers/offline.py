"""The offline designer: each design is one `ask` of an Optuna TPE study of the series (`agent_pipeline.llm.study`).

The space it draws from, and why its bounds are what they are, is `agent_pipeline.llm.space`. Without a requested
series, longer bars are drawn more often (weight `bars * sqrt(bar hours)`).
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from agent_pipeline.engine.strategy import parse_strategy
from agent_pipeline.llm.catalogue import DataSeries, available_pairs, select_series, universe_pairs
from agent_pipeline.llm.designer import Designer, DesignOutcome
from agent_pipeline.llm.memory import ResearchMemory
from agent_pipeline.llm.space import build_document, research_sample
from agent_pipeline.llm.study import ask_trial

if TYPE_CHECKING:
    from agent_pipeline.config import Settings

# Bar length in hours, for the series weights of a design without a requested series.
HOURS = {"1m": 1 / 60, "5m": 5 / 60, "15m": 0.25, "30m": 0.5, "1h": 1, "4h": 4, "1d": 24, "1w": 120}


class OfflineDesigner(Designer):
    """Designs without an LLM: each design is one TPE `ask` of the series' study."""

    name = "offline"
    sampler = "tpe"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def design(
        self,
        *,
        memory: ResearchMemory,
        catalogue: list[DataSeries],
        symbol: str | None = None,
        timeframe: str | None = None,
        portfolio: str | None = None,
    ) -> DesignOutcome:
        candidates, config = select_series(catalogue, symbol, timeframe), self.settings
        weights = [max(s.bars, 1) * math.sqrt(HOURS.get(s.timeframe, 1)) for s in candidates]
        history = ",".join(str(c.strategy_name) for c in memory.cycles[-5:])  # not ids: those are random
        series = random.Random(f"{config.seed}:{len(memory.cycles)}:{history}").choices(candidates, weights)[0]
        trial = ask_trial(*series.pair, url=config.database_url, sampler=self.sampler, seed=config.seed)
        bars = research_sample(series.symbol, series.timeframe, series.is_universe, config)  # after: schema is up
        document = build_document(trial, series, bars, prefix=self.name, portfolio=portfolio)
        return DesignOutcome(
            strategy=parse_strategy(
                document, available=available_pairs(candidates), universes=universe_pairs(candidates)
            ),
            document=document,
            usage=None,
            designer=self.name,
            attempts=1,
            notes=f"{self.name} designer (no LLM): {self.sampler} trial {trial.number} of {trial.study.study_name}",
            study_trial=trial.number,
        )
