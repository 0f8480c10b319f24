"""The soft shutdown as a running task sees it: a flag set when its worker begins to shut down."""

from __future__ import annotations

import signal
import threading

# The signal the worker's main process sends its pool children when shutdown begins (see `request_stop`).
STOP_SIGNAL = signal.SIGUSR2

# Set in a pool child when its worker shuts down: the training stops at its next check and requeues itself.
stop_requested = threading.Event()


def soft_shutdown_enabled() -> bool:
    """SIGTERM means Celery's soft shutdown: wait `worker_soft_shutdown_timeout`, then requeue what still runs."""
    from billiard.common import REMAP_SIGTERM

    return REMAP_SIGTERM == "SIGQUIT"
