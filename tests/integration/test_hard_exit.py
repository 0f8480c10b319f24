"""The worker's exit without the interpreter's finalisation (`pipeline/hard_exit.py`), in subprocesses.

The first test is a canary: it measures what CPython's finalisation still costs with the worker's preloaded
modules (torch) and fails, saying the hook can go, once a release makes that cost negligible.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from agent_pipeline.pipeline.celery_app import GPU_QUEUE
from agent_pipeline.pipeline.worker import PRELOAD

# Seconds the hard exit must still save over a plain one for the hook to be worth keeping. Measured on 2 busy
# cores: 0.4-0.7 s with torch loaded (the hook's own docstring: 1.3 s to 5 s in a worker), 0.02 s for the hook.
MIN_SAVING_S = 0.1
# Plain exits measured; the fastest counts, since a busy machine only ever makes an exit slower.
PLAIN_RUNS = 3
# Loads what a GPU worker preloads, says when it is ready, then ends plainly or through the hook.
EXIT_PROBE = """
import importlib, sys, time
from agent_pipeline.pipeline.hard_exit import exit_without_finalisation
for module in sys.argv[2:]:
    importlib.import_module(module)
print(time.time(), flush=True)
if sys.argv[1] == "hook":
    exit_without_finalisation(0)
"""
# Registers an exit handler, leaves output in the buffers, holds an object whose finaliser prints, then exits.
CONTRACT_PROBE = """
import atexit, logging, sys
from agent_pipeline.pipeline.hard_exit import exit_without_finalisation

class Finalised:
    def __del__(self):
        sys.stdout.write("finalised\\n")

held = Finalised()
logging.basicConfig(filename=sys.argv[1], level=logging.INFO)
atexit.register(lambda: sys.stdout.write("exit handler ran\\n"))
sys.stdout.write("buffered line\\n")
logging.getLogger("probe").info("logged line")
exit_without_finalisation(3)
"""


def _exit_seconds(how: str) -> float:
    """Seconds from the probe's last line to its process's end, with the GPU worker's modules loaded."""
    probe = subprocess.Popen(
        [sys.executable, "-c", EXIT_PROBE, how, *PRELOAD[GPU_QUEUE]], stdout=subprocess.PIPE, text=True
    )
    assert probe.stdout is not None
    ready = float(probe.stdout.readline())
    assert probe.wait(timeout=120) == 0
    return time.time() - ready


def test_finalisation_with_torch_loaded_still_costs_what_the_hard_exit_saves() -> None:
    plain = min(_exit_seconds("plain") for _ in range(PLAIN_RUNS))
    hook = _exit_seconds("hook")
    assert plain - hook >= MIN_SAVING_S, (
        f"a plain exit with {PRELOAD[GPU_QUEUE]} loaded now takes {plain:.2f} s, the hard exit {hook:.2f} s: "
        f"the interpreter's finalisation costs less than {MIN_SAVING_S} s, so pipeline/hard_exit.py (and its call "
        f"in worker.py's _exit_once_stopped) can be dropped"
    )


def test_the_hard_exit_runs_exit_handlers_and_flushes_but_skips_finalisers(tmp_path: Path) -> None:
    log = tmp_path / "probe.log"
    # stdout is a pipe, so block-buffered: a bare os._exit would lose the buffered line
    done = subprocess.run([sys.executable, "-c", CONTRACT_PROBE, str(log)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines() == ["buffered line", "exit handler ran"]
    assert "logged line" in log.read_text()
