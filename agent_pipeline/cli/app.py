"""The root `ktrdr` group, its error handling and the helpers every command group shares.

Import-time cost matters (`ktrdr --help` must be instant): this package imports click and the operations store
only; rich, the engine, Celery and the LLM SDK are imported inside the commands that use them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from agent_pipeline.config import get_settings
from agent_pipeline.errors import KtrdrError
from agent_pipeline.store.operations import (
    OperationsStore,
    get_store,
)

if TYPE_CHECKING:
    from rich.console import Console


log = logging.getLogger("agent_pipeline.cli")

# Width rich lays out tables at when stdout is not a terminal (pipes, tests): wide enough for full op ids.
PIPE_WIDTH = 200


class KtrdrGroup(click.Group):
    """The root group: expected errors become one line on stderr and exit 1, never a traceback.

    Click's own usage errors keep their exit code 2; anything unexpected is one line plus a hint, with the
    traceback logged at debug level (`ktrdr --verbose ...` shows it).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KtrdrError as exc:
            fail(str(exc))
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            fail(f"unexpected {type(exc).__name__}: {exc} (run `ktrdr --verbose ...` for the traceback)")


def fail(message: str) -> None:
    """Print `Error: <message>` as one line on stderr and exit 1."""
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(1)


def console() -> Console:
    """A rich console on the current stdout (created per call so that click's CliRunner captures it)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH, highlight=False)


def echo_json(data: Any) -> None:
    """Print the API's envelope: `{"success": true, "data": ...}`."""
    click.echo(json.dumps({"success": True, "data": data}, indent=2, default=str))


def open_store() -> OperationsStore:
    """The settings' operations store, its schema brought up to date (cheap when current).

    Every command that touches the database calls this, so a fresh machine just works.

    Raises:
        ConfigurationError: a malformed setting.
        DatabaseUnavailableError: the database does not answer.
    """

    store = get_store(get_settings().database_url)
    store.upgrade()
    return store


@click.group(cls=KtrdrGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level (tracebacks included) on stderr.")
@click.version_option(package_name="ktrdr-agent-pipeline", prog_name="ktrdr")
def cli(verbose: bool) -> None:
    """ktrdr: an autonomous research loop for trading strategies."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`ktrdr`)."""
    run: Callable[..., Any] = cli.main
    run(args=list(argv) if argv is not None else None, prog_name="ktrdr")
