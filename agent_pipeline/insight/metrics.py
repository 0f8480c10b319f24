"""Prometheus metrics computed from the database at scrape time (`GET /metrics`).

Nothing is counted in process memory: every API replica reports the same truth and a restart loses nothing.
Each figure is one indexed read (active rows by status, finished cycles by outcome from `cycle_results`,
today's rows by creation time), so a scrape stays cheap on a table of a million rows (bench/bench_metrics.py).
Flower serves the Celery task metrics on its own `/metrics` (see README "Metrics").
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from agent_pipeline.store.history import Outcome, outcome_counts
from agent_pipeline.store.operations import OperationStatus, OperationType
from agent_pipeline.store.paper import alarm_flags, paper_totals

if TYPE_CHECKING:
    from agent_pipeline.config import Settings
    from agent_pipeline.store.operations import OperationsStore

# The window phase durations are summarised over.
DURATION_WINDOW = timedelta(hours=24)
# The most rows a duration summary reads (a day of cycles is far fewer).
DURATION_ROWS = 10_000
# Phase label of each operation type whose duration is reported.
PHASES = {
    OperationType.AGENT_DESIGN: "design",
    OperationType.TRAINING: "training",
    OperationType.BACKTESTING: "backtest",
    OperationType.AGENT_ASSESSMENT: "assessment",
    OperationType.AGENT_RESEARCH: "cycle",
}
# The status a finished cycle's outcome family has.
OUTCOME_STATUS = {
    Outcome.PASSED: OperationStatus.COMPLETED,
    Outcome.BYPASSED: OperationStatus.COMPLETED,
    Outcome.TRAINING_GATE: OperationStatus.FAILED,
    Outcome.BACKTEST_GATE: OperationStatus.FAILED,
    Outcome.ERROR: OperationStatus.FAILED,
    Outcome.CANCELLED: OperationStatus.CANCELLED,
}
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")


class PipelineCollector(Collector):
    """Reads the figures from the store each time Prometheus scrapes."""

    def __init__(self, store: OperationsStore, settings: Settings) -> None:
        self.store, self.settings = store, settings

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = datetime.now(UTC)
        yield from self._cycles()
        yield self._trainings()
        yield self._durations(now)
        yield from self._llm(now)
        yield from self._paper()
        last = self.store.last_completed(OperationType.AGENT_RESEARCH)
        if last is not None:
            yield GaugeMetricFamily(
                "ktrdr_seconds_since_last_completed_cycle",
                "Seconds since the newest completed research cycle finished.",
                value=(now - last).total_seconds(),
            )
        yield GaugeMetricFamily(
            "ktrdr_metrics_scrape_seconds",
            "Time this scrape spent reading the database.",
            value=time.perf_counter() - started,
        )

    def _cycles(self) -> Iterator[Metric]:
        outcomes = outcome_counts(self.store)
        finished = CounterMetricFamily(
            "ktrdr_cycles_finished", "Finished research cycles by outcome family.", labels=["outcome"]
        )
        for outcome in Outcome:
            finished.add_metric([outcome.value], outcomes.get(outcome.value, 0))
        yield finished
        by_status = {status: 0 for status in OperationStatus}
        for outcome, finished_as in OUTCOME_STATUS.items():
            by_status[finished_as] += outcomes.get(outcome.value, 0)
        for (kind, active_as), count in self.store.active_counts().items():
            if kind == OperationType.AGENT_RESEARCH.value:
                by_status[OperationStatus(active_as)] = count
        cycles = GaugeMetricFamily("ktrdr_cycles", "Research cycles by status.", labels=["status"])
        for status, count in by_status.items():
            cycles.add_metric([status.value], count)
        yield cycles

    def _trainings(self) -> Metric:
        active = self.store.active_counts()
        trainings = GaugeMetricFamily(
            "ktrdr_trainings", "Trainings running on a GPU worker, and queued (pending).", labels=["state"]
        )
        trainings.add_metric(["running"], active.get((OperationType.TRAINING.value, "running"), 0))
        trainings.add_metric(["queued"], active.get((OperationType.TRAINING.value, "pending"), 0))
        return trainings

    def _durations(self, now: datetime) -> Metric:
        times = self.store.run_times_since(now - DURATION_WINDOW, operation_types=tuple(PHASES), limit=DURATION_ROWS)
        family = GaugeMetricFamily(
            "ktrdr_phase_duration_seconds",
            "Run time of the phases completed among those created in the last 24 hours.",
            labels=["phase", "quantile"],
        )
        for kind, phase in PHASES.items():
            seconds = sorted(s for k, s in times if k == kind)
            if seconds:
                for label, value in _quantiles(seconds).items():
                    family.add_metric([phase, label], value)
        return family

    def _llm(self, now: datetime) -> Iterator[Metric]:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        kinds = (OperationType.AGENT_RESEARCH, OperationType.AGENT_ASSESSMENT)
        tokens = dict.fromkeys(TOKEN_KINDS, 0)
        for op in self.store.created_since(midnight, operation_types=kinds, limit=DURATION_ROWS):
            if op.operation_type == OperationType.AGENT_RESEARCH:
                usage = op.record.design_usage or {}
            else:
                usage = (op.result_summary or {}).get("usage") or {}
            for kind in TOKEN_KINDS:
                tokens[kind] += int(usage.get(f"{kind}_tokens") or 0)
        family = GaugeMetricFamily("ktrdr_llm_tokens_today", "LLM tokens used since midnight UTC.", labels=["kind"])
        for kind, count in tokens.items():
            family.add_metric([kind], count)
        yield family
        yield GaugeMetricFamily(
            "ktrdr_llm_spend_today_usd", "LLM spend since midnight UTC.", value=self.store.spend_since(midnight)
        )
        yield GaugeMetricFamily(
            "ktrdr_llm_daily_budget_usd",
            "The daily LLM budget (KTRDR_DAILY_BUDGET_USD).",
            value=self.settings.daily_budget_usd,
        )

    def _paper(self) -> Iterator[Metric]:
        """Paper accounts (issue 27): by state and their decay alarms, counted by the database (`paper_totals`), and
        each account's alarm flag."""
        totals = paper_totals(self.store)
        accounts = GaugeMetricFamily("ktrdr_paper_accounts", "Paper accounts by state.", labels=["state"])
        for state, count in totals.by_state.items():
            accounts.add_metric([state], count)
        yield accounts
        decayed = GaugeMetricFamily(
            "ktrdr_paper_decayed", "1 when the paper account's decay alarm has fired, else 0.", labels=["account"]
        )
        for account, _, fired in alarm_flags(self.store):
            decayed.add_metric([account], 1.0 if fired else 0.0)
        yield decayed
        yield CounterMetricFamily(
            "ktrdr_paper_decay_alarms", "Decay alarms raised by paper accounts.", value=totals.alarms
        )


def _quantiles(seconds: list[float]) -> dict[str, float]:
    """Median, 90th percentile and maximum of a sorted list."""
    if len(seconds) == 1:
        return {"0.5": seconds[0], "0.9": seconds[0], "1": seconds[0]}
    deciles = statistics.quantiles(seconds, n=10, method="inclusive")
    return {"0.5": statistics.median(seconds), "0.9": deciles[8], "1": seconds[-1]}


def render(store: OperationsStore, settings: Settings) -> bytes:
    """The Prometheus text exposition of the pipeline's metrics, read now."""
    from prometheus_client import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(store, settings))
    return generate_latest(registry)
