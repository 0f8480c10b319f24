"""The offline designer as an Optuna study, and the random designer on the same space (issue 9).

The studies live in a SQLite file per test (Optuna's RDBStorage beside the operations table); the data are
the bundled series. No training: outcomes are told to the study directly or through `tell_cycle`.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agent_pipeline.config import Settings, get_settings, reset_settings
from agent_pipeline.engine.data import import_csv, list_datasets, load_bars
from agent_pipeline.engine.strategy import NAME_PATTERN, load_strategy, parse_strategy
from agent_pipeline.errors import ConfigurationError, DesignError
from agent_pipeline.gates import Verdict
from agent_pipeline.llm import DataSeries, PastCycle, ResearchMemory, get_designer, save_design
from agent_pipeline.llm.space import (
    INDICATORS,
    OSCILLATORS,
    build_document,
    params_of,
    research_bars,
    space,
    volatility,
)
from agent_pipeline.llm.study import GATE_SPREAD, POOR, ask_trial, load_study, objective, study_view, tell_cycle, told
from agent_pipeline.store.operations import get_store
from tests.gate_records import gate_stop

CATALOGUE = [DataSeries(d.symbol, d.timeframe, d.start, d.end, d.bars) for d in list_datasets()]
PAIRS = {s.pair for s in CATALOGUE}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose DATABASE_URL is a fresh SQLite file (operations and studies)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ktrdr.db'}")
    reset_settings()
    return get_settings()


def design(config: Settings, designer: str = "offline", **request: Any) -> Any:
    return get_designer(config, designer).design(memory=ResearchMemory(), catalogue=CATALOGUE, **request)


def finished_cycle(config: Settings, outcome: Any, *, error: str | None = None, **meta: Any) -> Any:
    """A cycle row as the chain leaves it: designed by `outcome`, then completed or failed with `error`."""
    store = get_store(config.database_url)
    store.upgrade()
    strategy = outcome.strategy
    metadata = {"designer": outcome.designer, "symbol": strategy.symbol, "timeframe": strategy.timeframe}
    metadata |= {"study_trial": outcome.study_trial} | gate_stop(error) | meta
    cycle = store.create_cycle(max_active=64, metadata=metadata)
    store.start(cycle.operation_id)
    if error:
        store.fail(cycle.operation_id, error_message=error)
    else:
        store.complete(cycle.operation_id, result_summary={"lockbox": {"sharpe_ratio": 99.0}})
    return store.get(cycle.operation_id)


def test_designs_are_valid_strategies_named_after_their_trial(settings: Settings) -> None:
    for series in CATALOGUE:
        for _ in range(2):
            outcome = design(settings, symbol=series.symbol, timeframe=series.timeframe)
            assert parse_strategy(outcome.document, available=PAIRS) == outcome.strategy
            assert (outcome.strategy.symbol, outcome.strategy.timeframe) == series.pair
            assert NAME_PATTERN.match(outcome.strategy.name)
            assert outcome.strategy.name.endswith(f"_t{outcome.study_trial}")
            assert outcome.strategy.indicators and {i.type for i in outcome.strategy.indicators} <= set(INDICATORS)
            assert outcome.designer == "offline" and outcome.usage is None and "tpe trial" in outcome.notes


@pytest.mark.slow
def test_the_same_seed_redraws_the_same_strategies_and_another_seed_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(folder: str, seed: int) -> list[dict[str, Any]]:
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / folder / 'ktrdr.db'}")
        monkeypatch.setenv("KTRDR_SEED", str(seed))
        reset_settings()
        config = get_settings()
        documents = []
        for _ in range(4):
            outcome = design(config, symbol="SP500", timeframe="1d")
            documents.append(outcome.document)
            load_study("SP500", "1d", url=config.database_url).tell(outcome.study_trial, len(documents) * 0.1)
        return documents

    assert run("a", 3) == run("b", 3)
    assert run("c", 4) != run("a", 3)


def test_fuzzy_sets_and_labels_come_from_the_research_period_never_the_lockbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two data folders whose SP500 differs only in the lockbox (the last 20% of the bars)
    bars = load_bars("SP500", "1d")
    folders = []
    for name, factor in (("plain", 1.0), ("wild", 3.0)):
        changed = bars.copy()
        lockbox = changed.index[int(len(bars) * 0.8) + 1 :]
        changed.loc[lockbox, ["open", "high", "low", "close"]] *= np.linspace(1, factor, len(lockbox))[:, None]
        changed.rename_axis("date").reset_index().to_csv(tmp_path / f"{name}.csv", index=False)
        import_csv(tmp_path / f"{name}.csv", symbol="SP500", timeframe="1d", data_dir=tmp_path / name)
        folders.append(tmp_path / name)
    # When the same seed designs for both, in fresh studies
    documents = []
    for index, folder in enumerate(folders):
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / f'db{index}.db'}")
        monkeypatch.setenv("KTRDR_DATA_DIR", str(folder))
        reset_settings()
        documents.append(design(get_settings(), symbol="SP500", timeframe="1d").document)
    # Then the documents (fuzzy cut points, ZigZag threshold) are identical
    assert documents[0] == documents[1]
    # And the research period is the bars before the lockbox
    research = research_bars("SP500", "1d", folders[0], 0.2)
    assert len(research) == len(bars) - round(len(bars) * 0.2)


def test_a_completed_cycle_is_told_its_objective_and_a_gate_stopped_one_a_poor_value(settings: Settings) -> None:
    # Given three designs, and cycles that completed, stopped at a gate and crashed
    outcomes = [design(settings, symbol="SP500", timeframe="1d") for _ in range(4)]
    backtest = {"sharpe_ratio": 1.2, "num_trades": 5, "psr": 0.9, "deflated_sharpe": 0.4, "total_return": 0.1}
    no_skill = "Training gate failed: no_skill (balanced accuracy 35% < 40%)"
    cycles = [
        finished_cycle(settings, outcomes[0], backtest_result=backtest),
        finished_cycle(settings, outcomes[1], error=no_skill),
        finished_cycle(
            settings, outcomes[2], error=no_skill, training_result={"accuracy": 0.5, "balanced_accuracy": 0.35}
        ),
        finished_cycle(settings, outcomes[3], error="Cycle failed: WorkerLostError: lost"),
    ]
    # When each is told twice (Celery may run the errback twice)
    for cycle in cycles + cycles:
        tell_cycle(cycle)
    # Then the study holds their outcomes, and never the lockbox's figure
    trials = load_study("SP500", "1d", url=settings.database_url).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    assert trials[0].value == pytest.approx(1.2 - 0.5) and trials[0].user_attrs["num_trades"] == 5
    assert trials[0].user_attrs["cycle_id"] == cycles[0].operation_id
    assert trials[1].value == POOR and trials[1].user_attrs["failure"] == "training gate: no_skill"
    # And a near miss is told a poor value that still ranks it above a hopeless draw, below any traded one
    assert trials[2].value == pytest.approx(POOR + 0.2 * (0.5 + 0.35) / 2)
    assert POOR < trials[2].value < objective({"sharpe_ratio": -9.0}, 10)
    assert "WorkerLostError" in trials[3].user_attrs["failure"]
    assert all(99.0 not in t.user_attrs.values() for t in trials)
    # And the next design is trial 4
    assert design(settings, symbol="SP500", timeframe="1d").study_trial == 4


def test_objective_takes_off_up_to_one_sharpe_for_missing_trades_and_never_rewards_not_trading() -> None:
    assert objective({"sharpe_ratio": 1.5, "num_trades": 12}, 10) == 1.5
    assert objective({"sharpe_ratio": 1.5, "num_trades": 1}, 10) == pytest.approx(0.6)
    assert objective({"sharpe_ratio": -0.4, "num_trades": 12}, 10) > objective({"sharpe_ratio": 0.0}, 10)
    assert objective({"sharpe_ratio": 40.0, "num_trades": 50}, 10) == 5.0 > POOR


def test_a_backtest_gate_stop_ranks_above_every_training_gate_stop_and_below_every_traded_cycle() -> None:
    from agent_pipeline.store.operations import Operation, OperationStatus, OperationType

    def stopped(error: str, **meta: Any) -> Operation:
        now = datetime(2026, 11, 28, tzinfo=UTC)
        kind, failed = OperationType.AGENT_RESEARCH, OperationStatus.FAILED
        meta = meta | gate_stop(error)
        return Operation("op_x", kind, failed, None, now, now, now, now, metadata=meta, error_message=error)

    good_training = stopped("Training gate failed: loss_too_high (0.81 > 0.80)", training_result={"accuracy": 0.9})
    bad_backtest = stopped("Backtest gate failed: win_rate_too_low (1% < 45%)", backtest_result={"psr": 0.0})
    assert told(good_training)[0] < told(bad_backtest)[0] < objective({"sharpe_ratio": -99.0}, 10)
    assert told(bad_backtest)[1] == "backtest gate: win_rate_too_low"


def test_backtest_gate_stops_with_strong_evidence_are_told_apart_by_how_close_the_gate_came() -> None:
    from agent_pipeline.store.operations import Operation, OperationStatus, OperationType

    def stopped(win_rate: float) -> Operation:
        now = datetime(2026, 11, 28, tzinfo=UTC)
        kind, failed = OperationType.AGENT_RESEARCH, OperationStatus.FAILED
        backtest = {"psr": 1.0, "win_rate": win_rate, "max_drawdown": 0.2, "sharpe_ratio": 1.5, "num_trades": 300}
        error = f"Backtest gate failed: win_rate_too_low ({win_rate:.0%} < 45%)"
        meta = {"backtest_result": backtest} | gate_stop(error)
        return Operation("op_x", kind, failed, None, now, now, now, now, metadata=meta, error_message=error)

    # Given two trend strategies of the same Sharpe and PSR, stopped by their win rates of 42% and 32%
    near, far = told(stopped(0.42))[0], told(stopped(0.32))[0]
    # Then the nearer miss is told the better value, both below every traded cycle
    assert far < near < objective({"sharpe_ratio": -99.0}, 10)
    assert near == pytest.approx(POOR + 0.2 * (1 + 0.42 / 0.45))


def test_threads_asking_at_once_draw_distinct_trials_and_strategies(settings: Settings) -> None:
    # Given six cycles designing for the same series at the same moment, with the same seed
    start, results = threading.Barrier(6), []

    def worker() -> None:
        start.wait()
        results.append(design(settings, symbol="NASDAQ", timeframe="1d"))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then each got its own trial, and its own strategy
    assert sorted(o.study_trial for o in results) == list(range(6))
    assert len({repr(sorted(o.document.items())) for o in results if o.document.pop("name")}) == 6


@pytest.mark.slow
def test_random_designer_covers_the_space(settings: Settings) -> None:
    # Given 40 uniform draws of the space (documents built over the research period)
    series = next(s for s in CATALOGUE if s.pair == ("SP500", "1d"))
    bars = research_bars("SP500", "1d", settings.data_dir, settings.lockbox_fraction)
    trials = []
    for _ in range(40):
        trial = ask_trial("SP500", "1d", url=settings.database_url, sampler="random", seed=1)
        document = build_document(trial, series, bars, prefix="random")
        trials.append(trial)
        # a minimum hold comes only with a hysteresis; without one every bar may trade
        assert document["backtest"]["min_hold"] == (trial.params["min_hold"] if trial.params["hysteresis"] else 1)
    # Then every choice is drawn, and every range reaches its lowest and highest quarter (log scale for logs)
    for name, dist in space().items():
        drawn = [t.params[name] for t in trials if name in t.params]
        if hasattr(dist, "choices"):
            assert set(drawn) == set(dist.choices), name
            continue
        scale = math.log if dist.log else float
        low, high = scale(dist.low), scale(dist.high)
        position = [(scale(v) - low) / (high - low) for v in drawn]
        assert min(position) < 0.25 and max(position) > 0.75, (name, min(position), max(position))
    assert get_designer(settings, "random").design(memory=ResearchMemory(), catalogue=CATALOGUE).designer == "random"


@pytest.mark.slow
def test_tpe_moves_towards_what_it_is_told_and_random_does_not(settings: Settings) -> None:
    # Given a told value that peaks at a confidence margin of 0.12 and lookahead 20
    def score(trial: Any) -> float:
        return -abs(trial.params.get("confidence_margin", 0.0) - 0.12) - abs(math.log(trial.params["lookahead"] / 20))

    series = next(s for s in CATALOGUE if s.pair == ("SP500", "1d"))
    bars = research_bars("SP500", "1d", settings.data_dir, settings.lockbox_fraction)
    means = {}
    for sampler, symbol in (("tpe", "SP500"), ("random", "NASDAQ")):
        for _ in range(24):
            trial = ask_trial(symbol, "1d", url=settings.database_url, sampler=sampler, seed=5)
            build_document(trial, series, bars, prefix=sampler)
            trial.study.tell(trial.number, score(trial))
        later = load_study(symbol, "1d", url=settings.database_url).get_trials()[12:]
        means[sampler] = sum(t.value for t in later) / len(later)
    # Then TPE's later draws score better than random's
    assert means["tpe"] > means["random"] + 0.05, means


def test_a_claude_proposal_is_added_to_the_study_with_the_parameters_that_map(settings: Settings) -> None:
    # Given a Claude-designed strategy (RSI 14 and MACD; MACD is outside the space), saved and completed
    document = {
        "name": "claude_rsi_macd",
        "symbol": "SP500",
        "timeframe": "1d",
        "indicators": [{"type": "rsi", "period": 14}, {"type": "macd"}],
        "fuzzy_sets": {"rsi_14": {"low": {"type": "trapezoidal", "parameters": [0, 0, 30, 50]}}},
        "model": {"hidden_layers": [32, 16], "dropout": 0.2},
        "labels": {"zigzag_threshold": 0.03, "lookahead": 10},
        "training": {"learning_rate": 0.001},
        "backtest": {"confidence_threshold": 0.9},
    }
    outcome = type("Outcome", (), {"strategy": parse_strategy(document), "designer": "anthropic", "study_trial": None})
    path = save_design(outcome, settings.strategies_dir)  # type: ignore[arg-type]
    cycle = finished_cycle(settings, outcome, strategy_path=str(path), backtest_result={"sharpe_ratio": 0.8})
    # When it is told (twice)
    tell_cycle(cycle)
    tell_cycle(cycle)
    # Then the study holds one trial with what maps (the confidence 0.9 is outside the space's range)
    (trial,) = load_study("SP500", "1d", url=settings.database_url).get_trials()
    bars = research_bars("SP500", "1d", settings.data_dir, settings.lockbox_fraction)
    assert trial.params["use_rsi"] is True and trial.params["rsi_period"] == 14 and trial.params["use_cci"] is False
    assert trial.params["label_k"] == pytest.approx(0.03 / (volatility(bars) * math.sqrt(10)))
    assert trial.params["hidden"] == 32 and trial.params["layers"] == 2 and "confidence_margin" not in trial.params
    assert trial.params["hysteresis"] is True and trial.params["min_hold"] == 1
    assert trial.user_attrs["designer"] == "anthropic" and trial.value == pytest.approx(0.8 - 1.0)
    assert set(trial.params) <= set(space()) and all(f"use_{k}" in trial.params for k in OSCILLATORS)


def test_study_view_lists_trial_count_best_trials_with_figures_and_failures_by_family(settings: Settings) -> None:
    outcomes = [design(settings, symbol="SP500", timeframe="1d") for _ in range(3)]
    backtest = {"sharpe_ratio": 1.1, "num_trades": 20, "psr": 0.93, "deflated_sharpe": 0.61}
    tell_cycle(finished_cycle(settings, outcomes[0], backtest_result=backtest))
    for outcome in outcomes[1:]:
        tell_cycle(finished_cycle(settings, outcome, error="Backtest gate failed: too_few_trades (1 < 10)"))
    view = study_view(settings.database_url, PAIRS)
    assert "SP500 1d: 3 trials (3 told a value)" in view
    assert "- trial 0: objective 1.1 (sharpe_ratio 1.1, num_trades 20, psr 0.93, deflated_sharpe 0.61)" in view
    assert "confidence_margin=" in view and "backtest gate: too_few_trades x2" in view
    assert "EURUSD" not in view


def test_a_request_without_data_is_a_design_error_listing_what_exists(settings: Settings) -> None:
    with pytest.raises(DesignError, match=r"no market data for BTC 1h \(available: EURUSD 1h"):
        design(settings, symbol="BTC", timeframe="1h")


def test_get_designer_picks_offline_without_a_key_and_knows_random(settings: Settings) -> None:
    assert get_designer(settings).name == "offline"
    assert get_designer(settings, "random").name == "random"
    assert Settings(designer="random").effective_designer == "random"
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        get_designer(settings, "anthropic")
    with pytest.raises(ConfigurationError, match="unknown designer"):
        get_designer(settings, "gpt")


def test_save_design_writes_a_loadable_yaml_with_a_utc_stamp(settings: Settings, tmp_path: Path) -> None:
    outcome = design(settings)
    path = save_design(outcome, tmp_path, now=datetime(2026, 11, 27, 6, 15, tzinfo=UTC))
    assert path.name == f"{outcome.strategy.name}_20261127_061500.yaml"
    assert load_strategy(path) == outcome.strategy


@pytest.mark.slow
def test_past_cycles_vary_the_series_drawn_without_a_request_but_not_their_random_ids(settings: Settings) -> None:
    def memory(count: int, prefix: str) -> ResearchMemory:
        day = datetime(2026, 1, 1, tzinfo=UTC)
        return ResearchMemory(tuple(PastCycle(f"{prefix}{i}", day, "completed", f"s{i}") for i in range(count)))

    def series(past: ResearchMemory) -> str:
        return get_designer(settings).design(memory=past, catalogue=CATALOGUE).strategy.symbol

    drawn = [series(memory(count, "op_a")) for count in range(12)]
    assert len(set(drawn)) >= 2
    assert [series(memory(count, "op_b")) for count in range(12)] == drawn


def test_the_run_summary_table_shows_each_objective_and_the_running_best() -> None:
    from rich.console import Console

    from agent_pipeline.cli.render import cycles_table
    from agent_pipeline.store.operations import Operation, OperationStatus, OperationType

    def cycle(status: OperationStatus, error: str | None = None, **meta: Any) -> Operation:
        now = datetime(2026, 11, 28, tzinfo=UTC)
        kind = OperationType.AGENT_RESEARCH
        meta = gate_stop(error) | meta
        return Operation("op_x", kind, status, None, now, now, now, now, metadata=meta, error_message=error)

    finals = [
        cycle(OperationStatus.FAILED, "Training gate failed: no_skill (35% < 40%)"),
        cycle(OperationStatus.COMPLETED, backtest_result={"sharpe_ratio": 0.9, "num_trades": 20}),
        cycle(OperationStatus.COMPLETED, backtest_result={"sharpe_ratio": 0.4, "num_trades": 20}),
        cycle(OperationStatus.FAILED, "Cycle failed: WorkerLostError"),
    ]
    console = Console(width=250, record=True)
    console.print(cycles_table(finals))
    text = console.export_text()
    lines = [line for line in text.splitlines() if "op_x" in line]
    assert "Best so far" in text
    assert [[cell.strip() for cell in line.split("│")[7:9]] for line in lines] == [
        ["-3.00", "-3.00"],
        ["0.90", "0.90"],
        ["0.40", "0.90"],
        ["-", "0.90"],
    ]


def test_a_design_with_a_hold_and_no_margin_is_told_as_the_hold_it_trades() -> None:
    # Given two-class designs at the no-information threshold (1/2): one holding 15 bars, one trading every bar
    def told(backtest: dict[str, Any]) -> dict[str, Any]:
        return params_of({"labels": {"hold": False}, "backtest": backtest}, pd.DataFrame())

    # Then the hold is told (hysteresis on, since the space draws a hold only with it), the margin is not
    held = told({"confidence_threshold": 0.5, "min_hold": 15})
    assert held["hysteresis"] is True and held["min_hold"] == 15 and "confidence_margin" not in held
    # and a design that trades every bar is told no hysteresis and no hold
    every_bar = told({"confidence_threshold": 0.5})
    assert every_bar["hysteresis"] is False and "min_hold" not in every_bar
    # and a hold beyond the space (60 bars) is left out rather than told as something else
    assert "min_hold" not in told({"confidence_threshold": 0.55, "min_hold": 60})


def test_a_no_skill_stop_is_told_by_its_p_value_and_a_bypassed_cycle_its_real_verdict() -> None:
    from agent_pipeline.store.operations import Operation, OperationStatus, OperationType

    def cycle(status: OperationStatus, error: str | None = None, **meta: Any) -> Operation:
        now = datetime(2026, 12, 6, tzinfo=UTC)
        kind = OperationType.AGENT_RESEARCH
        meta = gate_stop(error) | meta
        return Operation("op_x", kind, status, None, now, now, now, now, metadata=meta, error_message=error)

    def no_skill(pvalue: float) -> Operation:
        reason = f"no_skill (balanced accuracy 51.0% vs chance 50.0%, p = {pvalue})"
        training = {"accuracy": 0.9, "balanced_accuracy": 0.51, "chance": 0.5, "skill_pvalue": pvalue}
        return cycle(OperationStatus.FAILED, f"Training gate failed: {reason}", training_result=training)

    # Given two no-skill stops of the same accuracy, one nearly significant
    near, far = told(no_skill(0.08)), told(no_skill(0.6))
    # Then the one nearer to skill is told the better value, both below any backtest gate stop
    assert far[0] < near[0] < POOR + GATE_SPREAD
    assert near[0] == pytest.approx(POOR + GATE_SPREAD * 0.92) and near[1] == "training gate: no_skill"
    # And a cycle that completed only because its gates were bypassed is told the stop, not its Sharpe
    bypassed = cycle(
        OperationStatus.COMPLETED,
        training_gate=Verdict("training", True, "passed", "passed").to_record(),
        backtest_gate=Verdict(
            "backtest", False, "win_rate_too_low", "win_rate_too_low (0% < 45%)", bypassed=True
        ).to_record(),
        backtest_result={"psr": 1.0, "sharpe_ratio": 3.0, "num_trades": 40, "win_rate": 0.0, "max_drawdown": 0.1},
    )
    value, failure = told(bypassed)
    assert value is not None and value < objective({"sharpe_ratio": -99.0}, 10)
    assert failure == "backtest gate: win_rate_too_low (bypassed)"
