"""Prometheus multiprocess values that survive a full directory: the metrics degrade, the worker lives.

prometheus_client keeps each worker's values in a memory-mapped file it grows with `truncate`, which allocates
nothing: on a full filesystem (the tmpfs of a container) the first write to a new page kills the process with
SIGBUS, the supervisor starts another, and it dies the same way. Here the pages are allocated before they are
mapped (`posix_fallocate`), so a full directory is an OSError at that moment; the values that do not fit are
kept in the worker's memory instead (missing from the scrape, which reads the files), counted, and logged once.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import prometheus_client.values
from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict

logger = logging.getLogger("service")


class Degraded:
    """How many metric values this worker keeps in memory because the multiprocess directory is full."""

    values = 0
    logged = False

    @classmethod
    def count(cls, exc: OSError) -> None:
        """One more value kept in memory; the first is logged."""
        cls.values += 1
        if not cls.logged:
            cls.logged = True
            logger.error(
                "the Prometheus multiprocess directory is full (%s): new metric values stay in this worker and are "
                "missing from /metrics/prometheus until it has room",
                exc.strerror,
            )


class RoomyMmapedDict(MmapedDict):
    """MmapedDict with its pages allocated before use, and values kept in memory when there is no room."""

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        self._memory: dict[str, tuple[float, float]] = {}
        self._f: Any = None
        if not read_mode:
            try:
                self._allocate_new(filename)
            except OSError as exc:
                Degraded.count(exc)
                self._fname, self._capacity, self._used, self._positions = filename, 0, 0, {}
                self._m = None  # type: ignore[assignment]
                return
        super().__init__(filename, read_mode)  # type: ignore[no-untyped-call]

    @staticmethod
    def _allocate_new(filename: str) -> None:
        fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size == 0:
                os.posix_fallocate(fd, 0, _INITIAL_MMAP_SIZE)
        except OSError:
            if os.fstat(fd).st_size == 0:
                os.unlink(filename)  # an empty file would break every scrape that reads it
            raise
        finally:
            os.close(fd)

    def _init_value(self, key: str) -> None:
        if self._m is not None:
            needed = self._used + len(key.encode()) + 32
            capacity = self._capacity
            while needed > capacity:
                capacity *= 2
            try:
                if capacity != self._capacity:
                    os.posix_fallocate(self._f.fileno(), 0, capacity)  # then super's truncate allocates nothing new
                super()._init_value(key)  # type: ignore[no-untyped-call]
                return
            except OSError as exc:
                Degraded.count(exc)
        self._memory[key] = (0.0, 0.0)

    def read_value(self, key: str) -> Any:
        """The value and timestamp of `key`."""
        if key not in self._memory and key not in self._positions:
            self._init_value(key)
        if key in self._memory:
            return self._memory[key]
        return super().read_value(key)  # type: ignore[no-untyped-call]

    def write_value(self, key: str, value: float, timestamp: float) -> None:
        """Set `key`."""
        if key not in self._memory and key not in self._positions:
            self._init_value(key)
        if key in self._memory:
            self._memory[key] = (value, timestamp)
        else:
            super().write_value(key, value, timestamp)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Close the file, if there is one."""
        if self._f is not None:
            super().close()  # type: ignore[no-untyped-call]


def install() -> None:
    """Make prometheus_client's multiprocess values use RoomyMmapedDict (before any metric is created)."""
    prometheus_client.values.MmapedDict = RoomyMmapedDict  # type: ignore[attr-defined]
