"""Hosts that share no disk (issue 16): a research worker, two GPU workers and the API, each with its own
KTRDR_HOME, sharing only Redis, Postgres and an S3 endpoint (moto's standalone server, the real S3 protocol).

One stack serves the module's tests. The API is this test process (FastAPI's TestClient), with a home of its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_pipeline.pipeline.context import CycleOptions
from tests.s3_server import S3Server, running_s3
from tests.services import POSTGRES_URL_PREFIX, create_database, drop_database, forget_store
from tests.stack import STACK_REDIS_URL, Stack, finished, flush_stack_redis, use_stack_env, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "ktrdr-multihost"
STACK_ENV = {
    "KTRDR_ARTIFACTS_URL": f"s3://{BUCKET}/cluster",
    # Trained together, 12 epochs took under a second (a CI run saw the training end before any poll caught an
    # epoch); 80 leave the test seconds to stop the worker mid-training.
    "KTRDR_TRAINING_EPOCHS": "80",
    "KTRDR_WALK_FORWARD_FOLDS": "2",
    "KTRDR_POLL_INTERVAL": "0.5",
    "KTRDR_DESIGNER": "offline",
    # SIGTERM starts Celery's soft shutdown, as docker-compose runs the GPU worker: the training is handed back.
    "REMAP_SIGTERM": "SIGQUIT",
    "PYTHONUNBUFFERED": "1",
}
GPU_ARGS = ("-c", "1", "--max-tasks-per-child", "1")
# What a model learns in a few epochs is not under test here: gates record `bypassed` and the cycle goes on.
BYPASS = CycleOptions(bypass_gates=True)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def hosts(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Three worker "hosts": a home each, nothing shared but the services' URLs."""
    flush_stack_redis()
    database = create_database("ktrdr_multihost")
    env = {
        **STACK_ENV,
        **s3.env,
        "DATABASE_URL": POSTGRES_URL_PREFIX + database,
        "KTRDR_BROKER_URL": STACK_REDIS_URL,
        "KTRDR_RESULT_BACKEND": STACK_REDIS_URL,
        "KTRDR_HOME": str(tmp_path_factory.mktemp("api_home")),
    }
    stack = Stack(env=env, home=tmp_path_factory.mktemp("multihost_logs"))
    with pytest.MonkeyPatch.context() as patch:
        use_stack_env(stack, patch)
        from agent_pipeline.store.operations import get_store

        get_store().upgrade()
    for name, queue, args in (
        ("research", "research", ("-c", "1")),
        ("gpu1", "gpu", GPU_ARGS),
        ("gpu2", "gpu", GPU_ARGS),
    ):
        stack.start_worker(name, queue, *args, env={"KTRDR_HOME": str(_home(stack, name))})
    yield stack
    stack.stop()
    forget_store(env["DATABASE_URL"])
    drop_database(database)
    flush_stack_redis()


