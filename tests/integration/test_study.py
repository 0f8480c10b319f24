"""The optimiser's studies on Postgres: beside the operations table, asked by many threads at once (issue 9)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from agent_pipeline.config import get_settings, reset_settings
from agent_pipeline.llm import ResearchMemory, get_designer
from agent_pipeline.llm.catalogue import DataSeries
from agent_pipeline.llm.study import load_study, tell_cycle
from agent_pipeline.store.operations import get_store
from tests.gate_records import gate_stop

SERIES = [DataSeries("SP500", "1d", "1999-01-04", "2018-12-31", 5031)]


def test_eight_threads_asking_at_once_on_postgres_get_eight_trials_told_at_the_end_and_the_schema_stays_ours(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the offline designer on a fresh Postgres database
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    reset_settings()
    designer = get_designer(get_settings(), "offline")
    start, outcomes = threading.Barrier(8), []

    def ask() -> None:
        start.wait()
        outcomes.append(designer.design(memory=ResearchMemory(), catalogue=SERIES))

    # When eight threads design at the same moment
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    # Then each holds its own trial and strategy, and the study holds eight running trials
    assert sorted(o.study_trial for o in outcomes) == list(range(8))
    assert len({o.strategy.model_dump_json(exclude={"name", "description"}) for o in outcomes}) == 8
    assert len(load_study("SP500", "1d", url=postgres_url).get_trials()) == 8
    # And the chain's ends tell their outcomes through the same database
    store = get_store(postgres_url)
    for outcome, error in zip(outcomes[:2], (None, "Backtest gate failed: win_rate_too_low (40% < 45%)"), strict=True):
        meta = {"designer": "offline", "symbol": "SP500", "timeframe": "1d", "study_trial": outcome.study_trial}
        meta |= {"backtest_result": {"sharpe_ratio": 0.7, "psr": 0.5}} | gate_stop(error)
        cycle = store.create_cycle(max_active=8, metadata=meta)
        store.start(cycle.operation_id)
        if error:
            store.fail(cycle.operation_id, error_message=error)
        else:
            store.complete(cycle.operation_id)
        tell_cycle(store.get(cycle.operation_id))
    told = {t.number: t for t in load_study("SP500", "1d", url=postgres_url).get_trials() if t.value is not None}
    assert told[outcomes[0].study_trial].value == pytest.approx(0.7 - 1.0)
    assert told[outcomes[1].study_trial].user_attrs["failure"] == "backtest gate: win_rate_too_low"
    # And Alembic's version table still names only our revision, so our migrations keep running
    store.upgrade()
    with store.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert len(versions) == 1 and not versions[0].startswith("v")


def test_a_cancelled_or_reconciled_cycle_is_told_as_failed_not_left_running(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_pipeline.pipeline import cycle as cycles

    # Given two designed cycles whose chains will never reach their ends
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    reset_settings()
    designer = get_designer(get_settings(), "offline")
    store = get_store(postgres_url)
    ids = []
    for _ in range(2):
        outcome = designer.design(memory=ResearchMemory(), catalogue=SERIES)
        meta = {"designer": "offline", "symbol": "SP500", "timeframe": "1d", "study_trial": outcome.study_trial}
        row = store.create_cycle(max_active=8, metadata=meta)
        store.start(row.operation_id)
        ids.append(row.operation_id)
    # When one is cancelled by the user and the other is failed by the reconciler (its heartbeat is long gone)
    cycles.cancel(ids[0], store=store)
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE operations SET heartbeat_at = now() - interval '1 hour' WHERE operation_id = :id"),
            {"id": ids[1]},
        )
    cycles.reconcile(store, get_settings())
    # Then neither trial stays RUNNING in the study
    states = [t.state.name for t in load_study("SP500", "1d", url=postgres_url).get_trials()]
    assert states.count("RUNNING") == 0 and states.count("FAIL") == 2
