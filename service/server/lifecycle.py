"""Start and stop: a failed start ends the process with one line, and SIGTERM drains before uvicorn stops."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn, Protocol

from uvicorn.config import STARTUP_FAILURE


def fail_start(message: str) -> NoReturn:
    """Print `error: message` as the one line on stderr and end the process without a traceback."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    # A uvicorn worker is a spawned child: it exits with uvicorn's start-up failure status, which the
    # supervisor treats as fatal (any other status makes it respawn the worker, forever).
    os._exit(STARTUP_FAILURE if multiprocessing.parent_process() is not None else 1)


class Drainable(Protocol):
    """What a SIGTERM marks as draining (service/state.py's Lifecycle)."""

    draining: bool


def install_drain(state: Drainable, drain_s: float) -> None:
    """On SIGTERM set `state.draining` (/ready answers 503) at once, and run uvicorn's own handler `drain_s` later.

    uvicorn's handler closes the listener, finishes the requests in flight (bounded by its graceful
    timeout) and stops. Runs in the lifespan, where uvicorn has installed that handler; elsewhere
    (a test client's thread, no uvicorn) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    stop = signal.getsignal(signal.SIGTERM)
    if not callable(stop):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if state.draining:  # a repeated SIGTERM (a supervisor forwarding it twice) changes nothing
            return
        state.draining = True
        loop.call_soon_threadsafe(loop.call_later, drain_s, stop, sig, None)

    signal.signal(signal.SIGTERM, on_sigterm)


# prctl(2): deliver a signal to this process when the thread that forked it exits.
PR_SET_PDEATHSIG = 1


def die_with_launcher() -> None:
    """In a worker of `python -m service`: be sent SIGTERM when the launcher dies, even by SIGKILL.

    A `kill -9` of the launcher otherwise leaves its workers serving on, orphaned, holding the port. uvicorn's
    supervisor starts and restarts workers from its main thread, which lives as long as the launcher. Linux only;
    elsewhere nothing is done.
    """
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent.pid:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
