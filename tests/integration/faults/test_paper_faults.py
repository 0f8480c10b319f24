"""A research worker killed in the middle of a paper step (issue 27): no bar is booked by it, and the next step
books every bar once.

The kill lands at a known point: the test holds the account's row lock (`SELECT ... FOR UPDATE`), so the worker's
step computes its bars and then waits at its booking, which Postgres shows as a lock wait; the worker's process
group is killed there, as a lost machine would be. Its transaction never commits.

The workers use a private redis-server (`private_redis`), so that no other test's worker takes this test's steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent_pipeline.engine.append import append_bars
from agent_pipeline.engine.bars_source import FileBarSource
from agent_pipeline.engine.synth import write_synth
from tests.forward import forward_csv, trained_cycle
from tests.private_servers import PrivateRedis
from tests.services import POSTGRES_URL_PREFIX, create_database, drop_database
from tests.stack import Stack, use_stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SYMBOL = "PKILL"
FORWARD = 300
# The worker's booking, as Postgres shows it while it waits for the row lock the test holds: in this test's database,
# and running (an idle connection keeps its last statement in `query`; other databases are other tests').
WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' "
    "AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE paper_accounts%'"
)
# Whether a server process (the killed worker's connection) is still there.
ALIVE = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"


@pytest.fixture
def stack(private_redis: PrivateRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A fresh Postgres database and the private Redis, this process pointed at them; workers started by the test."""
    name = create_database("ktrdr_paper_faults")
    env = {
        "DATABASE_URL": POSTGRES_URL_PREFIX + name, "KTRDR_BROKER_URL": private_redis.url,
        "KTRDR_RESULT_BACKEND": private_redis.url, "KTRDR_HOME": str(tmp_path / "home"), "KTRDR_DESIGNER": "offline",
        "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    built = Stack(env=env, home=tmp_path)
    use_stack_env(built, monkeypatch)
    yield built
    built.stop()
    drop_database(name)


def test_a_worker_killed_mid_step_books_nothing_and_the_next_step_books_each_bar_once(
    stack: Stack, tmp_path: Path
) -> None:
    import psycopg

    from agent_pipeline.pipeline.celery_app import PAPER_TASK, app
    from agent_pipeline.pipeline.paper import open_account
    from agent_pipeline.store.operations import get_store
    from agent_pipeline.store.paper import PaperEquityRow, get_account

    # Given the stack's database, a paper account of a trained discovery, and 300 forward bars it has not booked
    store = get_store()
    store.upgrade()
    data = tmp_path / "home" / "data"
    write_synth("reversal", 3.0, 5, symbol=SYMBOL, timeframe="1d", data_dir=data, bars=1500)
    account = open_account(store, trained_cycle(store, data, tmp_path, SYMBOL))
    csv = forward_csv(data, SYMBOL, FORWARD, tmp_path / "forward.csv")
    append_bars(FileBarSource(csv), symbol=SYMBOL, timeframe="1d", data_dir=data)
    stack.start_worker("research", "research", "-c", "1")

    def booked_rows() -> int:
        with store._session() as session:
            return int(session.scalar(select(func.count()).where(PaperEquityRow.account_id == account.id)) or 0)

    dsn = stack.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as lock, psycopg.connect(dsn, autocommit=True) as watch:
        lock.execute("SELECT id FROM paper_accounts WHERE id = %s FOR UPDATE", (account.id,))
        # When a step runs on the worker and reaches its booking, and the worker is killed there
        app.send_task(PAPER_TASK)
        wait_until(lambda: watch.execute(WAITING).fetchone() is not None, timeout=60)
        waiting = watch.execute(WAITING).fetchone()
        assert waiting is not None
        stack.kill_worker("research")
        lock.rollback()
        # Then its transaction is gone without a trace, with its connection: no bar booked, the account as it was
        wait_until(lambda: watch.execute(ALIVE, (waiting[0],)).fetchone() == (0,))
    assert booked_rows() == 0 and get_account(store, account.id).bars == 0
    # When a fresh worker runs the next steps (the beat's next ticks)
    stack.start_worker("research2", "research", "-c", "1")
    app.send_task(PAPER_TASK)
    wait_until(lambda: get_account(store, account.id).bars == FORWARD, timeout=60)
    app.send_task(PAPER_TASK)
    wait_until(lambda: stack.log("research2").count("Task ktrdr.paper.step[") >= 2, timeout=30)
    # Then every forward bar is booked exactly once
    assert booked_rows() == FORWARD and get_account(store, account.id).bars == FORWARD
