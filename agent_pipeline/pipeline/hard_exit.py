"""How a worker program ends once its pool has stopped: exit handlers run, the interpreter's finalisation does not.

CPython's finalisation tears down every module and object before the process exits. With torch loaded (every
worker preloads it, see `worker.PRELOAD`) that took 1.3 s on 2 idle cores and 5 s on busy ones, at every
restart and every deploy, with nothing left to clean up. `os._exit` skips it, but also skips the `atexit`
handlers and leaves buffered output unwritten: so those run first, by hand.

`tests/integration/test_hard_exit.py` measures what the finalisation still costs with torch loaded: when a torch
release makes it cheap, that test fails, and this module and its call in `worker.py` can go.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from typing import NoReturn


def exit_without_finalisation(code: int) -> NoReturn:
    """Run the exit handlers, flush the logs and the standard streams, then end the process with `code`."""
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
