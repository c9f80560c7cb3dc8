"""study.json, read off the event loop with a size bound and a timeout: a blocked file never stops a worker.

The study may finish after start-up, so GET /metrics re-reads the file when its modification time or size
changes. The read runs in a thread, one at a time: a FIFO (opened without blocking, then refused as no regular
file), a hung network mount or a huge file cost that one thread, never the event loop, and a read that does not
finish in time leaves the last good report served with the problem named.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from survival.study import StudyReport, parse_study

logger = logging.getLogger("service")


@dataclass(frozen=True)
class StudyState:
    """The study report now (None when there is none or it cannot be read) and why it cannot, if so."""

    report: StudyReport | None
    problem: str | None


class StudyCache:
    """The study report, re-read when the file changes; a problem says what is wrong with the file, without a path."""

    def __init__(self, path: Path, max_bytes: int, timeout_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._stamp: tuple[int, int] | None = None
        self._state = StudyState(None, None)
        self._reading: asyncio.Future[StudyState] | None = None
        self._logged: str | None = None

    async def get(self) -> StudyState:
        """The current state: re-read in a thread when the file changed, waiting at most `timeout_s`."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.get_running_loop().run_in_executor(None, self._refresh)
        try:
            state = await asyncio.wait_for(asyncio.shield(self._reading), self.timeout_s)
        except TimeoutError:
            problem = f"{self.path.name} could not be read within {self.timeout_s:g} s"
            state = StudyState(self._state.report, problem)
        self._log(state.problem)
        return state

    def _log(self, problem: str | None) -> None:
        if problem is not None and problem != self._logged:
            logger.warning("study results: %s", problem)  # once per distinct problem, not per request
        self._logged = problem

    def _refresh(self) -> StudyState:
        """Read the file if it changed (in a thread): a regular file within the size bound, else a problem."""
        name = self.path.name
        try:
            # Non-blocking: opening a FIFO would otherwise wait for a writer forever.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            self._stamp, self._state = None, StudyState(None, None)
            return self._state
        except OSError as exc:
            return self._failed(f"{name} cannot be opened ({exc.strerror})")
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return self._failed(f"{name} is not a regular file")
            if info.st_size > self.max_bytes:
                return self._failed(f"{name} is {info.st_size} bytes, over the limit of {self.max_bytes}")
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == self._stamp:
                return self._state
            try:
                raw = fh.read(self.max_bytes + 1)
            except OSError as exc:
                return self._failed(f"{name} cannot be read ({exc.strerror})")
        try:
            report = parse_study(raw)
        except ValueError as exc:
            return self._failed(f"{name}: {exc}")
        self._stamp, self._state = stamp, StudyState(report, None)
        return self._state

    def _failed(self, problem: str) -> StudyState:
        self._stamp, self._state = None, StudyState(None, problem)
        return self._state