@pytest.fixture
def cluster(hosts: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    use_stack_env(hosts, monkeypatch)
    from agent_pipeline.engine.artifacts import open_store

    open_store.cache_clear()
    return hosts


def _home(stack: Stack, name: str) -> Path:
    return stack.home / f"home_{name}"


def _training(cycle_id: str):  # noqa: ANN202
    from agent_pipeline.store.operations import get_store

    child_id = get_store().get(cycle_id).metadata.get("training_op_id")
    return get_store().get(child_id) if child_id else None


def test_a_training_handed_back_resumes_on_the_other_host_and_the_api_serves_the_report(cluster: Stack) -> None:
    from fastapi.testclient import TestClient

    from agent_pipeline.api.app import app
    from agent_pipeline.pipeline import cycle
    from agent_pipeline.store.operations import OperationStatus, get_store

    # Given a cycle whose training has checkpointed a few epochs on one GPU host
    operation = cycle.trigger(BYPASS)
    cycle_id = operation.operation_id
    wait_until(lambda: (t := _training(cycle_id)) is not None and int(t.progress.get("epoch", 0)) >= 2, timeout=120)
    task_id = _training(cycle_id).metadata["celery_task_id"]
    busy = next(name for name in ("gpu1", "gpu2") if f"train_model[{task_id}] received" in cluster.log(name))
    other = "gpu2" if busy == "gpu1" else "gpu1"
    # When that host's worker is stopped (SIGTERM: soft shutdown, the training is handed back)
    started = time.monotonic()
    process = cluster.workers[busy]
    process.terminate()
    process.wait(timeout=60)
    # Then the other host, which never saw the first one's disk, fetches the checkpoint from S3 and resumes it
    wait_until(lambda: "resumed the batched training from its checkpoint" in cluster.log(other), timeout=60)
    resumed_in = time.monotonic() - started
    assert "of an earlier delivery from s3://" in cluster.log(other)
    final = wait_until(finished(cycle_id), timeout=180)
    assert final.status == OperationStatus.COMPLETED, (final.error_message, cluster.log("research")[-3000:])
    assert f"train_model[{task_id}] succeeded" in cluster.log(other)
    # And the rows hold URLs in the store, not host paths (the report is published just after completion)
    meta = wait_until(lambda: (m := get_store().get(cycle_id).metadata).get("report_dir") and m, timeout=30)
    for key in ("strategy_url", "model_path", "backtest_dir", "report_dir"):
        assert str(meta[key]).startswith(f"s3://{BUCKET}/cluster/"), (key, meta[key])
    # And no host wrote into another's home: the research host has no model, the GPU hosts no report
    assert not list((_home(cluster, "research") / "work").glob("models/*/*/model.pt"))
    assert not (_home(cluster, other) / "work" / "reports").exists()
    # And the API, with a home of its own, serves the report and its plots from the store
    with TestClient(app) as client:
        page = client.get(f"/api/v1/agent/cycles/{cycle_id}/report")
    assert page.status_code == 200, page.text[:500]
    assert page.text.count("data:image/png;base64,") >= 4
    print(f"\nMULTIHOST resumed on {other} {resumed_in:.1f} s after SIGTERM on {busy}")


def test_a_missing_model_object_fails_the_backtest_naming_its_url(cluster: Stack) -> None:
    from agent_pipeline.errors import ArtifactNotFoundError
    from agent_pipeline.pipeline.context import CycleContext
    from agent_pipeline.store.operations import OperationType, get_store
    from agent_pipeline.tasks.backtest import _backtest

    store = get_store()
    folder = f"s3://{BUCKET}/cluster/models/op_training_gone/eurusd_rsi_atr"
    meta = {
        "strategy_path": str(Path(__file__).resolve().parents[3] / "examples" / "eurusd_rsi_atr.yaml"),
        "model_path": f"{folder}/model.pt",
        "evaluation": {"lockbox_fraction": 0.2, "folds": 2},
        "symbol": "EURUSD",
        "timeframe": "1h",
    }
    cycle = store.create(operation_type=OperationType.AGENT_RESEARCH, metadata=meta)
    with pytest.raises(ArtifactNotFoundError, match=f"artifact not found: {folder}"):
        _backtest(store, CycleContext(cycle_id=cycle.operation_id), "op_backtesting_gone")


def test_a_worker_refuses_to_start_on_a_missing_bucket_with_one_line(cluster: Stack) -> None:
    name = f"nobucket_{uuid.uuid4().hex[:4]}"
    with pytest.raises(RuntimeError, match="exited") as caught:
        cluster.start_worker(
            name,
            "gpu",
            *GPU_ARGS,
            env={"KTRDR_ARTIFACTS_URL": "s3://no-such-bucket/x", "KTRDR_HOME": str(_home(cluster, name))},
        )
    log = cluster.log(name)
    assert "ktrdr worker: artifact store s3://no-such-bucket/x: bucket 'no-such-bucket' does not exist" in log
    assert "Traceback" not in log, str(caught.value)[-2000:]
