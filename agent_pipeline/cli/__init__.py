"""The `ktrdr` command line: one module per command group, rendering in `render`.

Importing this package registers every group on the root `cli` group; `main` is the console-script entry point.
"""

from __future__ import annotations

from agent_pipeline.cli import agent, calibrate, data, db, lockbox, operations, paper, servers, strategy, universe
from agent_pipeline.cli import replay as replay  # ktrdr agent replay (issue 25)
from agent_pipeline.cli.app import cli, main
from agent_pipeline.cli.servers import worker_argv

__all__ = [
    "agent",
    "calibrate",
    "cli",
    "data",
    "db",
    "lockbox",
    "main",
    "operations",
    "paper",
    "servers",
    "strategy",
    "universe",
    "worker_argv",
]
