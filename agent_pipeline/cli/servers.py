"""`ktrdr api` and `ktrdr worker`: start the servers."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from agent_pipeline.cli.app import cli
from agent_pipeline.config import get_settings
from agent_pipeline.pipeline import embedded as embedded_runner


@cli.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="KTRDR_API_HOST")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), envvar="KTRDR_API_PORT")
@click.option(
    "--embedded", is_flag=True,
    help="Also run cycles in this process, as `ktrdr agent run` does: SQLite under --home, no Redis, no Postgres.",
)  # fmt: skip
@click.option(
    "--home", type=click.Path(file_okay=False, path_type=Path), default=Path(".ktrdr"), show_default=True,
    envvar="KTRDR_HOME", help="With --embedded: the folder of the SQLite file, strategies, models and reports.",
)  # fmt: skip
def api_command(host: str, port: int, embedded: bool, home: Path) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /docs) and the dashboard (/ui)."""
    import uvicorn

    if not embedded:
        uvicorn.run("agent_pipeline.api.app:app", host=host, port=port, log_level="info")
        return
    embedded_runner.prepare_environment(home)
    with embedded_runner.embedded_worker():
        uvicorn.run("agent_pipeline.api.app:app", host=host, port=port, log_level="info")


QUEUE_CHOICES = ("research", "gpu")


@cli.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--queues", "-Q", default="research", show_default=True, help="research, gpu, or both (comma-separated).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker_command(queues: str, concurrency: int, loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker with the flags its queue needs (extra arguments go to celery)."""
    import os

    command = worker_argv(queues, concurrency, loglevel, celery_args)
    os.execvp(command[0], command)


def worker_argv(queues: str, concurrency: int, loglevel: str, extra: Sequence[str] = ()) -> list[str]:
    """The `celery worker` command line for `queues`.

    The gpu queue gets the prefork pool with one task per child process: CUDA is initialised only in the child
    (never in the parent, which would break fork), and each training's GPU memory is returned when its child exits.
    """
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUE_CHOICES]
    if unknown or not names:
        raise click.BadParameter(f"unknown queue(s) {', '.join(unknown) or '(none)'}; use research and/or gpu")
    argv = [sys.executable, "-m", "celery", "-A", "agent_pipeline", "worker", "-Q", ",".join(names)]
    argv += ["-c", str(concurrency), "-l", loglevel, "-n", f"{'-'.join(names)}@%h", "--pool", "prefork"]
    if "gpu" in names:
        argv += ["--max-tasks-per-child", "1"]
    return [*argv, *extra]


@cli.command("beat", context_settings={"ignore_unknown_options": True})
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat_command(loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start Celery beat: a cycle every KTRDR_SCHEDULE (15s, 10m, 1h, continuous) while there is room and budget,
    and a step of every open paper account every KTRDR_PAPER_INTERVAL seconds (default 60)."""
    import os

    settings = get_settings()
    state = settings.home / "celerybeat-schedule"
    state.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "celery", "-A", "agent_pipeline", "beat", "-l", loglevel, "-s", str(state)]
    os.execvp(command[0], [*command, *celery_args])
