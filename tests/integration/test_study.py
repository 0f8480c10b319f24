"""The optimiser's studies on Postgres: beside the operations table, asked by many threads at once (issue 9)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from agent_pipeline.config import get_settings, reset_settings
from agent_pipeline.llm import ResearchMemory, get_designer
from agent_pipeline.llm.catalogue import DataSeries
from agent_pipeline.operations import get_store
from agent_pipeline.study import load_study

SERIES = [DataSeries("SP500", "1d", "1999-01-04", "2018-12-31", 5031)]


def test_eight_threads_asking_at_once_on_postgres_get_eight_trials_and_the_schema_stays_ours(
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
    # And Alembic's version table still names only our revision, so our migrations keep running
    store = get_store(postgres_url)
    store.upgrade()
    with store.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert len(versions) == 1 and not versions[0].startswith("v")
