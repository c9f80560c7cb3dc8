"""The last N served passengers of this worker, in fixed-size ring buffers: O(1) memory whatever the traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from survival.features import FEATURES, FloatArray


class PassengerWindow:
    """Raw rows (Pclass, Fare, Age; NaN where the client gave no value) and their arrival times.

    Both buffers are allocated once; a request copies its rows into them (at most two slices, so a
    batch costs one vectorised copy, not a loop), which keeps the memory at `capacity` rows forever.
    """

    def __init__(self, capacity: int, clock: Callable[[], float] = time.time) -> None:
        if capacity < 1:
            raise ValueError(f"window capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._clock = clock
        self._rows = np.full((capacity, len(FEATURES)), np.nan)
        self._times = np.zeros(capacity)
        self._next = 0
        self._size = 0
        self._lock = threading.Lock()
        self.reset_at = clock()

    @property
    def size(self) -> int:
        """Passengers in the window now."""
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffers (constant)."""
        return int(self._rows.nbytes + self._times.nbytes)

    def add(self, raw: FloatArray) -> None:
        """Append served rows; the oldest fall out once the window is full."""
        n = raw.shape[0]
        now = self._clock()
        cap = self.capacity
        with self._lock:
            if n >= cap:
                self._rows[:] = raw[n - cap :]
                self._times[:] = now
                self._next, self._size = 0, cap
                return
            start = self._next
            end = start + n
            if end <= cap:
                self._rows[start:end] = raw
                self._times[start:end] = now
            else:
                first = cap - start
                self._rows[start:] = raw[:first]
                self._rows[: n - first] = raw[first:]
                self._times[start:] = now
                self._times[: n - first] = now
            self._next = end % cap
            self._size = min(cap, self._size + n)

    def snapshot(self) -> tuple[FloatArray, float | None]:
        """A copy of the rows in the window, oldest first, and the arrival time of the oldest (None when empty)."""
        with self._lock:
            if self._size < self.capacity:
                rows = self._rows[: self._size].copy()
                oldest = float(self._times[0]) if self._size else None
            else:
                rows = np.concatenate([self._rows[self._next :], self._rows[: self._next]])
                oldest = float(self._times[self._next])
        return rows, oldest

    def clear(self) -> None:
        """Empty the window (a new reference: the verdicts start again)."""
        with self._lock:
            self._next = self._size = 0
            self.reset_at = self._clock()
